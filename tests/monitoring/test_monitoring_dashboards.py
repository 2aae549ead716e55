"""Grafana dashboards: committed JSON equals the generator, the structure Grafana needs, queries promtool parses.

No Grafana server runs here, so the checks are what Grafana would trip over: schema version, panel ids, overlapping
grid positions, a data source that is not the templated ``${datasource}``, a panel ignoring the model filter, or
a query Prometheus cannot parse.
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from mlplatform.cli.monitoring import monitoring_app
from mlplatform.monitoring import thresholds
from mlplatform.monitoring.dashboards import DATASOURCE, GRID_WIDTH, SCHEMA_VERSION, build_dashboards, render
from mlplatform.monitoring.metric_names import PLATFORM_API_METRICS
from mlplatform.serving.metrics import ServingMetrics
from tests.monitoring.conftest import DASHBOARDS_DIR
from tests.monitoring.exports import collector_labels
from tests.monitoring.promql import selectors, substitute_grafana_variables
from tests.support.tools import run_tool

DASHBOARDS = build_dashboards()


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    queries = [(panel["title"], target["expr"]) for panel in _panels(dashboard) for target in panel.get("targets", [])]
    queries += [(note["name"], note["expr"]) for note in dashboard["annotations"]["list"] if "expr" in note]
    return queries


def _model_labelled_metrics() -> set[str]:
    """Series names (as selected) that carry a ``model`` label: served or declared."""
    names = set()
    for family, labels in collector_labels(ServingMetrics()).items():
        if "model" in labels:
            names |= {family, f"{family}_total", f"{family}_bucket", f"{family}_sum", f"{family}_count"}
    for spec in PLATFORM_API_METRICS:
        if "model" in spec.labels:
            names.update(spec.sample_names())
    return names


def test_committed_dashboards_equal_the_generator() -> None:
    committed = {path.name for path in DASHBOARDS_DIR.glob("*.json")}
    assert committed == set(DASHBOARDS), "regenerate with `make dashboards`"
    for name, dashboard in DASHBOARDS.items():
        assert (DASHBOARDS_DIR / name).read_text() == render(dashboard), f"{name} is stale: run `make dashboards`"


def test_the_three_dashboards_have_unique_uids() -> None:
    assert set(DASHBOARDS) == {"serving.json", "drift.json", "pipelines.json"}
    uids = [dashboard["uid"] for dashboard in DASHBOARDS.values()]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_structure(name: str) -> None:
    dashboard = json.loads((DASHBOARDS_DIR / name).read_text())
    assert dashboard["schemaVersion"] == SCHEMA_VERSION
    assert isinstance(SCHEMA_VERSION, int) and SCHEMA_VERSION >= 36  # the datasource-object era of Grafana
    assert dashboard["id"] is None, "an id would clash on import; Grafana assigns it"
    assert dashboard["uid"] and dashboard["title"] and "mlplatform" in dashboard["tags"]
    panels = _panels(dashboard)
    ids = [panel["id"] for panel in panels]
    assert all(isinstance(panel_id, int) and panel_id > 0 for panel_id in ids)
    assert len(ids) == len(set(ids)), "duplicate panel ids"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_fit_the_grid_without_overlapping(name: str) -> None:
    boxes = [(panel["title"], panel["gridPos"]) for panel in _panels(DASHBOARDS[name])]
    for title, box in boxes:
        assert box["w"] > 0 and box["h"] > 0 and box["x"] >= 0 and box["y"] >= 0, title
        assert box["x"] + box["w"] <= GRID_WIDTH, f"{title} is wider than the grid"
    for (first, a), (second, b) in combinations(boxes, 2):
        apart = (
            a["x"] + a["w"] <= b["x"]
            or b["x"] + b["w"] <= a["x"]
            or a["y"] + a["h"] <= b["y"]
            or b["y"] + b["h"] <= a["y"]
        )
        assert apart, f"{first!r} overlaps {second!r}"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_reads_the_templated_datasource(name: str) -> None:
    dashboard = DASHBOARDS[name]
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert DATASOURCE == {"type": "prometheus", "uid": "${datasource}"}
    for panel in _panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            assert annotation["datasource"] == DATASOURCE


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_model_variable_filters_every_model_query(name: str) -> None:
    dashboard = DASHBOARDS[name]
    model = next(variable for variable in dashboard["templating"]["list"] if variable["name"] == "model")
    assert model["type"] == "query" and model["datasource"] == DATASOURCE
    assert model["multi"] and model["includeAll"] and model["allValue"] == ".+"
    model_metrics = _model_labelled_metrics()
    for title, expr in _queries(dashboard):
        for selector in selectors(expr):
            if selector.name in model_metrics:
                assert "model" in selector.labels, f"{name} {title!r}: {selector.name} ignores $model"
        if any(selector.name in model_metrics for selector in selectors(expr)):
            assert 'model=~"$model"' in expr, f"{name} {title!r}"


def test_promtool_parses_every_dashboard_query(promtool: str, tmp_path: Path) -> None:
    """Each query becomes a recording rule (Grafana variables replaced by values) so promtool parses it."""
    rules = [
        {"record": f"dashboard:query:{index}", "expr": substitute_grafana_variables(expr)}
        for index, (_, expr) in enumerate(query for dashboard in DASHBOARDS.values() for query in _queries(dashboard))
    ]
    assert len(rules) > 20
    path = tmp_path / "dashboard_queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run_tool([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_issues_panels_are_there() -> None:
    """Serving, drift and pipelines dashboards show what the issue lists, through the metrics that carry it."""
    used = {
        name: {selector.name for _, expr in _queries(dashboard) for selector in selectors(expr)}
        for name, dashboard in DASHBOARDS.items()
    }
    serving_series = {
        "mlplatform_serving_requests_total",
        "mlplatform_serving_stage_seconds_bucket",
        "mlplatform_serving_prediction_score_bucket",
        "mlplatform_serving_model_info",
        "mlplatform_serving_model_swaps_total",
        "mlplatform_serving_prediction_log_dropped_total",
    }
    assert serving_series <= used["serving.json"]
    assert {
        "mlplatform_feature_drift_score",
        "mlplatform_dataset_drift_share",
        "mlplatform_drift_check_last_success_timestamp_seconds",
    } <= used["drift.json"]
    assert {
        "mlplatform_training_runs_total",
        "mlplatform_retrain_triggers_total",
        "mlplatform_online_features_last_materialized_timestamp_seconds",
    } <= used["pipelines.json"]
    latency = next(p for p in _panels(DASHBOARDS["serving.json"]) if p["title"] == "Request latency by model version")
    assert {"0.5", "0.9", "0.99"} == {t["expr"].split("(")[1].split(",")[0] for t in latency["targets"]}
    assert all("version" in t["expr"] for t in latency["targets"])


def test_threshold_lines_are_the_alert_thresholds() -> None:
    steps = {
        panel["title"]: [step["value"] for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]
        for dashboard in DASHBOARDS.values()
        for panel in _panels(dashboard)
        if panel["type"] != "row"
    }
    assert thresholds.SERVING_P99_SLO_SECONDS in steps["Request latency by model version"]
    assert thresholds.SERVING_ERROR_RATIO in steps["Error ratio"]
    assert thresholds.DATASET_DRIFT_SHARE in steps["Dataset drift share"]
    assert thresholds.DRIFT_CHECK_MAX_AGE_SECONDS in steps["Time since last drift check"]
    assert thresholds.ONLINE_FEATURES_MAX_AGE_SECONDS in steps["Online feature age"]


def test_cli_writes_and_checks_the_dashboards(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "dashboards"
    assert runner.invoke(monitoring_app, ["dashboards", "--check", "--out", str(out)]).exit_code == 1
    written = runner.invoke(monitoring_app, ["dashboards", "--out", str(out)])
    assert written.exit_code == 0, written.output
    assert {path.name for path in out.iterdir()} == set(DASHBOARDS)
    assert runner.invoke(monitoring_app, ["dashboards", "--check", "--out", str(out)]).exit_code == 0
    (out / "drift.json").write_text("{}\n")
    stale = runner.invoke(monitoring_app, ["dashboards", "--check", "--out", str(out)])
    assert stale.exit_code == 1 and "drift.json" in stale.output


def test_latency_by_version_tells_a_canary_apart(promtool: str, tmp_path: Path) -> None:
    """The join of latency buckets to ``model_info``: two instances serving versions 3 and 4 get their own p99."""
    latency = next(p for p in _panels(DASHBOARDS["serving.json"]) if p["title"] == "Request latency by model version")
    p99 = substitute_grafana_variables(latency["targets"][-1]["expr"])
    series = []
    for instance, version, fast in (("10.0.0.1:8080", "3", 60), ("10.0.0.2:8080", "4", 0)):
        labels = f'model="fraud_detector",stage="total",instance="{instance}"'
        for le, count in (("0.01", fast), ("0.05", fast), ("0.1", 60), ("+Inf", 60)):
            series.append(
                {"series": f'mlplatform_serving_stage_seconds_bucket{{{labels},le="{le}"}}', "values": f"0+{count}x10"}
            )
        info = f'mlplatform_serving_model_info{{model="fraud_detector",version="{version}",instance="{instance}"}}'
        series.append({"series": info, "values": "1x10"})
    # Version 3 answers everything under 10 ms, version 4 between 50 and 100 ms.
    expected = [
        {"labels": '{model="fraud_detector",version="3"}', "value": 0.0099},
        {"labels": '{model="fraud_detector",version="4"}', "value": 0.0995},
    ]
    document = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [{"expr": p99, "eval_time": "8m", "exp_samples": expected}],
            }
        ],
    }
    path = tmp_path / "latency_by_version_test.yaml"
    path.write_text(yaml.safe_dump(document))
    result = run_tool([promtool, "test", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
