"""Settings: environment overrides, strictness, derived locations, the catalogue kept in step with the code."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import SettingsError

from mlplatform.cli.settings_catalogue import render_catalogue
from mlplatform.config import SECRET_ENV, get_settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_environment_overrides_nested_values(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLP_MLFLOW__PORT", "5999")
    monkeypatch.setenv("MLP_FEAST__ONLINE_STORE", "redis")
    settings = get_settings(state_dir=tmp_path)
    assert settings.mlflow.port == 5999
    assert settings.mlflow.resolved_tracking_uri() == "http://127.0.0.1:5999"
    assert settings.feast.online_store == "redis"


def test_embedded_defaults_live_under_the_state_dir(tmp_path: Path) -> None:
    settings = get_settings(state_dir=tmp_path / "s")
    assert settings.db_url == f"sqlite:///{tmp_path / 's' / 'platform.db'}"
    assert settings.feast_registry_path == tmp_path / "s" / "feast" / "registry.db"
    assert settings.data_dir == tmp_path / "s" / "data"


@pytest.mark.parametrize(
    ("sink", "batch_size", "expected"),
    [("parquet", None, 500), ("postgres", None, 100), ("parquet", 40, 40), ("postgres", 2_000, 2_000)],
)
def test_the_prediction_log_batch_fits_its_sink_unless_set(
    tmp_path: Path, sink: str, batch_size: int | None, expected: int
) -> None:
    """A parquet batch is a file (few and large); a PostgreSQL batch is a transaction (short bursts)."""
    serving = {"prediction_log": sink, "log_batch_size": batch_size}
    assert get_settings(state_dir=tmp_path, serving=serving).serving.resolved_log_batch_size == expected


def test_relative_paths_are_pinned_to_the_working_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = get_settings(state_dir="rel")
    assert settings.state_dir == tmp_path / "rel"


def test_child_env_rebuilds_the_same_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = get_settings(state_dir=tmp_path, mlflow={"port": 5123}, feast={"online_store": "redis"})
    for key, value in original.child_env("api").items():
        monkeypatch.setenv(key, value)
    rebuilt = get_settings()
    assert rebuilt.state_dir == original.state_dir
    assert rebuilt.mlflow.resolved_tracking_uri() == "http://127.0.0.1:5123"
    assert rebuilt.feast.online_store == "redis"
    assert rebuilt.db_url == original.db_url


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"mlflow": {"prot": 1}}, "prot"),
        ({"mlflow": {"port": 70000}}, "less than or equal to 65535"),
        ({"feast": {"online_store": "memcached"}}, "'sqlite' or 'redis'"),
        ({"feast": {"project": "Bad-Name"}}, "String should match pattern"),
        ({"api": {"session_secret": ""}}, "api.session_secret must be at least 32 characters"),
        ({"api": {"session_secret": "s" * 31}}, "api.session_secret must be at least 32 characters"),
        ({"alerts": {"webhook_token": " " * 20}}, "alerts.webhook_token must be at least 16 characters"),
    ],
)
def test_invalid_settings_are_rejected_with_the_field(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        get_settings(**overrides)


def test_a_refused_secret_is_not_shown_in_the_error() -> None:
    with pytest.raises(ValidationError) as raised:
        get_settings(api={"session_secret": "short-but-secret"})
    assert "short-but-secret" not in str(raised.value)
    assert "api.session_secret must be at least 32 characters" in str(raised.value)


def test_secrets_are_masked_when_shown() -> None:
    settings = get_settings(airflow={"password": "s3cret-value"})
    assert "s3cret-value" not in settings.model_dump_json()
    assert settings.airflow.password is not None and settings.airflow.password.get_secret_value() == "s3cret-value"


def _secret_files(directory: Path, files: dict[str, str]) -> Path:
    """A secrets directory laid out as Kubernetes mounts a Secret volume: files behind a hidden ``..data`` link."""
    data = directory / "..2026_01_01_00_00_00.000000001"
    data.mkdir(parents=True)
    (directory / "..data").symlink_to(data.name)
    for name, content in files.items():
        (data / name).write_text(content)
        (directory / name).symlink_to(f"..data/{name}")
    return directory


def test_secrets_are_read_from_files_named_like_the_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    directory = _secret_files(
        tmp_path / "secrets",
        {
            "MLP_DB__URL": "postgresql+psycopg://mlp:pw@db:5432/mlp\n",
            "MLP_API__SESSION_SECRET": "k" * 40 + "\n",
            "MLP_SERVING__PREDICTION_LOG_URL": "postgresql+psycopg://writer:pw@db:5432/mlp",
        },
    )
    monkeypatch.setenv("MLP_SECRETS_DIR", str(directory))
    settings = get_settings(state_dir=tmp_path)
    assert settings.db_url == "postgresql+psycopg://mlp:pw@db:5432/mlp"
    assert settings.api.session_secret is not None and settings.api.session_secret.get_secret_value() == "k" * 40
    assert settings.serving.prediction_log_url == "postgresql+psycopg://writer:pw@db:5432/mlp"
    assert settings.secrets_dir == directory


def test_the_secrets_directory_can_be_passed_at_construction(tmp_path: Path) -> None:
    directory = _secret_files(tmp_path / "secrets", {"MLP_AIRFLOW__PASSWORD": "from-a-file"})
    settings = get_settings(state_dir=tmp_path, _secrets_dir=directory)
    assert settings.airflow.password is not None and settings.airflow.password.get_secret_value() == "from-a-file"


def test_a_variable_wins_over_its_secret_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    directory = _secret_files(tmp_path / "secrets", {"MLP_AIRFLOW__USERNAME": "from-file"})
    monkeypatch.setenv("MLP_AIRFLOW__USERNAME", "from-env")
    assert get_settings(state_dir=tmp_path, _secrets_dir=directory).airflow.username == "from-env"


def test_secret_files_are_validated_like_variables(tmp_path: Path) -> None:
    """An emptied key file is the empty-secret hole again: refused, without showing what the file held."""
    directory = _secret_files(tmp_path / "secrets", {"MLP_API__SESSION_SECRET": "short-secret\n"})
    with pytest.raises(ValidationError, match=r"api\.session_secret must be at least 32 characters") as raised:
        get_settings(state_dir=tmp_path, _secrets_dir=directory)
    assert "short-secret" not in str(raised.value)


def test_an_unknown_secret_file_is_an_error(tmp_path: Path) -> None:
    directory = _secret_files(tmp_path / "secrets", {"MLP_DB__URLL": "sqlite://"})
    with pytest.raises(ValidationError, match=r"db\.urll"):
        get_settings(state_dir=tmp_path, _secrets_dir=directory)


def test_a_missing_secrets_directory_is_an_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLP_SECRETS_DIR", str(tmp_path / "absent"))
    with pytest.raises(SettingsError, match="absent"):
        get_settings(state_dir=tmp_path)


def test_catalogue_document_matches_the_code() -> None:
    documented = (REPO_ROOT / "docs" / "settings.md").read_text()
    assert documented == render_catalogue(), "docs/settings.md is stale: run `make settings-docs`"
    for variable in ("MLP_STATE_DIR", "MLP_FEAST__REDIS_CONNECTION_STRING", "MLP_TRAINING__THREADS"):
        assert f"`{variable}`" in documented


def test_each_child_gets_only_the_secrets_its_purpose_needs(tmp_path: Path) -> None:
    """A model server or MLflow that is compromised holds no session key, webhook token or platform DB owner."""
    settings = get_settings(
        state_dir=tmp_path,
        api={"session_secret": "k" * 40, "admin_password": "first-admin-password"},
        alerts={"webhook_token": "w" * 20},
        db={"url": "postgresql://owner:pw@db/platform"},
        serving={"prediction_log": "postgres", "prediction_log_url": "postgresql://writer:pw@db/platform"},
        feast={"online_store": "redis", "redis_connection_string": "redis:6379,password=r"},
    )
    everything = {"MLP_API__SESSION_SECRET", "MLP_API__ADMIN_PASSWORD", "MLP_ALERTS__WEBHOOK_TOKEN", "MLP_DB__URL"}
    assert everything <= set(settings.child_env("api"))
    server = settings.child_env("model_server")
    assert server["MLP_SERVING__PREDICTION_LOG_URL"].startswith("postgresql://writer:")
    assert server["MLP_FEAST__REDIS_CONNECTION_STRING"] == "redis:6379,password=r"
    assert not {"MLP_DB__URL", "MLP_API__SESSION_SECRET", "MLP_ALERTS__WEBHOOK_TOKEN"} & set(server)
    assert server["MLP_STATE_DIR"] == str(tmp_path)  # what is not a secret still goes everywhere

    airflow = settings.child_env("airflow")
    assert airflow["MLP_DB__URL"].startswith("postgresql://owner:") and "MLP_API__SESSION_SECRET" not in airflow
    assert not SECRET_ENV & set(settings.child_env("mlflow"))

    without_log_url = settings.model_copy(
        update={"serving": settings.serving.model_copy(update={"prediction_log_url": None})}
    )
    assert without_log_url.child_env("model_server")["MLP_DB__URL"].startswith("postgresql://owner:")
