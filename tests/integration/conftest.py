"""Fixtures that start real servers (MLflow) and build a small, real demo world (data + Feast registry)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlplatform.config import Settings, get_settings
from mlplatform.stack.embedded import mlflow_argv, mlflow_env
from mlplatform.stack.supervisor import Supervisor
from tests.conftest import REPO_ROOT, free_port

# Small but learnable: enough fraud episodes for a holdout with both classes and a stable ROC AUC.
SMALL_WORLD = {"customers": 400, "days": 40}
WORLD_END = datetime(2026, 3, 1, tzinfo=UTC)


@dataclass
class MlflowServer:
    settings: Settings
    supervisor: Supervisor


def start_mlflow(settings: Settings) -> Supervisor:
    """A real `mlflow server` process for ``settings`` (stopped by the caller)."""
    supervisor = Supervisor(settings.state_dir)
    supervisor.start("mlflow", mlflow_argv(settings), mlflow_env(settings), cwd=settings.layout.mlflow_dir)
    supervisor.wait_healthy("mlflow", f"{settings.mlflow.resolved_tracking_uri()}/health", timeout=120)
    return supervisor


def world_settings(state_dir: Path, mlflow: dict[str, object] | None = None, **overrides: object) -> Settings:
    """Settings for a test world under ``state_dir``: repo specs and features, MLflow on a free port."""
    return get_settings(
        state_dir=state_dir,
        specs_dir=REPO_ROOT / "pipelines" / "specs",
        feast={"repo_path": REPO_ROOT / "feature_repo", "project": "mlp_train"},
        mlflow={"port": free_port(), **(mlflow or {})},
        **overrides,
    )


def build_world(settings: Settings) -> None:
    """Demo data and an applied Feast registry: what training reads."""
    from mlplatform.demo.fraud_data import generate
    from mlplatform.features.store import FeatureStoreAdapter

    generate(settings.data_dir, end=WORLD_END, **SMALL_WORLD)
    FeatureStoreAdapter(settings).apply()


@pytest.fixture(scope="session")
def trained_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One MLflow server + data + Feast registry shared by the training tests (each uses its own model name)."""
    settings = world_settings(tmp_path_factory.mktemp("world") / "state")
    build_world(settings)
    supervisor = start_mlflow(settings)
    try:
        yield MlflowServer(settings=settings, supervisor=supervisor)
    finally:
        supervisor.stop("mlflow")


def run_dag_test(settings: Settings, script: str) -> dict[str, Any]:
    """Run ``script`` (which calls ``dag.test()`` on a DAG of the repo's DAG file and prints ``RESULT <json>``) in a
    child process with the embedded stack's Airflow environment: Airflow reads its configuration on first import."""
    import json
    import subprocess
    import sys

    from mlplatform.stack.embedded import airflow_env, prepare_airflow_home

    prepare_airflow_home(settings)
    env = airflow_env(settings)
    airflow = REPO_ROOT / ".venv" / "bin" / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    completed = subprocess.run(
        [sys.executable, "-c", script, str(REPO_ROOT / "pipelines" / "dags" / "model_dags.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    results = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    assert results, f"dag.test printed no result:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(results[-1].removeprefix("RESULT "))
    result["stderr"] = completed.stderr[-3000:]
    return result
