"""The alerting intervals the settings shorten for the demo (and the loop benchmark): Prometheus' scrape and rule
evaluation, and the webhook route's Alertmanager grouping; unset, the rendered files keep the production defaults
(15 s, and the committed routing's 10 s group_wait / 5 min group_interval)."""

from __future__ import annotations

from typing import Any

import pytest

from mlplatform.config import Settings, get_settings
from mlplatform.stack import prometheus as monitoring
from tests.support.tools import run_tool


def _with(settings: Settings, **prometheus: Any) -> Settings:
    return settings.model_copy(update={"prometheus": settings.prometheus.model_copy(update=prometheus)})


def _committed(settings: Settings) -> dict[str, Any]:
    return monitoring.committed_alertmanager_config(settings.prometheus.config_dir)


def _webhook_route(config: dict[str, Any]) -> dict[str, Any]:
    routes: list[dict[str, Any]] = config["route"]["routes"]
    [route] = [r for r in routes if r["receiver"] == monitoring.WEBHOOK_RECEIVER]
    return route


def test_production_defaults_are_rendered_unchanged(settings: Settings) -> None:
    assert monitoring.prometheus_config(settings)["global"] == {"scrape_interval": "15s", "evaluation_interval": "15s"}
    committed = _committed(settings)
    rendered = monitoring.alertmanager_config(settings, committed)
    assert rendered["route"] == committed["route"]
    assert _webhook_route(rendered)["group_wait"] == "10s" and "group_interval" not in _webhook_route(rendered)
    assert rendered["route"]["group_interval"] == "5m"  # what the webhook route inherits


def test_the_demo_intervals_reach_the_rendered_files_and_nothing_else(settings: Settings) -> None:
    demo = _with(
        settings, scrape_interval_s=2, evaluation_interval_s=3, webhook_group_wait_s=1, webhook_group_interval_s=10
    )
    assert monitoring.prometheus_config(demo)["global"] == {"scrape_interval": "2s", "evaluation_interval": "3s"}
    committed = _committed(demo)
    rendered = monitoring.alertmanager_config(demo, committed)
    route = _webhook_route(rendered)
    assert (route["group_wait"], route["group_interval"]) == ("1s", "10s")
    assert route["repeat_interval"] == _webhook_route(committed)["repeat_interval"]
    root = {key: value for key, value in rendered["route"].items() if key != "routes"}
    assert root == {key: value for key, value in committed["route"].items() if key != "routes"}, "default receiver"
    assert _webhook_route(committed)["group_wait"] == "10s", "the committed document is not modified"


def test_evaluation_follows_the_scrape_interval_unless_set(settings: Settings) -> None:
    assert monitoring.prometheus_config(_with(settings, scrape_interval_s=4))["global"]["evaluation_interval"] == "4s"


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLP_PROMETHEUS__EVALUATION_INTERVAL_S", "2")
    monkeypatch.setenv("MLP_PROMETHEUS__WEBHOOK_GROUP_WAIT_S", "0")
    monkeypatch.setenv("MLP_PROMETHEUS__WEBHOOK_GROUP_INTERVAL_S", "10")
    conf = get_settings().prometheus
    assert (conf.evaluation_interval_s, conf.webhook_group_wait_s, conf.webhook_group_interval_s) == (2, 0, 10)
    monkeypatch.setenv("MLP_PROMETHEUS__WEBHOOK_GROUP_INTERVAL_S", "0")
    with pytest.raises(ValueError, match="webhook_group_interval_s"):
        get_settings()


def test_amtool_and_promtool_accept_the_shortened_configuration(settings: Settings, amtool: str, promtool: str) -> None:
    demo = _with(
        settings, scrape_interval_s=1, evaluation_interval_s=1, webhook_group_wait_s=0, webhook_group_interval_s=2
    )
    alertmanager = monitoring.write_alertmanager_config(demo, "mlpwh_test-token")
    prometheus = monitoring.write_prometheus_config(demo)
    for argv in ([amtool, "check-config", str(alertmanager)], [promtool, "check", "config", str(prometheus)]):
        result = run_tool(argv)
        assert result.returncode == 0, result.stdout + result.stderr
