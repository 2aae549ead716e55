"""CLI behaviour that needs no running services: argument checks and clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlplatform.cli.main import app
from mlplatform.cli.settings_catalogue import render_catalogue
from tests.support.environment import REPO_ROOT, free_port

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MLP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MLP_BUNDLED_MODELS_DIR", str(REPO_ROOT / "pipelines" / "models"))
    monkeypatch.setenv("MLP_MLFLOW__PORT", str(free_port()))
    monkeypatch.setenv("MLP_AIRFLOW__PORT", str(free_port()))


def test_train_unknown_model_lists_known_ones() -> None:
    result = runner.invoke(app, ["train", "churn"])
    assert result.exit_code == 1
    assert "known models: fraud_detector" in result.output


def test_train_rejects_malformed_parameter_override() -> None:
    result = runner.invoke(app, ["train", "fraud_detector", "--param", "no-equals-sign"])
    assert result.exit_code == 2
    assert "is not key=value" in result.output


def test_train_without_a_stack_says_how_to_start_it() -> None:
    result = runner.invoke(app, ["train", "fraud_detector"])
    assert result.exit_code == 1
    assert "mlplatform stack up" in result.output


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
