"""The embedded stack for real: MLflow + Airflow 3 + the platform API up, a DAG run through the REST client, the API
answering with the bootstrapped admin, then nothing left behind."""

from __future__ import annotations

import contextlib
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from mlplatform.config import Settings
from mlplatform.operations.services import AirflowOrchestrator
from mlplatform.orchestration import AirflowClient, AirflowError
from mlplatform.orchestration.airflow_client import DagPausedError
from mlplatform.stack import EmbeddedStack, airflow_client, airflow_password
from mlplatform.stack.embedded import warm_execution_api
from tests.support.environment import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(400)]

PROBE_DAG = """
import json
import os
import sys

from airflow.sdk import dag, task


@dag(dag_id="stack_probe", schedule=None, catchup=False)
def stack_probe():
    @task
    def record(**context):
        conf = context["dag_run"].conf
        print("probe saw", conf["value"])
        with open(conf["out"], "w") as handle:
            # Neither imported by this file: pandas comes from the scheduler's preload (airflow.preload_modules),
            # and the platform's own modules must not (tasks import the code on disk).
            loaded = {name: name in sys.modules for name in ("pandas", "mlplatform.config")}
            json.dump({"value": conf["value"], "state_dir": os.environ.get("MLP_STATE_DIR"), "loaded": loaded}, handle)

    record()


@dag(dag_id="stack_fail", schedule=None, catchup=False)
def stack_fail():
    @task
    def explode():
        raise ValueError("intentional failure for the log test")

    explode()


stack_probe()
stack_fail()
"""


def _stack_processes(stack: EmbeddedStack) -> list[psutil.Process]:
    """Every process of the running stack: leaders and all their descendants."""
    found: list[psutil.Process] = []
    for state in stack.status():
        if state.pid is None:
            continue
        leader = psutil.Process(state.pid)
        found.append(leader)
        found.extend(leader.children(recursive=True))
    return found


def _processes_with_state_dir(state_dir: Path) -> list[str]:
    """Processes whose environment says they belong to this stack (all stack processes get MLP_STATE_DIR)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if process.environ().get("MLP_STATE_DIR") == str(state_dir):
                found.append(f"{process.pid}: {' '.join(process.info['cmdline'] or [])[:120]}")
    return found


@pytest.fixture()
def stack_settings(settings: Settings, tmp_path: Path) -> Settings:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "stack_probe.py").write_text(textwrap.dedent(PROBE_DAG))
    # A platform DB nothing has migrated yet: `stack up` must prepare it before the API process checks it.
    fresh_db = settings.db.model_copy(update={"url": f"sqlite:///{tmp_path / 'stack-platform.db'}"})
    return settings.model_copy(
        update={
            "airflow": settings.airflow.model_copy(update={"dags_folder": dags}),
            "api": settings.api.model_copy(update={"port": free_port()}),
            "db": fresh_db,
        }
    )


@pytest.fixture()
def stack(stack_settings: Settings) -> Iterator[EmbeddedStack]:
    embedded = EmbeddedStack(stack_settings)
    try:
        yield embedded
    finally:
        embedded.down()  # also on failure: never leave servers behind


def test_stack_up_run_dag_and_down(stack: EmbeddedStack, stack_settings: Settings, tmp_path: Path) -> None:
    messages: list[str] = []
    statuses = stack.up(progress=messages.append)
    monitoring = ["alertmanager", "prometheus"] if stack.monitoring_installed() else []
    assert [s.name for s in statuses] == [
        "mlflow",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "mlplatform-api",
        *monitoring,
    ]
    assert all(s.running and s.healthy and s.pid for s in statuses), statuses
    assert warm_execution_api(stack.airflow_url), "up already built the execution API's routes: answered at once"
    api_url = f"http://127.0.0.1:{stack_settings.api.port}"
    assert {s.name: s.url for s in statuses}["mlplatform-api"] == api_url
    _check_platform_api(api_url, stack_settings)

    # MLflow's default host/CORS checks accept loopback clients: a real API call works by IP and by name.
    port = stack_settings.mlflow.port
    for host in ("127.0.0.1", "localhost"):
        response = httpx.get(f"http://{host}:{port}/api/2.0/mlflow/experiments/search", params={"max_results": 1})
        assert response.status_code == 200, response.text

    pids_before = {s.name: s.pid for s in statuses}
    messages.clear()
    assert [s.pid for s in stack.up(progress=messages.append)] == list(pids_before.values())
    assert any("already running" in m for m in messages) and not any("Starting" in m for m in messages)

    secret_files = [
        stack_settings.layout.airflow_config,
        stack_settings.layout.airflow_passwords,
    ]
    for path in secret_files:
        assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"

    out = tmp_path / "probe.json"
    with airflow_client(stack_settings) as client:
        client.wait_for_dag("stack_probe", timeout=120)
        client.wait_for_dag("stack_fail", timeout=30)
        assert not client.is_paused("stack_probe")  # the embedded stack creates DAGs unpaused
        ok = client.trigger("stack_probe", {"value": "hello-42", "out": str(out)}, run_id="probe-1")
        bad = client.trigger("stack_fail", {})
        assert ok.run_id == "probe-1" and ok.conf == {"value": "hello-42", "out": str(out)}

        progress: list[dict[str, str | None]] = []
        finished = client.wait("stack_probe", "probe-1", poll_interval=1, timeout=150, on_progress=progress.append)
        assert finished.state == "success"
        assert progress and progress[-1] == {"record": "success"}
        assert json.loads(out.read_text()) == {
            "value": "hello-42",
            "state_dir": str(stack_settings.state_dir),
            "loaded": {"pandas": True, "mlplatform.config": False},
        }
        assert "probe saw hello-42" in client.task_log("stack_probe", "probe-1", "record", 1)
        assert [(run.run_id, run.state) for run in client.list_runs("stack_probe")] == [("probe-1", "success")]

        failed = client.wait("stack_fail", bad.run_id, poll_interval=1, timeout=150)
        assert failed.state == "failed"
        [explode] = client.task_instances("stack_fail", bad.run_id)
        assert explode.state == "failed"
        log = client.task_log("stack_fail", bad.run_id, "explode", explode.try_number)
        assert "intentional failure for the log test" in log

        with pytest.raises(AirflowError) as not_found:
            client.get_run("stack_probe", "no-such-run")
        assert not_found.value.status_code == 404 and "no-such-run" in str(not_found.value)

        # An operator pauses the DAG in Airflow: the platform's trigger refuses and leaves it paused.
        client._request(
            "PATCH", "/api/v2/dags/stack_probe", params={"update_mask": "is_paused"}, json={"is_paused": True}
        )
        with pytest.raises(DagPausedError, match="stack_probe is paused in Airflow"):
            AirflowOrchestrator(stack_settings).trigger("stack_probe", {"value": "x", "out": str(out)})
        assert client.is_paused("stack_probe")
        assert [run.run_id for run in client.list_runs("stack_probe")] == ["probe-1"]

    wrong = AirflowClient(stack_settings.airflow.resolved_api_url(), stack_settings.airflow.username, "wrong-password")
    with wrong, pytest.raises(AirflowError) as rejected:
        wrong.get_run("stack_probe", "probe-1")
    assert rejected.value.status_code == 401
    assert "rejected the credentials" in str(rejected.value)
    assert airflow_password(stack_settings) not in str(rejected.value)

    processes = _stack_processes(stack)
    assert len(processes) >= 5
    stack.down()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{api_url}/readyz", timeout=3)

    assert not any(s.running for s in stack.status())
    survivors = [p.pid for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert survivors == []
    assert _processes_with_state_dir(stack_settings.state_dir) == []
    assert not list(stack_settings.layout.run_dir.glob("*.pid"))


def _check_platform_api(api_url: str, settings: Settings) -> None:
    """The API answers under the stack: unauthenticated reads are refused, the bootstrapped admin logs in, and the
    generated password sits in a 0600 file and nowhere in the logs."""
    password_file = settings.layout.initial_admin_password
    assert password_file.stat().st_mode & 0o077 == 0, f"{password_file} is readable by others"
    password = password_file.read_text().strip()
    assert len(password) >= 20
    for log in settings.layout.logs_dir.glob("*.log"):
        assert password not in log.read_text(errors="replace"), f"the admin password leaked into {log}"

    with httpx.Client(base_url=api_url, timeout=10) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        refused = client.get("/api/v1/models")
        assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
        login = client.post("/api/v1/session", json={"username": settings.api.admin_username, "password": password})
        assert login.status_code == 200, login.text
        assert client.get("/api/v1/session").json()["role"] == "admin"
        assert [model["name"] for model in client.get("/api/v1/models").json()] == ["fraud_detector"]


def test_unreachable_airflow_names_the_url_and_the_fix(stack_settings: Settings) -> None:
    client = AirflowClient(stack_settings.airflow.resolved_api_url(), "admin", "x", timeout=2)
    with client, pytest.raises(AirflowError) as caught:
        client.get_run("any", "run")
    assert stack_settings.airflow.resolved_api_url() in str(caught.value)
    assert "mlplatform stack up" in str(caught.value)
