"""The prediction log contract against a real PostgreSQL: the production sink, schema made by Alembic."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.contracts.prediction_log import (
    check_contract,
    check_regression_records,
    check_rollout_records,
    check_window,
    log_settings,
    make_record,
)

pytestmark = pytest.mark.integration
ROLE_PASSWORD = "a long enough role password"


@pytest.fixture(params=["psycopg", "psycopg2"])
def log_url(request: pytest.FixtureRequest, postgres_database: str) -> str:
    """The scratch database through either driver: psycopg (the chart's) writes by COPY, psycopg2 by INSERT."""
    return postgres_database.replace("postgresql://", f"postgresql+{request.param}://", 1)


def test_n_records_in_from_many_threads_n_records_out(tmp_path: Path, log_url: str) -> None:
    settings = log_settings(tmp_path, "postgres", prediction_log_url=log_url)
    check_contract(settings)
    check_window(settings)


def test_regression_records_have_no_label(tmp_path: Path, log_url: str) -> None:
    check_regression_records(log_settings(tmp_path, "postgres", prediction_log_url=log_url))


def test_rollout_records_keep_arm_shadow_latency_and_failures(tmp_path: Path, log_url: str) -> None:
    check_rollout_records(log_settings(tmp_path, "postgres", prediction_log_url=log_url))


def test_a_batch_the_database_rejects_is_a_value_error_and_writes_nothing(log_url: str) -> None:
    """A value the column cannot hold (a version longer than its 32 characters) rejects the whole batch as bad
    values, which the writer drops and counts instead of retrying forever; none of the batch's rows is written."""
    from dataclasses import replace

    from mlplatform.predictions.sinks import PostgresSink
    from mlplatform.store.db import PlatformStore

    PlatformStore.migrated(log_url).dispose()
    sink = PostgresSink(log_url)
    good, bad = make_record(1), replace(make_record(2), model_version="v" * 40)
    with pytest.raises(ValueError, match="rejected the batch's values"):
        sink.write([good, bad])
    assert sink.read(good.model_name).empty
    sink.write([good])
    assert sink.read(good.model_name)["request_id"].tolist() == [good.request_id]


def test_migration_creates_the_table_and_its_time_window_index(postgres_database: str) -> None:
    import sqlalchemy as sa

    from mlplatform.store import PlatformStore

    store = PlatformStore.migrated(postgres_database)
    try:
        inspector = sa.inspect(store.engine)
        columns = {column["name"]: column for column in inspector.get_columns("prediction_log")}
        indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("prediction_log")}
    finally:
        store.dispose()
    assert set(columns) == {
        "id",
        "request_id",
        "ts",
        "model_name",
        "model_version",
        "entity",
        "features",
        "score",
        "label",
        "arm",
        "shadow",
        "latency_s",
        "error",
    }
    assert isinstance(columns["ts"]["type"], sa.DateTime) and columns["ts"]["type"].timezone
    assert isinstance(columns["id"]["type"], sa.BigInteger)
    assert columns["label"]["nullable"]  # migration 0007
    assert columns["score"]["nullable"] and columns["error"]["nullable"]  # 0011: a failure has no score
    assert indexes["ix_prediction_log_model_name_ts"] == ["model_name", "ts"]


# -- model servers hold a role that may only append to the log ------------------------------------------------


@pytest.fixture()
def writer_url(postgres_database: str, tmp_path: Path) -> Iterator[str]:
    """The database migrated by its owner, and a role made by `mlplatform db grant-prediction-writer`; yields the
    URL a model server would get.  Roles are cluster-wide: this one has a unique name and is dropped afterwards."""
    import sqlalchemy as sa
    from typer.testing import CliRunner

    from mlplatform.cli.main import app
    from mlplatform.store import PlatformStore

    PlatformStore.migrated(postgres_database).dispose()
    role = f"mlp_writer_{uuid.uuid4().hex[:8]}"
    secret = tmp_path / "writer-password"
    secret.write_text(ROLE_PASSWORD + "\n")
    args = ["db", "grant-prediction-writer", "--role", role, "--password-file", str(secret)]
    owner = sa.create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    try:
        result = CliRunner().invoke(app, args, env={"MLP_DB__URL": postgres_database, "MLP_STATE_DIR": str(tmp_path)})
        assert result.exit_code == 0, result.output
        as_writer = sa.engine.make_url(postgres_database).set(username=role, password=ROLE_PASSWORD)
        yield as_writer.render_as_string(hide_password=False)
    finally:
        with owner.connect() as connection:
            if connection.scalar(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}):
                connection.execute(sa.text(f'DROP OWNED BY "{role}"'))  # its grants in this database
                connection.execute(sa.text(f'DROP ROLE "{role}"'))
        owner.dispose()


def test_the_writer_role_inserts_predictions_and_the_sink_works_with_it(
    writer_url: str, postgres_database: str
) -> None:
    import sqlalchemy as sa

    from mlplatform.predictions.sinks import PostgresSink

    sink = PostgresSink(writer_url)
    try:
        sink.write([make_record(index) for index in range(3)])  # the revision check and the inserts
    finally:
        sink.close()
    owner = sa.create_engine(postgres_database)
    with owner.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM prediction_log")) == 3
        powerful = connection.scalar(
            sa.text("SELECT rolsuper OR rolcreatedb OR rolcreaterole FROM pg_roles WHERE rolname = :r"),
            {"r": sa.engine.make_url(writer_url).username},
        )
    owner.dispose()
    assert powerful is False


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM users",
        "SELECT token_hash FROM api_tokens",
        "SELECT * FROM prediction_log",
        "UPDATE prediction_log SET score = 0",
        "DELETE FROM prediction_log",
        "CREATE TABLE mine (id int)",
        "ALTER TABLE prediction_log ADD COLUMN x int",
        "INSERT INTO audit_events (created_at, actor, action, target, reason, result, detail) "
        "VALUES (now(), 'x', 'x', 'x', '', 'ok', '{}')",
    ],
)
def test_the_writer_role_may_do_nothing_else(writer_url: str, statement: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(writer_url)
    try:
        refused = pytest.raises(sa.exc.ProgrammingError, match=r"permission denied|must be owner")
        with refused, engine.begin() as connection:
            connection.execute(sa.text(statement))
    finally:
        engine.dispose()


def test_granting_again_takes_back_what_someone_added(writer_url: str, postgres_database: str, tmp_path: Path) -> None:
    import sqlalchemy as sa

    from mlplatform.store import PlatformStore
    from mlplatform.store.roles import grant_prediction_writer

    role = str(sa.engine.make_url(writer_url).username)
    owner = sa.create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    with owner.connect() as connection:
        connection.execute(sa.text(f'GRANT SELECT ON users TO "{role}"'))
    store = PlatformStore.connect(postgres_database)
    grant_prediction_writer(store, role, ROLE_PASSWORD)
    store.dispose()
    owner.dispose()
    test_the_writer_role_may_do_nothing_else(writer_url, "SELECT * FROM users")


def test_a_schema_newer_than_the_code_is_refused_by_the_sink(postgres_database: str) -> None:
    import sqlalchemy as sa

    from mlplatform.predictions.sinks import PostgresSink
    from mlplatform.store import PlatformStore
    from mlplatform.store.db import VERSION_TABLE, SchemaNewerError, head_revision

    PlatformStore.migrated(postgres_database).dispose()
    owner = sa.create_engine(postgres_database)
    with owner.begin() as connection:
        connection.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0999'"))
    owner.dispose()
    sink = PostgresSink(postgres_database)
    with pytest.raises(SchemaNewerError, match=f"revision 0999, which this code does not know .*{head_revision()}"):
        sink.write([make_record(0)])
    sink.close()


def test_a_privilege_granted_to_public_is_refused_not_ignored(writer_url: str, postgres_database: str) -> None:
    """Revoking from the role cannot take back what PUBLIC holds: the command says so instead of claiming
    least privilege."""
    import sqlalchemy as sa

    from mlplatform.store import PlatformStore
    from mlplatform.store.roles import RoleError, grant_prediction_writer

    owner = sa.create_engine(postgres_database, isolation_level="AUTOCOMMIT")
    with owner.connect() as connection:
        connection.execute(sa.text("GRANT SELECT ON users TO PUBLIC"))
    owner.dispose()
    store = PlatformStore.connect(postgres_database)
    try:
        with pytest.raises(RoleError, match=r"SELECT on users .*PUBLIC"):
            grant_prediction_writer(store, str(sa.engine.make_url(writer_url).username), ROLE_PASSWORD)
    finally:
        store.dispose()


def test_numpy_scalars_and_non_finite_features_read_back_alike_through_copy_and_insert(log_url: str) -> None:
    """COPY encodes the JSON columns with orjson, INSERT with the standard encoder after cleaning each value (numpy
    scalars, NaN, infinities): what is read back must not depend on the driver, hence on the path."""
    import math
    from dataclasses import replace
    from typing import cast

    import numpy as np

    from mlplatform.predictions.sinks import PostgresSink
    from mlplatform.store.db import PlatformStore

    PlatformStore.migrated(log_url).dispose()
    plain = make_record(1, features={"amount": 12.5, "txn_count_24h": 3.0})
    awkward = replace(
        make_record(2, features={"amount": float("nan"), "txn_count_24h": float("inf")}),
        entity={"customer_id": np.int64(1002)},
        score=cast(float, np.float32(0.25)),  # what a scorer returning numpy scalars would put there
        label=cast(int, np.int64(1)),
    )
    gap = make_record(3, features={"amount": np.float64(7.0), "txn_count_24h": None})
    sink = PostgresSink(log_url)
    sink.write([plain, awkward, gap])
    frame = sink.read(plain.model_name).set_index("request_id")
    rows = {record.request_id: frame.loc[record.request_id].to_dict() for record in (plain, awkward, gap)}
    assert (rows[plain.request_id]["amount"], rows[plain.request_id]["txn_count_24h"]) == (12.5, 3.0)
    assert rows[awkward.request_id]["customer_id"] == 1002
    assert (rows[awkward.request_id]["score"], rows[awkward.request_id]["label"]) == (0.25, 1)
    assert all(math.isnan(rows[awkward.request_id][name]) for name in ("amount", "txn_count_24h"))
    assert rows[gap.request_id]["amount"] == 7.0 and math.isnan(rows[gap.request_id]["txn_count_24h"])


def test_strings_with_tabs_newlines_and_backslashes_read_back_as_written(log_url: str) -> None:
    """COPY's text format gives a tab, a newline, a carriage return and a backslash meanings of their own: a request
    id, a string entity key or an error holding them must come back unchanged, as through INSERT."""
    from dataclasses import replace

    from mlplatform.predictions.sinks import PostgresSink
    from mlplatform.store.db import PlatformStore

    PlatformStore.migrated(log_url).dispose()
    scored = replace(make_record(1), request_id="tab\there\\N", entity={"customer_id": 'q"uote\\ \\n é'})
    failed = replace(
        make_record(2), request_id="line\nbreak", score=None, label=None, error="it\tfailed:\r\n\\ \\. at the end\\"
    )
    sink = PostgresSink(log_url)
    sink.write([scored, failed])
    frame = sink.read(scored.model_name).set_index("request_id")
    assert frame.loc[scored.request_id, "customer_id"] == scored.entity["customer_id"]
    assert frame.loc[failed.request_id, "error"] == failed.error
    assert frame.loc[failed.request_id, "customer_id"] == failed.entity["customer_id"]
