"""The drift check for real: a champion trained into a real MLflow server (its reference snapshot), a parquet
prediction log written by the serving sink, real Evidently; then the CLI and the ``monitor_<model>`` DAG.

Each test logs its traffic into its own 24-hour window of one shared log, so the tests stay independent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mlplatform.config import MonitoringSettings, Settings
from mlplatform.monitoring.drift import PREDICTION, analyse
from mlplatform.monitoring.drift_check import current_frame, load_reference, run_drift_check
from mlplatform.monitoring.reports import MLFLOW_REPORT_DIR, open_report_store
from mlplatform.predictions.reader import read_prediction_log
from mlplatform.predictions.records import PredictionRecord
from mlplatform.predictions.sinks import ParquetSink, prediction_log_dir
from mlplatform.specs import find_spec
from mlplatform.store import PlatformStore
from mlplatform.store.drift import DriftCheck, DriftResults
from mlplatform.store.outcomes import OutcomeRecords
from mlplatform.training.pipeline import TrainingRequest, run_all
from tests.support.world import WORLD_END, MlflowServer, run_dag_test, settings_with_spec

pytestmark = pytest.mark.integration

MODEL = "fraud_drift"
MIN_ROWS = 200
DAY_ONE = datetime(2026, 3, 10, tzinfo=UTC)


class World:
    def __init__(self, settings: Settings, version: str, reference: pd.DataFrame, features: list[str]) -> None:
        self.settings, self.version, self.reference, self.features = settings, version, reference, features

    def log(self, frame: pd.DataFrame, end: datetime) -> None:
        """Write ``frame`` (inputs + prediction) as served predictions spread over the 24 hours before ``end``."""
        step = timedelta(hours=23) / max(len(frame), 1)
        records = [
            PredictionRecord(
                request_id=uuid.uuid4().hex,
                timestamp=end - timedelta(hours=23, minutes=30) + index * step,
                model_name=MODEL,
                model_version=self.version,
                entity={"customer_id": index},
                features={name: None if pd.isna(row[name]) else float(row[name]) for name in self.features},
                score=float(row[PREDICTION]),
                label=int(row[PREDICTION] >= 0.5),
            )
            for index, (_, row) in enumerate(frame.iterrows())
        ]
        sink = ParquetSink(prediction_log_dir(self.settings))
        sink.write(records)
        sink.close()

    def served_like_training(self, rows: int, seed: int) -> pd.DataFrame:
        return self.reference.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)

    def check(self, end: datetime, **monitoring: object) -> DriftCheck:
        settings = self.settings.model_copy(update={"monitoring": MonitoringSettings.model_validate(monitoring)})
        return run_drift_check(settings, MODEL, actor="pytest", now=end)


@pytest.fixture(scope="module")
def world(trained_world: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> World:
    settings = settings_with_spec(trained_world, tmp_path_factory.mktemp("drift"), MODEL, monitoring__min_rows=MIN_ROWS)
    outcome = run_all(settings, TrainingRequest(model=MODEL, run_key="drift/1", actor="pytest", reason="test"))
    assert outcome.promoted
    reference, features = load_reference(settings, outcome.run_id)
    return World(settings, outcome.version, reference, features)


def test_same_distribution_is_no_drift_with_a_report(world: World) -> None:
    end = DAY_ONE
    world.log(world.served_like_training(1500, seed=1), end)
    check = world.check(end)

    assert check.status == "no_drift" and check.dataset_drift is False
    assert (check.rows, check.rows_compared, check.min_rows) == (1500, 1500, MIN_ROWS)
    assert check.model_version == world.version and check.reference_rows == len(world.reference)
    assert [f.feature for f in check.features] == world.features
    assert check.drift_share is not None and check.drift_share < 0.5
    assert all(f.method and f.threshold is not None and f.score is not None for f in check.features)
    assert check.prediction_drifted is False and check.prediction_method
    assert check.has_report and check.id is not None
    report = world.settings.layout.drift_report(MODEL, check.id)
    assert "<html" in report.read_text(encoding="utf-8")[:2000].lower()


def test_shifted_traffic_is_drift(world: World) -> None:
    end = DAY_ONE + timedelta(days=2)
    shifted = world.served_like_training(1500, seed=2)
    for name in world.features:
        spread = float(world.reference[name].std()) or 1.0
        shifted[name] = shifted[name] * 1.5 + 2 * spread
    shifted[PREDICTION] = np.clip(shifted[PREDICTION] + 0.3, 0, 1)
    world.log(shifted, end)
    check = world.check(end)

    assert check.status == "drift" and check.dataset_drift is True
    assert check.drift_share is not None and check.drift_share >= 0.5
    assert check.prediction_drifted is True
    assert sum(bool(f.drifted) for f in check.features) == round(check.drift_share * len(check.features))


def test_too_few_rows_is_recorded_as_insufficient_data(world: World) -> None:
    end = DAY_ONE + timedelta(days=4)
    world.log(world.served_like_training(40, seed=3), end)
    check = world.check(end)

    assert check.status == "insufficient_data"
    assert (check.rows, check.min_rows, check.rows_compared) == (40, MIN_ROWS, 0)
    assert check.dataset_drift is None and check.drift_share is None and check.features == ()
    assert not check.has_report


def test_missing_and_out_of_range_values_are_counted(world: World) -> None:
    end = DAY_ONE + timedelta(days=6)
    frame = world.served_like_training(1000, seed=4)
    first, second = world.features[0], world.features[1]
    frame.loc[:29, first] = np.nan
    frame.loc[100:111, second] = float(world.reference[second].max()) * 10 + 1000
    frame.loc[200:204, second] = float(world.reference[second].min()) - 1000
    world.log(frame, end)
    check = world.check(end)

    by_name = {f.feature: f for f in check.features}
    assert by_name[first].missing_count == 30
    assert by_name[second].out_of_range_count == 17
    assert by_name[second].reference_max == float(world.reference[second].max())


def test_cli_prints_the_recorded_check_as_json(world: World) -> None:
    from mlplatform.cli.drift import drift_app

    end = datetime.now(UTC)
    world.log(world.served_like_training(300, seed=5), end)
    env = world.settings.child_env("api")
    result = CliRunner().invoke(drift_app, ["check", MODEL, "--window-hours", "24", "--json"], env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["status"] == "no_drift" and body["rows"] == 300 and body["actor"].startswith("cli:")
    unknown = CliRunner().invoke(drift_app, ["check", "no_such_model"], env=env)
    assert unknown.exit_code == 1 and "no model 'no_such_model'" in unknown.output


def test_a_window_within_the_cap_is_compared_as_when_the_whole_window_was_read(world: World) -> None:
    """The check samples in the data layer now; below the cap that must change nothing: the same rows reach
    Evidently as when the check loaded the window whole (``read_prediction_log``), so the same results come out."""
    end = DAY_ONE + timedelta(days=8)
    world.log(world.served_like_training(1500, seed=7), end)
    check = world.check(end)

    log = read_prediction_log(world.settings, MODEL, end - timedelta(hours=24), end)
    whole = analyse(
        world.reference,
        current_frame(log, world.features, world.version),
        world.features,
        drift_share_threshold=check.drift_share_threshold,
        max_rows=50_000,
    )
    assert (check.rows, check.rows_compared, check.detail["sampled"]) == (1500, 1500, False)
    assert check.features == whole.features and check.drift_share == whole.drift_share
    assert (check.prediction_method, check.prediction_drift_score) == (
        whole.prediction_method,
        whole.prediction_drift_score,
    )


def test_a_window_beyond_the_cap_is_compared_on_a_sample_of_the_cap(world: World) -> None:
    end = DAY_ONE + timedelta(days=10)
    world.log(world.served_like_training(1500, seed=8), end)
    check = world.check(end, max_sample_rows=1000)

    assert check.status == "no_drift"
    assert (check.rows, check.rows_compared) == (1500, 1000)  # rows in the window vs rows sampled
    assert check.detail["sampled"] is True and check.detail["max_sample_rows"] == 1000
    assert check.detail["prediction_rows"] == 1500 and check.prediction_method  # counted over the window
    assert [f.feature for f in check.features] == world.features and all(f.score is not None for f in check.features)


def test_a_report_written_by_one_process_is_served_by_an_api_with_no_shared_directory(
    world: World, tmp_path: Path
) -> None:
    """With ``monitoring.report_store=mlflow``: the CLI checks in a child process, the report goes to MLflow (not
    to the checker's disk), and an API built over another state directory serves it from there."""
    from fastapi.testclient import TestClient

    from mlplatform.operations.services import ApiServices
    from mlplatform.registry.mlflow_registry import mlflow_client
    from mlplatform.webapp import create_app
    from tests.support.api_world import cheap_hash

    in_mlflow = MonitoringSettings(report_store="mlflow")
    writer = world.settings.model_copy(update={"monitoring": in_mlflow})
    world.log(world.served_like_training(300, seed=9), datetime.now(UTC))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MLP_")}, **writer.child_env("api")}
    command = [str(Path(sys.executable).parent / "mlplatform"), "drift", "check", MODEL, "--json"]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    written = json.loads(completed.stdout)
    assert written["has_report"] is True
    assert not writer.layout.drift_report(MODEL, written["id"]).exists()  # nothing on the checker's disk
    artifacts = mlflow_client(writer).list_artifacts(written["reference_run_id"], MLFLOW_REPORT_DIR)
    assert f"{MLFLOW_REPORT_DIR}/{written['id']}.html" in [artifact.path for artifact in artifacts]

    reader = writer.model_copy(
        update={
            "state_dir": tmp_path / "replica",
            "db": world.settings.db.model_copy(update={"url": world.settings.db_url}),
        }
    )
    services = ApiServices.from_settings(reader, password_hash=cheap_hash())
    viewer = f"viewer_{uuid.uuid4().hex[:8]}"
    services.auth.create_user(viewer, "viewer", None)
    headers = {"Authorization": f"Bearer {services.auth.create_token(viewer, 'reports', 1).secret}"}
    client = TestClient(create_app(reader, services))
    served = client.get(f"/api/v1/models/{MODEL}/drift/{written['id']}/report", headers=headers)
    assert served.status_code == 200, served.text
    assert "<html" in served.text[:2000].lower() and served.headers["content-security-policy"]
    assert not (tmp_path / "replica" / "monitoring").exists()

    recorded = DriftResults(services.store).get(MODEL, written["id"])
    assert recorded is not None
    store = open_report_store(reader)
    assert store.get(recorded) == served.content
    assert store.get(replace(recorded, id=10**9)) is None  # no such artifact: no report, not an error


RUN_DAG = """
import json, runpy, sys
namespace = runpy.run_path(sys.argv[1])
dag = namespace["monitor_fraud_drift"]
run = dag.test(run_conf={"window_hours": 48})
labels = namespace["labels_fraud_drift"]
states = [str(labels.test(run_conf={"window_end": sys.argv[2]}).state) for _ in range(2)]  # twice: idempotent
print("RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id, "tasks": [t.task_id for t in dag.tasks],
                              "labels": states}))
"""


def test_monitoring_dag_runs_the_check(world: World) -> None:
    settings = world.settings
    world.log(world.served_like_training(400, seed=6), datetime.now(UTC))
    result = run_dag_test(settings, RUN_DAG, WORLD_END.isoformat())
    assert result["tasks"] == ["drift_check"]
    assert result["state"].endswith("success"), result["stderr"]

    store = PlatformStore.connect(settings.db_url)
    try:
        newest = DriftResults(store).for_model(MODEL, limit=1)[0]
    finally:
        store.dispose()
    assert newest.actor == f"airflow:monitor_{MODEL}/{result['run_id']}"
    assert newest.window_end - newest.window_start == timedelta(hours=48)
    assert newest.status == "no_drift" and newest.rows >= 400
    # labels_<model> ran twice over the label source's last quality window: each label stored once
    assert all(state.endswith("success") for state in result["labels"]), result["stderr"]
    spec = find_spec(settings.model_roots, MODEL)
    source = pd.read_parquet(settings.model_data_dir(MODEL) / spec.label.source)
    times = pd.to_datetime(source[spec.label.timestamp_column], utc=True)
    window = source[times >= WORLD_END - timedelta(hours=spec.monitoring.quality_window_hours)]
    store = PlatformStore.connect(settings.db_url)
    try:
        stored = OutcomeRecords(store).labels(MODEL)
    finally:
        store.dispose()
    assert len(stored) == len(window.drop_duplicates([spec.entity_key, spec.label.timestamp_column])) > 0
