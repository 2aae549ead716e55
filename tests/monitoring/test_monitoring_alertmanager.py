"""Alertmanager configuration: amtool accepts it, drift alerts route to the platform webhook with a bearer token
read from a file, the rest to the default receiver, and dataset drift inhibits feature drift of the same model.

The last test runs the real Alertmanager on 127.0.0.1 with the committed configuration, only the webhook address
and the wait times changed, and receives its notifications.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.monitoring.conftest import ALERTMANAGER_CONFIG, alerting_rules, wait_alertmanager_ready
from tests.support.environment import free_port
from tests.support.tools import run_tool
from tests.support.waiting import wait_for

WEBHOOK_PATH = "/api/v1/alerts/alertmanager"
DRIFT_ALERTS = {"DatasetDriftDetected", "FeatureDriftDetected", "ModelQualityDropped"}
SECRET_KEYS = {"bearer_token", "credentials", "password", "api_key", "auth_token", "routing_key", "service_key"}


def _config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    return config


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", duration)
    assert parts and "".join(f"{n}{u}" for n, u in parts) == duration, duration
    return sum(int(number) * units[unit] for number, unit in parts)


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", value
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def test_amtool_accepts_the_configuration(amtool: str) -> None:
    result = run_tool([amtool, "check-config", str(ALERTMANAGER_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda rule: rule["alert"])
def test_each_alert_reaches_its_receiver(amtool: str, rule: dict[str, Any]) -> None:
    receiver = "platform-webhook" if rule["alert"] in DRIFT_ALERTS else "default"
    labels = [f"{key}={value}" for key, value in {"alertname": rule["alert"], "model": "m", **rule["labels"]}.items()]
    config, verify = f"--config.file={ALERTMANAGER_CONFIG}", f"--verify.receivers={receiver}"
    result = run_tool([amtool, "config", "routes", "test", config, verify, *labels])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_webhook_reads_its_bearer_token_from_a_file() -> None:
    config = _config()
    (receiver,) = (r for r in config["receivers"] if r["name"] == "platform-webhook")
    (webhook,) = receiver["webhook_configs"]
    assert webhook["url"].endswith(WEBHOOK_PATH)
    assert webhook["send_resolved"] is True
    authorization = webhook["http_config"]["authorization"]
    assert authorization == {"type": "Bearer", "credentials_file": authorization["credentials_file"]}
    assert not Path(authorization["credentials_file"]).is_absolute(), "relative to the configuration's directory"
    inline = [path for path, _ in _walk(config) if path.rsplit(".", 1)[-1] in SECRET_KEYS]
    assert not inline, f"secrets inline in the configuration: {inline}"
    assert (ALERTMANAGER_CONFIG.parent / ".gitignore").read_text().count(authorization["credentials_file"]) == 1


def test_the_default_receiver_is_the_root_route() -> None:
    config = _config()
    assert config["route"]["receiver"] == "default"
    assert {receiver["name"] for receiver in config["receivers"]} == {"default", "platform-webhook"}


def test_grouping_and_timing() -> None:
    route = _config()["route"]
    assert set(route["group_by"]) == {"alertname", "model"}
    wait, interval, repeat = (_seconds(route[key]) for key in ("group_wait", "group_interval", "repeat_interval"))
    assert 0 < wait <= 60 and wait < interval <= repeat
    assert repeat >= 3600, "hourly or rarer reminders"
    for child in route["routes"]:
        merged = {**route, **child}
        assert (
            _seconds(merged["group_wait"]) < _seconds(merged["group_interval"]) <= _seconds(merged["repeat_interval"])
        )


def test_dataset_drift_inhibits_feature_drift_of_the_same_model() -> None:
    rules = _config()["inhibit_rules"]
    assert {
        "source_matchers": ['alertname="DatasetDriftDetected"'],
        "target_matchers": ['alertname="FeatureDriftDetected"'],
        "equal": ["model"],
    } in rules


def test_alert_names_in_the_configuration_exist_as_rules() -> None:
    """A renamed alert must not silently fall out of a route or an inhibition."""
    config = _config()
    matchers = [matcher for route in config["route"]["routes"] for matcher in route["matchers"]]
    for rule in config["inhibit_rules"]:
        matchers += rule["source_matchers"] + rule["target_matchers"]
    mentioned: set[str] = set()
    for matcher in matchers:
        label, _, value = re.fullmatch(r'(\w+)\s*(=~|=)\s*"([^"]*)"', matcher).groups()  # type: ignore[union-attr]
        assert label == "alertname", matcher
        mentioned.update(value.split("|"))
    assert mentioned == DRIFT_ALERTS
    assert mentioned <= {rule["alert"] for rule in alerting_rules()}


# ------------------------------------------------------------------------------------------- live Alertmanager


class _Webhook(ThreadingHTTPServer):
    """Records every notification: (Authorization header, payload)."""

    def __init__(self, port: int) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        super().__init__(("127.0.0.1", port), _WebhookHandler)


class _WebhookHandler(BaseHTTPRequestHandler):
    server: _Webhook

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == WEBHOOK_PATH:
            self.server.received.append((self.headers.get("Authorization", ""), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: pytest shows failures, not access logs."""


def _live_config(directory: Path, webhook_port: int) -> Path:
    """The committed configuration with the webhook on a local port and one-second waits; token file beside it."""
    config = _config()
    config["route"].update(group_wait="1s", group_interval="2s")
    for child in config["route"]["routes"]:
        child["group_wait"] = "1s"
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = f"http://127.0.0.1:{webhook_port}{WEBHOOK_PATH}"
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _alert(name: str, **labels: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "labels": {"alertname": name, "severity": "warning", **labels},
        "annotations": {"summary": name},
        "startsAt": now.isoformat(),
        "endsAt": (now + timedelta(minutes=10)).isoformat(),
    }


@pytest.mark.integration
def test_live_alertmanager_sends_drift_to_the_webhook_with_the_token(alertmanager_binary: str, tmp_path: Path) -> None:
    token = "test-token-from-file"
    token_file = tmp_path / "platform_webhook_token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    webhook = _Webhook(free_port())
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    port = free_port()
    process = subprocess.Popen(
        [
            alertmanager_binary,
            f"--config.file={_live_config(tmp_path, webhook.server_address[1])}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_alertmanager_ready(base, process)
        alerts = [
            _alert("DatasetDriftDetected", model="fraud_detector"),
            _alert("FeatureDriftDetected", model="fraud_detector", feature="amount"),
            _alert("FeatureDriftDetected", model="churn", feature="tenure"),
            _alert("DriftCheckStale", model="fraud_detector"),
        ]
        httpx.post(f"{base}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()
        groups = _wait_for_groups(
            webhook, {("DatasetDriftDetected", "fraud_detector"), ("FeatureDriftDetected", "churn")}
        )
        # Shows that nothing more arrives (bounded): one more group interval, by which an inhibited or misrouted
        # alert would have arrived.
        time.sleep(2.5)
    finally:
        process.terminate()
        process.wait(timeout=10)
        webhook.shutdown()
    assert {authorization for authorization, _ in webhook.received} == {f"Bearer {token}"}
    delivered = {
        (alert["labels"]["alertname"], alert["labels"]["model"])
        for _, payload in webhook.received
        for alert in payload["alerts"]
    }
    assert delivered == groups == {("DatasetDriftDetected", "fraud_detector"), ("FeatureDriftDetected", "churn")}
    assert all(payload["receiver"] == "platform-webhook" for _, payload in webhook.received)


def _wait_for_groups(webhook: _Webhook, expected: set[tuple[str, str]]) -> set[tuple[str, str]]:
    def seen() -> set[tuple[str, str]]:
        return {(p["groupLabels"]["alertname"], p["groupLabels"]["model"]) for _, p in webhook.received}

    wait_for(lambda: expected <= seen(), 20, f"the webhook to receive {expected} (received {seen()})", interval=0.1)
    return seen()
