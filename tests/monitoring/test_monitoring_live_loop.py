"""The alert half of the loop, live: drift result in the platform DB -> the API's /metrics -> a real Prometheus
(1 s scrape and evaluation, the committed rules) -> a real Alertmanager (the committed routing, waits shortened)
-> the API's webhook with the token from the 0600 file -> a recorded retrain trigger.

Prometheus and Alertmanager are started by the embedded stack's own code (``EmbeddedStack.start_monitoring``,
rendered configuration, supervised processes) and stopped at the end.  The API is the real app served by uvicorn
on a free port; only Airflow is replaced, by ``FakeOrchestrator`` (a recording fake: Airflow is an external server
whose real trigger path tests/integration/test_retrain_airflow.py covers).  The drift result is injected with the
drift store (``DriftResults.record``), exactly as the monitoring DAG records a check.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml

from mlplatform.config import Settings
from mlplatform.operations.services import ApiServices
from mlplatform.stack import prometheus as monitoring
from mlplatform.stack.embedded import ALERTMANAGER, PROMETHEUS, EmbeddedStack
from mlplatform.store import PlatformStore
from mlplatform.store.drift import DriftResults
from mlplatform.webapp import create_app
from tests.monitoring.conftest import rule_files
from tests.support.api_world import MODEL, cheap_hash
from tests.support.contracts.drift import make_check
from tests.support.environment import free_port
from tests.support.fakes.orchestrator import FakeOrchestrator
from tests.support.tools import require_tool
from tests.support.waiting import wait_for, wait_started

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
LOOP_TIMEOUT_S = 60


@pytest.fixture()
def live_settings(settings: Settings) -> Settings:
    require_tool("prometheus", "prometheus")
    require_tool("prometheus-alertmanager", "prometheus-alertmanager")
    return settings.model_copy(
        update={
            "api": settings.api.model_copy(update={"port": free_port()}),
            "prometheus": settings.prometheus.model_copy(
                update={
                    "port": free_port(),
                    "alertmanager_port": free_port(),
                    "scrape_interval_s": 1,
                    "model_server_targets": [f"127.0.0.1:{free_port()}"],
                }
            ),
        }
    )


@pytest.fixture()
def api(live_settings: Settings) -> Iterator[tuple[ApiServices, FakeOrchestrator]]:
    """The real API app under uvicorn (its retry worker included), with FakeOrchestrator for Airflow."""
    airflow = FakeOrchestrator()
    services = ApiServices.from_settings(
        live_settings,
        store=PlatformStore.connect(live_settings.db_url),
        password_hash=cheap_hash(),
        orchestrator_factory=lambda: airflow,
    )
    app = create_app(live_settings, services)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=live_settings.api.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_started(server, thread, 20, "uvicorn")
    try:
        yield services, airflow
    finally:
        server.should_exit = True
        thread.join(10)


def _shorten_alertmanager_waits(settings: Settings) -> Settings:
    """Seconds instead of the committed 10 s group_wait and 5 min group_interval of the webhook route: the settings
    ``make demo`` uses, rendered by the stack into its copy, never into the committed file."""
    return settings.model_copy(
        update={
            "prometheus": settings.prometheus.model_copy(
                update={"webhook_group_wait_s": 1, "webhook_group_interval_s": 2}
            )
        }
    )


def test_drift_result_fires_an_alert_that_triggers_a_retrain(
    live_settings: Settings, api: tuple[ApiServices, FakeOrchestrator]
) -> None:
    services, airflow = api
    live_settings = _shorten_alertmanager_waits(live_settings)
    DriftResults(services.store).record(make_check(MODEL))  # drifted: share 0.5, feature "amount", 1000 rows
    stack = EmbeddedStack(live_settings)
    messages: list[str] = []
    try:
        stack.start_monitoring(messages.append)
        statuses = {status.name: status for status in stack.status()}
        assert statuses[PROMETHEUS].healthy and statuses[ALERTMANAGER].healthy, messages
        token_file = live_settings.layout.alertmanager_webhook_token
        assert token_file.stat().st_mode & 0o077 == 0

        try:
            wait_for(lambda: services.retrains.list(MODEL), LOOP_TIMEOUT_S, "a retrain decision", interval=0.25)
        except AssertionError:
            raise AssertionError(_diagnose(live_settings)) from None
        # Shows that nothing more arrives (bounded): a grouped or repeated notification would within a group interval.
        time.sleep(3)
        prometheus_alerts = httpx.get(f"{monitoring.prometheus_url(live_settings)}/api/v1/alerts", timeout=5).json()
    finally:
        stack.down()
    assert not any(status.running for status in stack.status())

    firing = {alert["labels"]["alertname"] for alert in prometheus_alerts["data"]["alerts"]}
    assert {"DatasetDriftDetected", "FeatureDriftDetected"} <= firing
    records = services.retrains.list(MODEL)
    triggered = [record for record in records if record.status == "triggered"]
    assert len(triggered) == 1 and len(airflow.triggered) == 1, records
    assert triggered[0].alertname == "DatasetDriftDetected", "feature drift of the model is inhibited"
    [(dag_id, run_id, conf)] = airflow.triggered
    assert (dag_id, run_id) == (f"train_{MODEL}", triggered[0].dag_run_id)
    assert conf["requested_by"] == "alertmanager" and conf["reason"].startswith("DatasetDriftDetected since ")
    assert all(record.status == "skipped" for record in records if record is not triggered[0])
    [event] = services.audit.query(actor="alertmanager", action="retrain.trigger")
    assert event.result == "ok" and event.to_value == run_id and event.client == "127.0.0.1"


def _diagnose(settings: Settings) -> str:
    """What Prometheus saw, for a failure message."""
    base = monitoring.prometheus_url(settings)
    try:
        targets = httpx.get(f"{base}/api/v1/targets", timeout=3).json()["data"]["activeTargets"]
        alerts = httpx.get(f"{base}/api/v1/alerts", timeout=3).json()["data"]["alerts"]
    except httpx.HTTPError as error:
        return f"Prometheus does not answer: {error}"
    health = {target["labels"]["job"]: (target["health"], target.get("lastError")) for target in targets}
    logs = "\n".join(
        f"{path.name}: {path.read_text(errors='replace')[-1500:]}"
        for path in (settings.state_dir / "logs").glob("*.log")
    )
    return f"no retrain recorded; targets {health}; alerts {[a['labels'] for a in alerts]}\n{logs}"


def test_rendered_configuration_is_accepted_by_promtool_and_amtool(settings: Settings, tmp_path: Path) -> None:
    promtool = require_tool("promtool", "prometheus")
    amtool = require_tool("amtool", "prometheus-alertmanager")
    import subprocess

    prometheus_config = monitoring.write_prometheus_config(settings)
    alertmanager_config = monitoring.write_alertmanager_config(settings, "mlpwh_test-token")
    for argv in (
        [promtool, "check", "config", str(prometheus_config)],
        [amtool, "check-config", str(alertmanager_config)],
    ):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    rendered = yaml.safe_load(prometheus_config.read_text())
    assert {job["job_name"] for job in rendered["scrape_configs"]} == {"mlplatform-api", "mlplatform-serving"}
    assert len(rendered["rule_files"]) == len(rule_files())  # every rule file, quality.yaml included
    webhook = yaml.safe_load(alertmanager_config.read_text())["receivers"][1]["webhook_configs"][0]
    assert webhook["url"] == f"http://127.0.0.1:{settings.api.port}/api/v1/alerts/alertmanager"
    token_file = settings.layout.alertmanager_webhook_token
    assert webhook["http_config"]["authorization"]["credentials_file"] == token_file.name
    assert "mlpwh_test-token" not in alertmanager_config.read_text()


def test_stack_up_says_it_skips_them_when_not_installed(settings: Settings) -> None:
    absent = settings.model_copy(
        update={
            "prometheus": settings.prometheus.model_copy(
                update={"prometheus_binary": "no-such-prometheus", "alertmanager_binary": "no-such-alertmanager"}
            )
        }
    )
    stack = EmbeddedStack(absent)
    messages: list[str] = []
    stack.start_monitoring(messages.append)
    assert messages == [
        "Skipping Prometheus and Alertmanager: prometheus and alertmanager not installed "
        "(Debian packages prometheus, prometheus-alertmanager)"
    ]
    assert {status.name for status in stack.status()}.isdisjoint({PROMETHEUS, ALERTMANAGER})
