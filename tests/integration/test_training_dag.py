"""The generated training DAG, run for real with Airflow's `dag.test()` against a real MLflow server.

Airflow reads its configuration when first imported, so the run happens in a child process with the same
environment the embedded stack gives its components (``airflow_env``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry
from tests.support.environment import REPO_ROOT
from tests.support.world import MlflowServer, run_dag_test, settings_with_spec

pytestmark = pytest.mark.integration

RUN_DAG = """
import json, runpy, sys
namespace = runpy.run_path(sys.argv[1])
dag = namespace["train_fraud_detector"]
tasks = sorted(task.task_id for task in dag.tasks)
run = dag.test(run_conf={"reason": "dag.test", "requested_by": "pytest", "estimator_params": {"max_iter": 120}})
print("RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id, "tasks": tasks}))
"""


def test_generated_dag_trains_registers_and_promotes(trained_world: MlflowServer) -> None:
    settings = trained_world.settings
    result = run_dag_test(settings, RUN_DAG)
    assert result["tasks"] == ["gate_and_promote", "prepare_training_set", "register_version", "train_and_evaluate"]
    assert result["state"].endswith("success"), result["stderr"]

    registry = ModelRegistry(settings)
    versions = [v for v in registry.versions("fraud_detector") if v.lineage.get("dag_run_id") == result["run_id"]]
    assert len(versions) == 1
    version = versions[0]
    assert version.lineage["dag_id"] == "train_fraud_detector"
    assert version.lineage["reason"] == "dag.test"
    assert version.metrics["roc_auc"] >= 0.85
    champion = registry.alias_holder("fraud_detector", CHAMPION)
    assert champion is not None and champion.version == version.version
    moves = registry.store.alias_history("fraud_detector", CHAMPION)
    assert moves[-1].actor == f"pytest via airflow:train_fraud_detector/{result['run_id']}"
    run = registry.client.get_run(str(version.run_id))
    assert run.data.params["estimator.max_iter"] == "120"


def test_dag_file_parses_without_heavy_imports(tmp_path: Path) -> None:
    """The dag-processor parses the file often: it must not import MLflow, Feast, scikit-learn or Evidently.

    The file defines a training, a monitoring and a labels DAG per spec, all checked here.
    """
    probe = (
        "import runpy, sys; names = runpy.run_path(sys.argv[1]); "
        "dags = sorted(k for k in names if k.startswith(('train_', 'monitor_', 'labels_'))); "
        "heavy = [m for m in ('mlflow', 'feast', 'sklearn', 'evidently', 'pandas') if m in sys.modules]; "
        "print(dags); print(heavy)"
    )
    completed = subprocess.run(
        [sys.executable, "-c", probe, str(REPO_ROOT / "pipelines" / "dags" / "model_dags.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={
            "MLP_BUNDLED_MODELS_DIR": str(REPO_ROOT / "pipelines" / "models"),
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
        },
    )
    *_, dags, heavy = completed.stdout.strip().splitlines()
    assert dags == "['labels_fraud_detector', 'monitor_fraud_detector', 'train_fraud_detector']"
    assert heavy == "[]"


RUN_BAD_DAG = """
import json, runpy, sys
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
namespace = runpy.run_path(sys.argv[1])
dag = namespace["train_bad_source"]
run = dag.test(run_conf={"reason": "dag.test", "requested_by": "pytest"})
ti = run.get_task_instance("prepare_training_set")
with create_session() as session:
    rows = session.query(XComModel).filter(
        XComModel.dag_id == dag.dag_id, XComModel.run_id == run.run_id, XComModel.key == sys.argv[2]
    ).all()
print("RESULT " + json.dumps({
    "state": str(run.state), "ti_state": str(ti.state), "try_number": ti.try_number,
    "reason": [str(row.value) for row in rows],
}))
"""


def test_a_deterministic_error_fails_the_task_at_once_with_its_reason(
    trained_world: MlflowServer, tmp_path: Path
) -> None:
    from mlplatform.orchestration.dags import FAILURE_REASON_KEY

    settings = settings_with_spec(trained_world, tmp_path, "bad_source", label__source="missing.parquet")
    result = run_dag_test(settings, RUN_BAD_DAG.replace("sys.argv[2]", repr(FAILURE_REASON_KEY)))
    assert result["state"].endswith("failed"), result["stderr"]
    assert result["ti_state"].endswith("failed")
    assert result["try_number"] == 1  # not retried, although the DAG allows retries
    (reason,) = result["reason"]
    assert "TrainingDataError: label source" in reason and "missing.parquet does not exist" in reason
