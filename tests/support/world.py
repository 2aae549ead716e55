"""A small, real demo world for the integration tests: data, an applied Feast registry and a real MLflow server;
settings over it, and Airflow DAG runs (``dag.test()``) in a child process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from mlplatform.config import Settings, get_settings
from mlplatform.stack.embedded import mlflow_argv, mlflow_env
from mlplatform.stack.supervisor import Supervisor
from tests.support.environment import REPO_ROOT, free_port, with_migrated_db

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
    """Settings for a test world under ``state_dir``: repo specs and features, MLflow on a free port, the platform
    DB migrated."""
    settings = get_settings(
        state_dir=state_dir,
        bundled_models_dir=REPO_ROOT / "pipelines" / "models",
        feast={"repo_path": REPO_ROOT / "feature_repo", "project": "mlp_train"},
        mlflow={"port": free_port(), **(mlflow or {})},
        **overrides,
    )
    return with_migrated_db(settings)


def build_world(settings: Settings) -> None:
    """Demo data and an applied Feast registry: what training reads."""
    from mlplatform.demo.fraud_data import MODEL, generate
    from mlplatform.features.store import FeatureStoreAdapter

    generate(
        settings.model_data_dir(MODEL), end=WORLD_END, customers=SMALL_WORLD["customers"], days=SMALL_WORLD["days"]
    )
    FeatureStoreAdapter(settings).apply()


def run_dag_test(settings: Settings, script: str, *args: str) -> dict[str, Any]:
    """Run ``script`` (which calls ``dag.test()`` on a DAG of the repo's DAG file and prints ``RESULT <json>``) in a
    child process with the embedded stack's Airflow environment: Airflow reads its configuration on first import."""
    import subprocess
    import sys

    from mlplatform.stack.embedded import airflow_env, prepare_airflow_home

    prepare_airflow_home(settings)
    env = airflow_env(settings)
    airflow = REPO_ROOT / ".venv" / "bin" / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    completed = subprocess.run(
        [sys.executable, "-c", script, str(REPO_ROOT / "pipelines" / "dags" / "model_dags.py"), *args],
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


def share_fraud_data(data_dir: Path, name: str) -> None:
    """Give model ``name`` the fraud demo's tables: ``<data_dir>/<name>`` links to ``<data_dir>/fraud_detector``.

    A copied spec only needs the labels under its own data directory; its features stay the fraud model's (the
    copy has no features.yaml, so no Feast view is defined twice)."""
    link = data_dir / name
    if not link.exists():
        link.symlink_to(data_dir / "fraud_detector", target_is_directory=True)


def settings_with_spec(world: MlflowServer, tmp_path: Path, name: str, **changes: object) -> Settings:
    """The world's settings with a private copy of the fraud spec under another model name (sharing its data)."""
    spec = yaml.safe_load((REPO_ROOT / "pipelines" / "models" / "fraud_detector" / "spec.yaml").read_text())
    spec["name"] = name
    for dotted, value in changes.items():
        target = spec
        *parents, leaf = dotted.split("__")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    models_dir = tmp_path / "models"
    (models_dir / name).mkdir(parents=True)
    (models_dir / name / "spec.yaml").write_text(yaml.safe_dump(spec))
    share_fraud_data(world.settings.data_dir, name)
    return world.settings.model_copy(update={"models_dir": models_dir})
