"""A drift alert that arrives while Airflow is down is not lost: the real embedded stack (MLflow, Airflow 3, the
platform API with its retry worker) with Airflow's api-server really stopped when the alert is posted, then
started again; the stack's API triggers the training DAG by itself, exactly once, with the alert's reason.

The training DAG is a probe with the model's DAG id (``train_fraud_detector``) that writes the conf it got, so
the test needs no data or training; the trigger path (REST login, the paused check, run id, conf) is the real one.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlplatform.config import Settings
from mlplatform.retraining.alertmanager import webhook_token
from mlplatform.stack import EmbeddedStack, airflow_client
from mlplatform.stack.embedded import AIRFLOW_API
from tests.support.alerts import alert, payload
from tests.support.api_world import MODEL
from tests.support.environment import free_port
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(500)]

PROBE_TRAINING_DAG = """
import json
import os

from airflow.sdk import dag, task


@dag(dag_id="train_fraud_detector", schedule=None, catchup=False)
def train_fraud_detector():
    @task
    def record(**context):
        with open(os.path.join(os.environ["MLP_STATE_DIR"], "retrain_probe.json"), "w") as handle:
            json.dump({"run_id": context["dag_run"].run_id, "conf": context["dag_run"].conf}, handle)

    record()


train_fraud_detector()
"""


@pytest.fixture()
def stack(settings: Settings, tmp_path: Path) -> Iterator[EmbeddedStack]:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "train_probe.py").write_text(textwrap.dedent(PROBE_TRAINING_DAG))
    stack_settings = settings.model_copy(
        update={
            "airflow": settings.airflow.model_copy(update={"dags_folder": dags}),
            "api": settings.api.model_copy(update={"port": free_port()}),
            # Prometheus and Alertmanager are covered by tests/monitoring/test_monitoring_live_loop.py.
            "prometheus": settings.prometheus.model_copy(update={"enabled": False}),
            "alerts": type(settings.alerts).model_validate(
                {"retry_initial_s": 1.0, "retry_max_s": 2.0, "worker_interval_s": 0.5}
            ),
        }
    )
    embedded = EmbeddedStack(stack_settings)
    try:
        yield embedded
    finally:
        embedded.down()


def test_an_alert_during_an_airflow_outage_is_triggered_once_airflow_is_back(stack: EmbeddedStack) -> None:
    settings = stack.settings
    stack.up()
    with airflow_client(settings) as airflow:
        airflow.wait_for_dag(f"train_{MODEL}", timeout=120)
    stack.supervisor.stop(AIRFLOW_API)  # Airflow really down: its REST API refuses connections
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.airflow_url}/api/v2/monitor/health", timeout=3)

    api = httpx.Client(base_url=stack.api_url, timeout=30)
    token = {"Authorization": f"Bearer {webhook_token(settings)}"}
    answer = api.post("/api/v1/alerts/alertmanager", json=payload(alert()), headers=token)
    assert answer.status_code == 200, answer.text
    [pending] = answer.json()["retrains"]
    assert pending["status"] == "pending" and "unreachable" in pending["last_error"]

    stack.up()  # starts only what is missing: the Airflow api-server
    _log_in(api, settings)

    def settled() -> dict[str, Any] | None:
        latest: dict[str, Any] = api.get(f"/api/v1/models/{MODEL}/retrains").json()[0]
        return latest if latest["status"] != "pending" else None

    record = wait_for(settled, 120, "the pending retrain to be triggered once Airflow is back", interval=1)
    assert record["status"] == "triggered" and record["attempts"] >= 2
    assert record["dag_run_id"] == pending["dag_run_id"]

    replay = api.post("/api/v1/alerts/alertmanager", json=payload(alert()), headers=token).json()["retrains"]
    assert replay[0]["skip_reason"] == "duplicate"
    with airflow_client(settings) as airflow:
        runs = airflow.list_runs(f"train_{MODEL}")
        assert [run.run_id for run in runs] == [record["dag_run_id"]], "one run, under the platform's run id"
        assert airflow.wait(f"train_{MODEL}", record["dag_run_id"], poll_interval=1, timeout=150).state == "success"
    probe = json.loads((settings.state_dir / "retrain_probe.json").read_text())
    assert probe["conf"]["requested_by"] == "alertmanager"
    assert probe["conf"]["reason"].startswith("DatasetDriftDetected since 2026-03-01T12:00:00+00:00")
    metrics = api.get("/metrics").text
    assert f'mlplatform_retrain_triggers_total{{model="{MODEL}",result="triggered"}} 1.0' in metrics
    assert f'mlplatform_retrain_triggers_total{{model="{MODEL}",result="duplicate"}} 1.0' in metrics


def _log_in(api: httpx.Client, settings: Settings) -> None:
    """A session (cookie on ``api``) as the bootstrapped admin, whose one-time password is in the 0600 file."""
    password = settings.layout.initial_admin_password.read_text().strip()
    login = api.post("/api/v1/session", json={"username": settings.api.admin_username, "password": password})
    assert login.status_code == 200, login.text
