"""The model page's firing alerts (``mlplatform.monitoring.alerts_view``) against a real Alertmanager.

Alerts are posted to the real Alertmanager's API v2 (as Prometheus does), then read back by the adapter with the
model filter and shown on the model page (in-process UI, fakes for MLflow and Airflow).  A silenced alert is
shown as silenced; another model's alerts stay off the page.  A hung Alertmanager costs the page its short timeout,
and the page says so instead of failing.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mlplatform.config import Settings
from mlplatform.monitoring.alerts_view import FiringAlerts, alertmanager_url, firing_alerts, label_filter
from tests.monitoring.conftest import wait_alertmanager_ready
from tests.support.api_world import MODEL, logged_in, make_world
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture()
def alertmanager(alertmanager_binary: str, settings: Settings, tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on the settings' port, routing everything to a receiver with no integrations."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump({"route": {"receiver": "default"}, "receivers": [{"name": "default"}]}))
    base = alertmanager_url(settings)
    process = subprocess.Popen(
        [
            alertmanager_binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{settings.prometheus.alertmanager_port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_alertmanager_ready(base, process)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def _alert(name: str, minutes_ago: int, **labels: str) -> dict[str, Any]:
    start = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {
        "labels": {"alertname": name, "severity": "warning", **labels},
        "annotations": {"summary": f"{name} <b>for</b> {labels.get('model')}"},
        "startsAt": start.isoformat(),
        "endsAt": (start + timedelta(hours=1)).isoformat(),
    }


def _silence(base: str, **labels: str) -> None:
    now = datetime.now(UTC)
    silence = {
        "matchers": [{"name": key, "value": value, "isRegex": False} for key, value in labels.items()],
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(hours=1)).isoformat(),
        "createdBy": "pytest",
        "comment": "known: feature pipeline backfill",
    }
    httpx.post(f"{base}/api/v2/silences", json=silence, timeout=5).raise_for_status()


def test_posted_alerts_appear_on_the_model_page(alertmanager: str, settings: Settings) -> None:
    _silence(alertmanager, alertname="FeatureDriftDetected", model=MODEL)
    alerts = [
        _alert("DatasetDriftDetected", 5, model=MODEL),
        _alert("FeatureDriftDetected", 20, model=MODEL, feature="amount"),
        _alert("DatasetDriftDetected", 1, model="churn"),
    ]
    httpx.post(f"{alertmanager}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()

    def both_states() -> FiringAlerts | None:
        found = firing_alerts(settings, MODEL)
        return found if {alert.state for alert in found.alerts} == {"firing", "silenced"} else None

    # Alertmanager marks alerts silenced once its silencer has looked at them.
    found = wait_for(both_states, 10, "one firing and one silenced alert", interval=0.2)
    assert found.state == "ok"
    assert [(a.name, a.state, a.extra_labels) for a in found.alerts] == [
        ("DatasetDriftDetected", "firing", {}),
        ("FeatureDriftDetected", "silenced", {"feature": "amount"}),
    ]

    world = make_world(settings)
    logged_in(world, "viewer")
    page = world.client.get(f"/models/{MODEL}").text
    firing = page.split('data-testid="alerts"', 1)[1].split("</table>", 1)[0]
    assert firing.count("<tr data-alert=") == 1 and "churn" not in page
    assert "DatasetDriftDetected &lt;b&gt;for&lt;/b&gt; fraud_detector" in firing  # annotations stay text
    assert 'badge-bad">firing<' in firing
    muted = page.split('data-testid="alerts-muted"', 1)[1].split("</details>", 1)[0]
    assert "1 silenced or inhibited" in muted and ">silenced<" in muted and "feature=amount" in muted


def test_a_resolved_alert_leaves_the_page(alertmanager: str, settings: Settings) -> None:
    alert = _alert("DatasetDriftDetected", 5, model=MODEL)
    httpx.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()
    assert [a.name for a in firing_alerts(settings, MODEL).alerts] == ["DatasetDriftDetected"]
    resolved = {**alert, "endsAt": datetime.now(UTC).isoformat()}
    httpx.post(f"{alertmanager}/api/v2/alerts", json=[resolved], timeout=5).raise_for_status()
    wait_for(lambda: firing_alerts(settings, MODEL).alerts == (), 10, "the resolved alert to leave", interval=0.2)


def test_a_hung_alertmanager_costs_only_the_timeout(settings: Settings) -> None:
    """A listener that never answers: the adapter gives up after its timeout and the page still renders."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", settings.prometheus.alertmanager_port))
        hung.listen(8)
        started = time.monotonic()
        found = firing_alerts(settings, MODEL, timeout=0.3)
        assert time.monotonic() - started < 2
        assert found.state == "unreachable" and "did not answer within 0.3 s" in found.detail


def test_the_model_label_is_quoted_in_the_filter() -> None:
    assert label_filter("model", 'a"b\\c') == 'model="a\\"b\\\\c"'
