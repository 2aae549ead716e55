"""CLI behaviour that needs no running services: argument checks and clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.cli.settings_catalogue import render_catalogue
from mlplatform.config import get_settings
from mlplatform.store import PlatformStore
from tests.support.environment import REPO_ROOT, free_port

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLP_BUNDLED_MODELS_DIR", str(REPO_ROOT / "pipelines" / "models"))
    monkeypatch.setenv("MLP_MLFLOW__PORT", str(free_port()))
    monkeypatch.setenv("MLP_AIRFLOW__PORT", str(free_port()))
    PlatformStore.migrated(get_settings().db_url).dispose()  # what `stack up` does first


def test_train_unknown_model_lists_known_ones() -> None:
    result = runner.invoke(app, ["train", "churn"])
    assert result.exit_code == 1
    assert "known models: fraud_detector" in result.output


def test_train_rejects_malformed_parameter_override() -> None:
    result = runner.invoke(app, ["train", "fraud_detector", "--param", "no-equals-sign"])
    assert result.exit_code == 2
    assert "is not key=value" in result.output


def test_train_of_a_model_without_data_fails_fast_naming_the_fix() -> None:
    """Validation runs before Airflow is asked: no stack, no data, and the answer names the data, not a timeout."""
    result = runner.invoke(app, ["train", "fraud_detector"])
    assert result.exit_code == 1
    assert "does not validate, so no training run was started" in result.output
    assert "data/fraud_detector" in result.output


def test_models_show_without_mlflow_names_the_url() -> None:
    result = runner.invoke(app, ["models", "show", "fraud_detector", "--json"])
    assert result.exit_code == 1
    assert "is unreachable" in result.output and "127.0.0.1" in result.output


def test_settings_docs_prints_the_catalogue_and_show_masks_nothing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    assert runner.invoke(app, ["settings", "docs"]).output == render_catalogue()
    monkeypatch.setenv("MLP_AIRFLOW__PASSWORD", "hunter2-secret")
    shown = runner.invoke(app, ["settings", "show"])
    assert shown.exit_code == 0
    assert "hunter2-secret" not in shown.output
    assert json.loads(shown.output)["feast"]["online_store"] == "sqlite"


def test_api_users_create_refuses_a_taken_name_like_every_command_fails() -> None:
    """`mlplatform api ...` fails as the other command groups do: exit 1, `error:` and the reason."""
    first = runner.invoke(app, ["api", "users", "create", "ana", "--role", "viewer", "--no-password"])
    assert first.exit_code == 0, first.output
    assert "created user ana (viewer)" in first.output
    again = runner.invoke(app, ["api", "users", "create", "ana", "--no-password"])
    assert again.exit_code == 1
    assert "error:" in again.output and "ana" in again.output


# -------------------------------------------------------------------------------------- any model, not the demo


DEMO_NAMES = ("fraud", "customer", "amount")


@pytest.mark.parametrize(
    "command", [["predict", "--help"], ["traffic", "--help"], ["deploy", "--help"], ["loop", "run", "--help"]]
)
def test_help_texts_name_no_demo_model(command: list[str]) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == 0, result.output
    assert not [name for name in DEMO_NAMES if name in result.output.lower()], result.output


def _words(output: str) -> str:
    """The output with the error box's borders and line breaks gone (its wrapping depends on the terminal)."""
    return " ".join(output.replace("│", " ").split())


def test_deploy_port_must_be_unprivileged() -> None:
    result = runner.invoke(app, ["deploy", "fraud_detector", "--port", "80"])
    assert result.exit_code == 2
    assert "Invalid value for '--port': Input should be greater than or equal to 1024" in _words(result.output)


@pytest.fixture()
def other_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A model without a bundled data generator, in the models directory users create models in."""
    models = tmp_path / "models"
    (models / "churn_model").mkdir(parents=True)
    spec = (REPO_ROOT / "pipelines" / "models" / "fraud_detector" / "spec.yaml").read_text()
    (models / "churn_model" / "spec.yaml").write_text(spec.replace("name: fraud_detector", "name: churn_model"))
    monkeypatch.setenv("MLP_MODELS_DIR", str(models))
    return "churn_model"


def test_loop_run_needs_a_model() -> None:
    result = runner.invoke(app, ["loop", "run"])
    assert result.exit_code == 2 and "Missing argument 'model'" in _words(result.output)


def test_loop_run_of_an_unknown_model_lists_the_known_ones() -> None:
    result = runner.invoke(app, ["loop", "run", "churn"])
    assert (
        result.exit_code == 1
        and "no model 'churn'" in result.output
        and "known models: fraud_detector" in result.output
    )


def test_loop_run_of_a_model_without_a_generator_asks_for_a_drifted_table(other_model: str) -> None:
    result = runner.invoke(app, ["loop", "run", other_model])
    assert result.exit_code == 1
    assert f"{other_model} has no bundled data generator: pass --drifted FILE" in result.output


def test_loop_run_refuses_generator_sizes_with_a_drifted_table(other_model: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["loop", "run", other_model, "--drifted", str(tmp_path / "d.parquet"), "--days", "3"])
    assert result.exit_code == 1 and "--days size a bundled generator's data" in result.output


def test_loop_run_names_a_missing_drifted_file(other_model: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.parquet"
    result = runner.invoke(app, ["loop", "run", other_model, "--drifted", str(missing)])
    assert result.exit_code == 1 and f"--drifted {missing}: no such file" in result.output


def test_loop_run_names_a_drifted_file_that_is_not_parquet(other_model: str, tmp_path: Path) -> None:
    text = tmp_path / "drifted.csv"
    text.write_text("patient_id,bmi\n1,30\n")
    result = runner.invoke(app, ["loop", "run", other_model, "--drifted", str(text)])
    assert result.exit_code == 1 and f"--drifted {text}: not a readable parquet file" in result.output


def test_loop_run_before_features_are_applied_says_so(other_model: str, tmp_path: Path) -> None:
    import pandas as pd

    drifted = tmp_path / "drifted.parquet"
    pd.DataFrame({"customer_id": [1], "credit_limit": [5.0]}).to_parquet(drifted)
    result = runner.invoke(app, ["loop", "run", other_model, "--drifted", str(drifted)])
    assert result.exit_code == 1
    assert f"--drifted {drifted}: no entity ids for {other_model}" in result.output
    assert "mlplatform features apply" in result.output
