"""Migrations run once, from one place (``mlplatform db upgrade``, which ``stack up`` runs); every other process
checks the schema's revision and refuses one it was not written for, with the fix in the message."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.config import DatabaseSettings, Settings
from mlplatform.predictions.sinks import PostgresSink
from mlplatform.predictions.writer import BatchingPredictionLog
from mlplatform.stack.embedded import EmbeddedStack, StackError
from mlplatform.store import PlatformStore
from mlplatform.store.db import VERSION_TABLE, SchemaBehindError, SchemaNewerError, head_revision
from tests.support.contracts.prediction_log import make_record
from tests.support.environment import REPO_ROOT

FUTURE = "0999"
runner = CliRunner()


def stamp(url: str, revision: str) -> None:
    """Set the schema's recorded revision, as another release's `db upgrade` would have."""
    store = PlatformStore(url)
    with store.engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = :revision"), {"revision": revision})
    store.dispose()


@pytest.fixture()
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'platform.db'}"


def test_connect_refuses_an_empty_database_naming_the_command(url: str) -> None:
    with pytest.raises(SchemaBehindError, match=r"empty .* needs revision \d+: run `mlplatform db upgrade`"):
        PlatformStore.connect(url)


def test_connect_never_migrates(url: str) -> None:
    with pytest.raises(SchemaBehindError):
        PlatformStore.connect(url)
    assert PlatformStore(url).revision() is None  # still untouched: no table was created


def test_connect_refuses_an_older_revision(url: str) -> None:
    PlatformStore.migrated(url).dispose()
    stamp(url, "0009")
    with pytest.raises(SchemaBehindError, match=f"at revision 0009; this code needs revision {head_revision()}"):
        PlatformStore.connect(url)


def test_a_migrated_database_connects(url: str) -> None:
    PlatformStore.migrated(url).dispose()
    store = PlatformStore.connect(url)
    assert store.revision() == head_revision()
    store.dispose()


def test_a_database_of_an_earlier_release_is_upgraded_from_its_revision(url: str) -> None:
    """Releases before the platform's own version table kept the revision in Alembic's default one."""
    PlatformStore.migrated(url).dispose()
    stamp(url, "0009")
    store = PlatformStore(url)
    with store.engine.begin() as connection:
        for table in ("rollout_evaluations", "rollouts", "online_quality", "outcome_labels"):  # 0011's
            connection.execute(text(f"DROP TABLE {table}"))
        for column in ("arm", "shadow", "latency_s", "error"):
            connection.execute(text(f"ALTER TABLE prediction_log DROP COLUMN {column}"))
        connection.execute(text("DROP TABLE login_failures"))  # 0010's
        connection.execute(text("DROP TABLE browser_sessions"))
        connection.execute(text(f"ALTER TABLE {VERSION_TABLE} RENAME TO alembic_version"))
    store.dispose()
    with pytest.raises(SchemaBehindError, match="empty"):  # connect sees no revision of its own: upgrade first
        PlatformStore.connect(url)
    upgraded = PlatformStore.migrated(url)
    assert upgraded.revision() == head_revision()
    with upgraded.engine.connect() as connection:
        tables = {row[0] for row in connection.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    assert "alembic_version" not in tables and {"browser_sessions", "login_failures"} <= tables
    upgraded.dispose()


def test_a_schema_newer_than_the_code_is_refused_naming_both_revisions(url: str) -> None:
    PlatformStore.migrated(url).dispose()
    stamp(url, FUTURE)
    expected = f"revision {FUTURE}, which this code does not know \\(its newest is {head_revision()}\\)"
    with pytest.raises(SchemaNewerError, match=expected):
        PlatformStore.connect(url)
    with pytest.raises(SchemaNewerError, match=expected):  # and an upgrade does not touch it either
        PlatformStore.migrated(url)


def test_the_prediction_log_sink_refuses_a_newer_schema_and_keeps_its_records(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Not a ValueError (which the writer drops as a bad batch): the records wait, and the log says why."""
    PlatformStore.migrated(url).dispose()
    stamp(url, FUTURE)
    sink = PostgresSink(url)
    with pytest.raises(SchemaNewerError, match=FUTURE):
        sink.write([make_record(0)])
    log = BatchingPredictionLog(PostgresSink(url), queue_size=100, batch_size=10, flush_interval_s=0.01)
    with caplog.at_level(logging.WARNING, logger="mlplatform.predictions.writer"):
        assert log.submit([make_record(1), make_record(2)]) == 2
        log.close(timeout=0.5)
    assert log.written == 0
    assert f"at revision {FUTURE}, which this code does not know" in caplog.text
    assert "records kept in memory" in caplog.text and "rejected" not in caplog.text


# ---------------------------------------------------------------------------------------------------- the CLI


@pytest.fixture()
def cli_env(tmp_path: Path) -> dict[str, str]:
    return {"MLP_STATE_DIR": str(tmp_path / "state"), "MLP_BUNDLED_MODELS_DIR": str(REPO_ROOT / "pipelines" / "models")}


def test_db_upgrade_is_the_way_in_and_commands_before_it_say_so(cli_env: dict[str, str]) -> None:
    before = runner.invoke(app, ["api", "users", "list"], env=cli_env)
    assert before.exit_code == 1 and "run `mlplatform db upgrade`" in before.output
    assert runner.invoke(app, ["db", "revision"], env=cli_env).exit_code == 1
    upgraded = runner.invoke(app, ["db", "upgrade"], env=cli_env)
    assert upgraded.exit_code == 0 and f"at revision {head_revision()}" in upgraded.output
    assert runner.invoke(app, ["db", "upgrade"], env=cli_env).exit_code == 0  # safe to repeat
    current = runner.invoke(app, ["db", "revision"], env=cli_env)
    assert current.exit_code == 0 and f"database: {head_revision()}" in current.output
    assert runner.invoke(app, ["api", "users", "list"], env=cli_env).exit_code == 0


def test_db_upgrade_refuses_a_newer_schema(cli_env: dict[str, str], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'platform.db'}"
    PlatformStore.migrated(url).dispose()
    stamp(url, FUTURE)
    refused = runner.invoke(app, ["db", "upgrade"], env=cli_env)
    assert refused.exit_code == 1
    assert FUTURE in refused.output and head_revision() in refused.output
    assert PlatformStore(url).revision() == FUTURE


def test_embedded_cli_commands_refuse_a_database_not_yet_upgraded(cli_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["deployments", "--json"], env=cli_env)
    assert result.exit_code == 1 and "mlplatform db upgrade" in result.output


def test_grant_prediction_writer_needs_postgresql(cli_env: dict[str, str], tmp_path: Path) -> None:
    assert runner.invoke(app, ["db", "upgrade"], env=cli_env).exit_code == 0
    secret = tmp_path / "writer-password"
    secret.write_text("a long enough role password\n")
    args = ["db", "grant-prediction-writer", "--role", "mlp_writer", "--password-file", str(secret)]
    result = runner.invoke(app, args, env=cli_env)
    assert result.exit_code == 1 and "need PostgreSQL" in result.output


# ------------------------------------------------------------------------------------------------- stack up


def test_stack_up_migrates_the_platform_db_before_starting_anything(settings: Settings, tmp_path: Path) -> None:
    fresh = settings.model_copy(update={"db": DatabaseSettings(url=f"sqlite:///{tmp_path / 'fresh.db'}")})
    with socket.socket() as holder:  # MLflow cannot start: `up` stops right after its first step
        holder.bind(("127.0.0.1", fresh.mlflow.port))
        holder.listen()
        with pytest.raises(StackError, match="already in use"):
            EmbeddedStack(fresh).up()
    PlatformStore.connect(fresh.db_url).dispose()  # at this code's revision


def test_stack_up_refuses_a_newer_schema_naming_both_revisions(settings: Settings) -> None:
    stamp(settings.db_url, FUTURE)
    with pytest.raises(StackError, match=f"revision {FUTURE}, which this code does not know"):
        EmbeddedStack(settings).up()
    assert not any(state.running for state in EmbeddedStack(settings).status())
