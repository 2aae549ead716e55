"""``models init`` and ``models validate`` end to end in embedded mode: the CLI calls the API in-process, which
checks the tables, writes the model folder, applies real Feast definitions, loads the online store and fits a model
on a sample.  Then each mistake validation must catch, and the upload endpoint's refusals."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.config import Settings
from mlplatform.operations.services import ApiServices
from mlplatform.store.auth import ROLES
from mlplatform.webapp import create_app
from tests.support.api_world import cheap_hash, user_for
from tests.support.onboarding import FEATURE_REPO, KEY, LABEL, Tables, onboarding_settings, write_tables

runner = CliRunner()
MODEL = "machines"


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Tables, str]]:
    """One model created through `models init` (module-wide: Feast apply and the sample fit take seconds)."""
    root = tmp_path_factory.mktemp("onboard")
    settings = onboarding_settings(root / "state")
    tables = write_tables(root / "in")
    env = {
        "MLP_STATE_DIR": str(settings.state_dir),
        "MLP_BUNDLED_MODELS_DIR": str(settings.bundled_models_dir),
        "MLP_FEAST__REPO_PATH": str(FEATURE_REPO),
        "MLP_FEAST__PROJECT": "mlp_onboard",
    }
    result = runner.invoke(
        app,
        [
            "models",
            "init",
            MODEL,
            "--entity-key",
            KEY,
            "--features",
            str(tables.features),
            "--labels",
            str(tables.labels),
            "--label",
            LABEL,
        ],
        env=env,
    )
    yield settings, tables, result.output
    assert result.exit_code == 0, result.output


def cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {
        "MLP_STATE_DIR": str(settings.state_dir),
        "MLP_BUNDLED_MODELS_DIR": str(settings.bundled_models_dir),
        "MLP_FEAST__REPO_PATH": str(FEATURE_REPO),
        "MLP_FEAST__PROJECT": "mlp_onboard",
    }
    result = runner.invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_init_creates_registers_and_validates(created: tuple[Settings, Tables, str]) -> None:
    settings, _, output = created
    assert "note: machine_readings.parquet: event_timestamp has no time zone; read as UTC" in output
    assert "nanosecond precision; converted to microseconds" in output
    assert "ok   sample fit: fitted on 300 rows, saved, loaded and scored 20 rows" in output
    assert f"{MODEL} is ready to train" in output
    assert (settings.user_models_dir / MODEL / "spec.yaml").is_file()
    assert (settings.model_data_dir(MODEL) / "failures.parquet").is_file()
    code, listed = cli(settings, "models", "list")
    assert code == 0 and MODEL in listed
    code, again = cli(settings, "models", "validate", MODEL)
    assert code == 0, again
    assert "ok   features.service: machines: 5 features" in again


def test_init_refuses_an_existing_name_and_bad_data(created: tuple[Settings, Tables, str], tmp_path: Path) -> None:
    settings, tables, _ = created
    code, output = cli(
        settings,
        "models",
        "init",
        MODEL,
        "--entity-key",
        KEY,
        "--features",
        str(tables.features),
        "--labels",
        str(tables.labels),
        "--label",
        LABEL,
    )
    assert code == 1
    assert f"a model named {MODEL!r} already exists" in output
    code, output = cli(
        settings,
        "models",
        "init",
        "other",
        "--entity-key",
        KEY,
        "--features",
        str(tables.features),
        "--labels",
        str(tables.labels),
        "--label",
        "nope",
    )
    assert code == 1
    assert "failures.parquet: no label column 'nope'" in output
    assert not (settings.user_models_dir / "other").exists()
    assert not settings.model_data_dir("other").exists()


def edited_copy(settings: Settings, name: str, edit: dict[str, object]) -> None:
    """A second model folder with an edited copy of the created spec (same data and features)."""
    source = settings.user_models_dir / MODEL
    spec = yaml.safe_load((source / "spec.yaml").read_text())
    spec["name"] = name
    for dotted, value in edit.items():
        target = spec
        *parents, leaf = dotted.split(".")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    (settings.user_models_dir / name).mkdir()
    (settings.user_models_dir / name / "spec.yaml").write_text(yaml.safe_dump(spec))
    data = settings.model_data_dir(name)
    data.mkdir()
    (data / "failures.parquet").write_bytes((settings.model_data_dir(MODEL) / "failures.parquet").read_bytes())


@pytest.mark.parametrize(
    ("name", "edit", "expected"),
    [
        (
            "misspelled",
            {"estimator.class_path": "sklearn.ensemble.RandomForestClasifier"},
            "FAIL estimator: cannot import sklearn.ensemble.RandomForestClasifier (fix: correct estimator.class_path",
        ),
        (
            "no_service",
            {"features.service": "machnes"},
            "FAIL features.service: unknown feature service 'machnes'",
        ),
        (
            "no_label",
            {"label.column": "failure"},
            "FAIL label.column: ",
        ),
    ],
)
def test_validate_names_each_mistake(
    created: tuple[Settings, Tables, str], name: str, edit: dict[str, object], expected: str
) -> None:
    settings, _, _ = created
    edited_copy(settings, name, edit)
    code, output = cli(settings, "models", "validate", name)
    assert code == 1
    assert expected in output
    assert f"model {name} is not ready to train" in output
    if name == "no_label":
        assert "has no column(s) failure" in output and "fix: correct label.column" in output


@pytest.fixture()
def api_client(created: tuple[Settings, Tables, str]) -> Iterator[tuple[TestClient, dict[str, str]]]:
    settings, _, _ = created
    services = ApiServices.from_settings(settings, password_hash=cheap_hash())
    tokens = {}
    for role in ROLES:
        if services.auth.get_user(user_for(role)) is None:
            services.auth.create_user(user_for(role), role, "a long test password")
        tokens[role] = services.auth.create_token(user_for(role), "test", ttl_days=1).secret
    with TestClient(create_app(settings, services)) as client:
        yield client, tokens
    services.close()


def upload(tables: Tables, **fields: str) -> dict[str, object]:
    return {
        "data": {"entity_key": KEY, "label": LABEL, **fields},
        "files": [
            ("features", (tables.features.name, tables.features.read_bytes())),
            ("labels", (tables.labels.name, tables.labels.read_bytes())),
        ],
    }


def test_upload_needs_a_data_scientist(
    api_client: tuple[TestClient, dict[str, str]], created: tuple[Settings, Tables, str]
) -> None:
    client, tokens = api_client
    tables = created[1]
    assert client.post("/api/v1/models", **upload(tables, name="anon")).status_code == 401
    answer = client.post(
        "/api/v1/models",
        headers={"Authorization": f"Bearer {tokens['viewer']}"},
        **upload(tables, name="v"),
    )
    assert answer.status_code == 403
    assert "needs the data-scientist role" in answer.json()["detail"]


def test_upload_refusals_are_4xx_naming_the_field(
    api_client: tuple[TestClient, dict[str, str]], created: tuple[Settings, Tables, str]
) -> None:
    client, tokens = api_client
    settings, tables, _ = created
    auth = {"Authorization": f"Bearer {tokens['data-scientist']}"}
    bad_name = client.post("/api/v1/models", headers=auth, **upload(tables, name="Bad-Name"))
    assert bad_name.status_code == 422
    assert bad_name.json()["detail"].startswith("name: String should match pattern")
    no_labels = client.post(
        "/api/v1/models",
        headers=auth,
        data={"name": "x_model", "entity_key": KEY, "label": LABEL},
        files=[("features", (tables.features.name, tables.features.read_bytes()))],
    )
    assert no_labels.status_code == 422
    assert no_labels.json()["detail"] == "labels: exactly one label table (parquet) is required"
    not_parquet = client.post(
        "/api/v1/models",
        headers=auth,
        data={"name": "x_model", "entity_key": KEY, "label": LABEL},
        files=[("features", ("readings.csv", b"a,b\n")), ("labels", (tables.labels.name, b"x"))],
    )
    assert not_parquet.status_code == 422
    assert "features: 'readings.csv' is not a .parquet file name" in not_parquet.json()["detail"]
    broken = client.post(
        "/api/v1/models",
        headers=auth,
        data={"name": "x_model", "entity_key": KEY, "label": LABEL},
        files=[("features", ("readings.parquet", b"not parquet")), ("labels", (tables.labels.name, b"x"))],
    )
    assert broken.status_code == 422
    assert "readings.parquet: not a readable parquet file" in broken.json()["detail"]
    exists = client.post("/api/v1/models", headers=auth, **upload(tables, name=MODEL))
    assert exists.status_code == 409
    too_big = client.post(
        "/api/v1/models", headers={**auth, "Content-Length": str(settings.api.max_upload_mb * 2**20 + 1)}, content=b""
    )
    assert too_big.status_code == 413
    assert not settings.model_data_dir("x_model").exists()
