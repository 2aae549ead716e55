"""After the whole run (the closed loop and the bring-your-own-model guide on one stack), no log the run wrote holds
a secret the run created: the session key, the first admin's password, the CLI's API token, the webhook token or
Airflow's password.  Collected after the loop and the guide (tests/e2e/conftest.py orders them first)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import E2eWorld

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _secrets_of_the_run(world: E2eWorld) -> dict[str, str]:
    layout = world.settings.layout
    secrets = {
        name: path.read_text().strip()
        for name, path in (
            ("session key", layout.session_secret),
            ("first admin's password", layout.initial_admin_password),
            ("CLI token", layout.cli_token),
            ("webhook token", layout.webhook_token),
        )
        if path.is_file()
    }
    for user, password in json.loads(layout.airflow_passwords.read_text()).items():
        secrets[f"Airflow password of {user}"] = password
    return secrets


def _logs_of_the_run(state_dir: Path) -> list[Path]:
    """Every log file under the state directory: the stack's processes, model servers, Airflow's tasks."""
    return [
        path
        for path in state_dir.rglob("*")
        if path.is_file() and (path.suffix == ".log" or "logs" in path.relative_to(state_dir).parts)
    ]


def test_no_log_of_the_run_holds_a_secret_it_created(e2e_world: E2eWorld) -> None:
    secrets = _secrets_of_the_run(e2e_world)
    assert {"session key", "webhook token"} <= set(secrets), sorted(secrets)
    assert all(len(value) >= 8 for value in secrets.values())
    logs = _logs_of_the_run(e2e_world.settings.state_dir)
    assert len(logs) >= 5, logs  # the API, MLflow, Airflow's components, model servers, task logs
    found = [
        f"{name} in {path}"
        for path in logs
        for name, value in secrets.items()
        if value in path.read_text(errors="replace")
    ]
    assert not found, found
