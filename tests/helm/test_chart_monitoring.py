"""Monitoring from one source: the chart's copies of the rules and dashboards equal monitoring/ (`make
chart-sync`), the rules of the rendered PrometheusRule pass promtool and the rule unit tests, and the Alertmanager
routing documented for kube-prometheus-stack is monitoring/alertmanager/alertmanager.yml with in-cluster addresses."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.helm.conftest import CHART, of_kind, render
from tests.monitoring.conftest import ALERTMANAGER_CONFIG, DASHBOARDS_DIR, RULE_TESTS_DIR, RULES_DIR, alerting_rules
from tests.support.environment import REPO_ROOT
from tests.support.tools import run_tool

COPIES = (
    (RULES_DIR, CHART / "files" / "prometheus" / "rules"),
    (DASHBOARDS_DIR, CHART / "files" / "grafana" / "dashboards"),
)
KPS_VALUES = REPO_ROOT / "helm" / "kube-prometheus-stack-values.yaml"


def test_chart_copies_equal_monitoring_sources() -> None:
    for source, copy in COPIES:
        names = sorted(path.name for path in source.iterdir() if path.is_file())
        assert names == sorted(path.name for path in copy.iterdir()), f"{copy} differs from {source}: make chart-sync"
        _, mismatch, errors = filecmp.cmpfiles(source, copy, names, shallow=False)
        assert not mismatch and not errors, f"{mismatch or errors} differ from {source}: run `make chart-sync`"


def _rendered_groups(helm: str) -> list[dict[str, Any]]:
    (rule,) = of_kind(render(helm, "minimal"), "PrometheusRule")
    return list(rule["spec"]["groups"])


def test_rendered_rules_are_the_source_rules(helm: str) -> None:
    rendered = {r["alert"]: r for group in _rendered_groups(helm) for r in group["rules"] if "alert" in r}
    source = {r["alert"]: {k: v for k, v in r.items() if k != "_file"} for r in alerting_rules()}
    assert rendered == source


def test_rendered_rules_pass_promtool_check_and_unit_tests(helm: str, promtool: str, tmp_path: Path) -> None:
    """The rule tests of monitoring/prometheus/tests run against the rules as the chart renders them."""
    rules_dir = tmp_path / "rules"
    tests_dir = tmp_path / "tests"
    rules_dir.mkdir()
    tests_dir.mkdir()
    # One file per area, named as the source files, so the unit tests' rule_files paths resolve.
    by_group = {group["name"]: group for group in _rendered_groups(helm)}
    for source in sorted(RULES_DIR.glob("*.yaml")):
        names = [group["name"] for group in yaml.safe_load(source.read_text())["groups"]]
        (rules_dir / source.name).write_text(yaml.safe_dump({"groups": [by_group[name] for name in names]}))
    check = run_tool([promtool, "check", "rules", *map(str, sorted(rules_dir.glob("*.yaml")))])
    assert check.returncode == 0, check.stdout + check.stderr
    for test_file in sorted(RULE_TESTS_DIR.glob("*_test.yaml")):
        shutil.copy(test_file, tests_dir / test_file.name)
    result = run_tool([promtool, "test", "rules", *map(str, sorted(tests_dir.glob("*_test.yaml")))])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_are_configmaps_for_the_grafana_sidecar(helm: str) -> None:
    maps = [m for m in of_kind(render(helm, "minimal"), "ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]]
    assert sorted(key for m in maps for key in m["data"]) == sorted(p.name for p in DASHBOARDS_DIR.glob("*.json"))
    for config_map in maps:
        for name, text in config_map["data"].items():
            assert json.loads(text) == json.loads((DASHBOARDS_DIR / name).read_text())


def test_kube_prometheus_stack_routing_is_the_embedded_routing(amtool: str, tmp_path: Path) -> None:
    source = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    cluster = yaml.safe_load(KPS_VALUES.read_text())["alertmanager"]["config"]
    assert cluster["route"] == source["route"]
    assert cluster["inhibit_rules"] == source["inhibit_rules"]
    assert [r["name"] for r in cluster["receivers"]] == [r["name"] for r in source["receivers"]]
    (hook,) = next(r for r in cluster["receivers"] if r["name"] == "platform-webhook")["webhook_configs"]
    (local,) = next(r for r in source["receivers"] if r["name"] == "platform-webhook")["webhook_configs"]
    assert hook["url"].endswith(local["url"].split(":8400", 1)[1]) and ":8400" in hook["url"]
    assert hook["http_config"]["authorization"]["credentials_file"].startswith("/etc/alertmanager/secrets/")
    assert "credentials" not in hook["http_config"]["authorization"]
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(cluster))
    result = run_tool([amtool, "check-config", str(config)])
    assert result.returncode == 0, result.stdout + result.stderr
