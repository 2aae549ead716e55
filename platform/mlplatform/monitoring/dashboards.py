"""Grafana dashboards for serving, drift and pipelines, built from code and committed as JSON.

Why code: the dashboards share their layout rules, data source variable, model filter and thresholds
(``mlplatform.monitoring.thresholds``), and a generator keeps those consistent where hand-edited JSON drifts.
``write_dashboards`` writes ``monitoring/grafana/dashboards/*.json`` (``make dashboards``); the Helm chart and
the CLI reuse ``build_dashboards``.  ``tests/monitoring`` checks that the committed files equal this output and
parses every query with promtool.

Queries use Grafana's variables: ``$model`` (a multi-value model filter, ``.+`` for All), ``$__rate_interval``,
``$__interval`` and ``$__range``; every panel reads the data source chosen in the ``datasource`` variable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from mlplatform.monitoring import thresholds

JsonDict = dict[str, Any]
PanelKind = Literal["timeseries", "stat", "bargauge", "heatmap", "state-timeline"]

SCHEMA_VERSION: Final = 39
"""Grafana 10.4 / 11 dashboard schema; newer Grafana versions migrate it on load."""
GRID_WIDTH: Final = 24
DATASOURCE: Final[JsonDict] = {"type": "prometheus", "uid": "${datasource}"}
TAG: Final = "mlplatform"
DEFAULT_DIRECTORY: Final = Path("monitoring/grafana/dashboards")

_MODEL = 'model=~"$model"'


@dataclass(frozen=True)
class Query:
    """One PromQL query of a panel; ``instant`` for single values (stat, bar gauge)."""

    expr: str
    legend: str = ""
    instant: bool = False
    heatmap: bool = False


@dataclass(frozen=True)
class Panel:
    """A panel with the few settings these dashboards vary; everything else comes from ``_panel_json``.

    ``threshold`` is drawn as a red line (time series) or turns the value red (stat, bar gauge); with
    ``low_is_bad`` values *below* it are red.  ``mappings`` names values (0/1 gauges).
    """

    title: str
    kind: PanelKind
    queries: tuple[Query, ...]
    description: str
    unit: str = "short"
    width: int = 12
    height: int = 8
    threshold: float | None = None
    low_is_bad: bool = False
    minimum: float | None = None
    maximum: float | None = None
    bars: bool = False
    min_interval: str | None = None
    mappings: tuple[tuple[int, str, str], ...] = ()


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True)
class Dashboard:
    """A dashboard: ``model_metric`` is the series whose ``model`` label values fill the model filter."""

    uid: str
    title: str
    description: str
    model_metric: str
    rows: tuple[Row, ...]
    annotations: tuple[tuple[str, str], ...] = field(default=())


# --------------------------------------------------------------------------------------------------- JSON pieces


def _datasource_variable() -> JsonDict:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def _model_variable(metric: str) -> JsonDict:
    """Multi-value model filter; "All" is the regex ``.+`` so ``model=~"$model"`` matches every model."""
    query = f"label_values({metric}, model)"
    return {
        "name": "model",
        "label": "Model",
        "type": "query",
        "datasource": dict(DATASOURCE),
        "definition": query,
        "query": {"query": query, "refId": "ModelVariable", "qryType": 1},
        "current": {},
        "hide": 0,
        "includeAll": True,
        "allValue": ".+",
        "multi": True,
        "options": [],
        "refresh": 2,
        "regex": "",
        "sort": 1,
    }


def _annotations(extra: tuple[tuple[str, str], ...]) -> JsonDict:
    builtin: JsonDict = {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }
    queries = [
        {
            "name": name,
            "datasource": dict(DATASOURCE),
            "enable": True,
            "expr": expr,
            "iconColor": "orange",
            "step": "1m",
            "titleFormat": name,
            "textFormat": "{{model}}",
        }
        for name, expr in extra
    ]
    return {"list": [builtin, *queries]}


def _target(query: Query, ref_id: str) -> JsonDict:
    target: JsonDict = {
        "refId": ref_id,
        "datasource": dict(DATASOURCE),
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "range": not query.instant,
        "instant": query.instant,
    }
    if query.heatmap:
        target["format"] = "heatmap"
    return target


def _thresholds(panel: Panel) -> JsonDict:
    if panel.threshold is None:
        steps: list[JsonDict] = [{"color": "green", "value": None}]
    elif panel.low_is_bad:
        steps = [{"color": "red", "value": None}, {"color": "green", "value": panel.threshold}]
    else:
        steps = [{"color": "green", "value": None}, {"color": "red", "value": panel.threshold}]
    return {"mode": "absolute", "steps": steps}


def _field_defaults(panel: Panel) -> JsonDict:
    defaults: JsonDict = {"unit": panel.unit, "thresholds": _thresholds(panel)}
    if panel.minimum is not None:
        defaults["min"] = panel.minimum
    if panel.maximum is not None:
        defaults["max"] = panel.maximum
    if panel.mappings:
        defaults["mappings"] = [
            {"type": "value", "options": {str(value): {"text": text, "color": color}}}
            for value, text, color in panel.mappings
        ]
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "bars" if panel.bars else "line",
            "fillOpacity": 60 if panel.bars else 10,
            "lineWidth": 1,
            "showPoints": "never",
            "spanNulls": False,
            "thresholdsStyle": {"mode": "off" if panel.threshold is None else "line+area"},
        }
    if panel.kind == "state-timeline" or panel.mappings:
        defaults["color"] = {"mode": "thresholds"}
    return defaults


_REDUCE: Final[JsonDict] = {"calcs": ["lastNotNull"], "fields": "", "values": False}


def _options(panel: Panel) -> JsonDict:
    """Per-kind display options; named so the dashboards read alike."""
    if panel.kind == "timeseries":
        return {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if panel.kind == "stat":
        text_mode = "name" if any("version" in query.legend for query in panel.queries) else "auto"
        return {
            "reduceOptions": dict(_REDUCE),
            "colorMode": "value",
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": text_mode,
        }
    if panel.kind == "bargauge":
        return {
            "reduceOptions": dict(_REDUCE),
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
        }
    if panel.kind == "heatmap":
        return {
            "calculate": False,
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
            "yAxis": {"axisLabel": "score bucket (upper bound)"},
            "tooltip": {"mode": "single", "yHistogram": True},
            "legend": {"show": True},
        }
    return {"showValue": "never", "mergeValues": True, "rowHeight": 0.8, "legend": {"showLegend": True}}


def _panel_json(panel: Panel, panel_id: int, grid: JsonDict) -> JsonDict:
    refs = "ABCDEFGHIJ"
    body: JsonDict = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": dict(DATASOURCE),
        "gridPos": grid,
        "targets": [_target(query, refs[index]) for index, query in enumerate(panel.queries)],
        "fieldConfig": {"defaults": _field_defaults(panel), "overrides": []},
        "options": _options(panel),
    }
    if panel.min_interval:
        body["interval"] = panel.min_interval
    return body


def _layout(rows: tuple[Row, ...]) -> list[JsonDict]:
    """Row headers and their panels, left to right, wrapping at the grid's width: no two panels overlap."""
    panels: list[JsonDict] = []
    y = 0
    for row in rows:
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        x = 0
        line_height = 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x, y, line_height = 0, y + line_height, 0
            grid = {"h": panel.height, "w": panel.width, "x": x, "y": y}
            panels.append(_panel_json(panel, len(panels) + 1, grid))
            x += panel.width
            line_height = max(line_height, panel.height)
        y += line_height
    return panels


def to_json(dashboard: Dashboard) -> JsonDict:
    """The dashboard as Grafana's JSON model (importable as is, or through the Grafana sidecar)."""
    return {
        "id": None,
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": [TAG],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "1m",
        "time": {"from": "now-6h", "to": "now"},
        "links": [
            {
                "title": "mlplatform dashboards",
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": _annotations(dashboard.annotations),
        "templating": {"list": [_datasource_variable(), _model_variable(dashboard.model_metric)]},
        "panels": _layout(dashboard.rows),
    }


# --------------------------------------------------------------------------------------------------- dashboards


def _rate(metric: str, matchers: str = "") -> str:
    selector = f"{metric}{{{_MODEL}{',' + matchers if matchers else ''}}}"
    return f"rate({selector}[$__rate_interval])"


def _latency_by_version(quantile: float) -> Query:
    """Quantile of whole requests per model *version*: buckets joined to the version each instance serves.

    The latency histogram has no version label; ``mlplatform_serving_model_info`` says which version an
    instance serves, so during a canary the two versions' latencies are told apart.
    """
    buckets = _rate("mlplatform_serving_stage_seconds_bucket", 'stage="total"')
    info = f"max by (model, instance, version) (mlplatform_serving_model_info{{{_MODEL}}})"
    expr = (
        f"histogram_quantile({quantile}, sum by (model, version, le) "
        f"({buckets} * on (model, instance) group_left (version) {info}))"
    )
    return Query(expr, f"p{round(quantile * 100)} {{{{model}}}} v{{{{version}}}}")


def serving_dashboard() -> Dashboard:
    requests = "mlplatform_serving_requests_total"
    server_failures = 'outcome=~"error|unavailable"'
    failed = f"sum by (model) ({_rate(requests, server_failures)})"
    mean_score = (
        f"sum by (model) ({_rate('mlplatform_serving_prediction_score_sum')})"
        f" / sum by (model) ({_rate('mlplatform_serving_prediction_score_count')})"
    )
    traffic = Row(
        "Traffic and errors",
        (
            Panel(
                "Requests by outcome",
                "timeseries",
                (Query(f"sum by (model, outcome) ({_rate(requests)})", "{{model}} {{outcome}}"),),
                "Prediction requests per second: ok, partial (some rows rejected), invalid, too_large (client "
                "errors), unavailable (no model or online store down), error.",
                unit="reqps",
                width=8,
            ),
            Panel(
                "Error ratio",
                "timeseries",
                (Query(f"{failed} / sum by (model) ({_rate(requests)})", "{{model}}"),),
                "Share of requests failed by the server (error, unavailable); the line is the alert threshold "
                "of ModelServingErrorRatioHigh.",
                unit="percentunit",
                width=8,
                threshold=thresholds.SERVING_ERROR_RATIO,
                minimum=0,
            ),
            Panel(
                "Entities scored and rejected",
                "timeseries",
                (
                    Query(
                        f"sum by (model, result) ({_rate('mlplatform_serving_entities_total')})",
                        "{{model}} {{result}}",
                    ),
                ),
                "Entities per second: scored, or rejected row by row (for instance an unknown entity key).",
                unit="ops",
                width=8,
            ),
        ),
    )
    latency = Row(
        "Latency",
        (
            Panel(
                "Request latency by model version",
                "timeseries",
                tuple(_latency_by_version(quantile) for quantile in (0.5, 0.9, 0.99)),
                "Percentiles of whole requests (stage total) per model and served version; the line is the p99 "
                "objective of ModelServingLatencyHigh.",
                unit="s",
                width=14,
                threshold=thresholds.SERVING_P99_SLO_SECONDS,
            ),
            Panel(
                "p99 by stage",
                "timeseries",
                (
                    Query(
                        "histogram_quantile(0.99, sum by (model, stage, le) "
                        f"({_rate('mlplatform_serving_stage_seconds_bucket')}))",
                        "{{model}} {{stage}}",
                    ),
                ),
                "Where the time goes: online feature fetch, model predict, and the whole request.",
                unit="s",
                width=10,
            ),
        ),
    )
    predictions = Row(
        "Predictions",
        (
            Panel(
                "Prediction score distribution",
                "heatmap",
                (
                    Query(
                        f"sum by (le) ({_rate('mlplatform_serving_prediction_score_bucket')})",
                        "{{le}}",
                        heatmap=True,
                    ),
                ),
                "Predicted probabilities per score bucket over time (select one model): a shifting "
                "distribution is often the first sign of drift.",
                width=14,
            ),
            Panel(
                "Mean prediction score",
                "timeseries",
                (Query(mean_score, "{{model}}"),),
                "Average predicted probability per model.",
                unit="percentunit",
                width=10,
                minimum=0,
            ),
        ),
    )
    versions = Row(
        "Model versions and prediction log",
        (
            Panel(
                "Served version",
                "stat",
                (
                    Query(
                        f"max by (model, version) (mlplatform_serving_model_info{{{_MODEL}}})",
                        "{{model}} v{{version}}",
                        instant=True,
                    ),
                ),
                "Model versions being served now (two during a canary).",
                width=6,
                height=6,
            ),
            Panel(
                "Served from cache",
                "stat",
                (
                    Query(
                        f"max by (model) (mlplatform_serving_model_from_cache{{{_MODEL}}})",
                        "{{model}}",
                        instant=True,
                    ),
                ),
                "Whether a server serves its model from the local cache because the registry is unreachable.",
                width=6,
                height=6,
                threshold=1,
                mappings=((0, "registry", "green"), (1, "cache", "red")),
            ),
            Panel(
                "Model swaps",
                "timeseries",
                (
                    Query(
                        "sum by (model) (increase(mlplatform_serving_model_swaps_total"
                        f"{{{_MODEL}}}[$__rate_interval]))",
                        "{{model}}",
                    ),
                ),
                "Model versions swapped in after an alias move (promotion, rollback).",
                width=6,
                height=6,
                bars=True,
            ),
            Panel(
                "Prediction log",
                "timeseries",
                (
                    Query(
                        f"sum by (model) ({_rate('mlplatform_serving_prediction_log_written_total')})",
                        "{{model}} written",
                    ),
                    Query(
                        f"sum by (model) ({_rate('mlplatform_serving_prediction_log_dropped_total')})",
                        "{{model}} dropped",
                    ),
                ),
                "Prediction records written to the log, and dropped (queue full or sink failing): drift checks "
                "read this log.",
                unit="ops",
                width=6,
                height=6,
            ),
        ),
    )
    arm_seconds = _rate("mlplatform_serving_arm_seconds_bucket")
    rollouts = Row(
        "Rollouts (per arm)",
        (
            Panel(
                "Entities per arm",
                "timeseries",
                (
                    Query(
                        f"sum by (model, arm, result) ({_rate('mlplatform_serving_arm_entities_total')})",
                        "{{model}} {{arm}} {{result}}",
                    ),
                ),
                "During a rollout: entities each arm answered, scored in shadow, or failed (the champion answered "
                "those instead).",
                unit="ops",
                width=8,
            ),
            Panel(
                "p99 per arm",
                "timeseries",
                (
                    Query(
                        f"histogram_quantile(0.99, sum by (model, arm, le) ({arm_seconds}))",
                        "{{model}} {{arm}}",
                    ),
                ),
                "The time each arm takes for its part of a request; the rollout's latency guardrail compares the "
                "candidate's p99 with the champion's.",
                unit="s",
                width=8,
            ),
            Panel(
                "Candidate share",
                "stat",
                (
                    Query(
                        "max by (model, rollout, candidate_version, mode) "
                        f"(mlplatform_serving_rollout_share{{{_MODEL}}})",
                        "{{model}} rollout {{rollout}} v{{candidate_version}} {{mode}}",
                        instant=True,
                    ),
                ),
                "The rollout each server follows: the share the candidate answers (0 in shadow or paused); no "
                "value: no rollout.",
                unit="percentunit",
                width=8,
            ),
        ),
    )
    return Dashboard(
        uid="mlplatform-serving",
        title="mlplatform / Serving",
        description="Model servers: traffic, errors, latency by version, prediction scores, swaps, prediction log, "
        "rollouts per arm.",
        model_metric="mlplatform_serving_model_info",
        rows=(traffic, latency, predictions, versions, rollouts),
        annotations=(
            (
                "Model swaps",
                f"sum by (model) (increase(mlplatform_serving_model_swaps_total{{{_MODEL}}}[2m])) > 0",
            ),
        ),
    )


def drift_dashboard() -> Dashboard:
    dataset = Row(
        "Data set",
        (
            Panel(
                "Dataset drift share",
                "timeseries",
                (Query(f"max by (model) (mlplatform_dataset_drift_share{{{_MODEL}}})", "{{model}}"),),
                "Share of features drifted in each drift check; the line is the default drift share at which a "
                "data set counts as drifted (a model spec may set its own).",
                unit="percentunit",
                width=12,
                threshold=thresholds.DATASET_DRIFT_SHARE,
                minimum=0,
                maximum=1,
            ),
            Panel(
                "Data set drifted",
                "stat",
                (Query(f"max by (model) (mlplatform_dataset_drift{{{_MODEL}}})", "{{model}}", instant=True),),
                "The latest drift check's verdict per model.",
                width=4,
                threshold=1,
                mappings=((0, "no drift", "green"), (1, "drifted", "red")),
            ),
            Panel(
                "Time since last drift check",
                "stat",
                (
                    Query(
                        f"time() - max by (model) (mlplatform_drift_check_last_success_timestamp_seconds{{{_MODEL}}})",
                        "{{model}}",
                        instant=True,
                    ),
                ),
                "Age of the latest successful drift check; red past the DriftCheckStale limit.",
                unit="s",
                width=4,
                threshold=thresholds.DRIFT_CHECK_MAX_AGE_SECONDS,
            ),
            Panel(
                "Rows in the latest check",
                "stat",
                (Query(f"max by (model) (mlplatform_drift_check_rows{{{_MODEL}}})", "{{model}}", instant=True),),
                "Served rows the latest check compared with the reference; red below the minimum for drift alerts.",
                width=4,
                threshold=thresholds.DRIFT_MIN_ROWS,
                low_is_bad=True,
            ),
        ),
    )
    features = Row(
        "Features",
        (
            Panel(
                "Feature drift score",
                "timeseries",
                (
                    Query(
                        f"max by (model, feature) (mlplatform_feature_drift_score{{{_MODEL}}})",
                        "{{model}} {{feature}}",
                    ),
                ),
                "Evidently's drift score per feature and check: a p-value (K-S, chi-squared, Z: lower is more "
                "drift) for small references, a distance (normed Wasserstein, Jensen-Shannon: higher is more "
                "drift) for large ones. Compare a feature with itself over time.",
                width=24,
                height=9,
            ),
            Panel(
                "Drifted features",
                "state-timeline",
                (
                    Query(
                        f"max by (model, feature) (mlplatform_feature_drifted{{{_MODEL}}})",
                        "{{model}} {{feature}}",
                    ),
                ),
                "Each check's per-feature verdict.",
                width=24,
                height=9,
                threshold=1,
                mappings=((0, "ok", "green"), (1, "drifted", "red")),
            ),
        ),
    )
    return Dashboard(
        uid="mlplatform-drift",
        title="mlplatform / Drift",
        description="Drift of served data against each model's training reference, from the drift checks.",
        model_metric="mlplatform_dataset_drift_share",
        rows=(dataset, features),
    )


def _events(metric: str, by: str, window: str) -> str:
    return f"sum by (model, {by}) (increase({metric}{{{_MODEL}}}[{window}]))"


def pipelines_dashboard() -> Dashboard:
    runs = "mlplatform_training_runs_total"
    triggers = "mlplatform_retrain_triggers_total"
    freshness = "time() - max by (feature_view) (mlplatform_online_features_last_materialized_timestamp_seconds)"
    training = Row(
        "Training and retraining",
        (
            Panel(
                "Training outcomes",
                "timeseries",
                (Query(_events(runs, "outcome", "$__interval"), "{{model}} {{outcome}}"),),
                "Finished training runs per hour: promoted, kept_champion (the gate kept the champion), failed.",
                width=12,
                bars=True,
                min_interval="1h",
            ),
            Panel(
                "Training outcomes in range",
                "bargauge",
                (Query(_events(runs, "outcome", "$__range"), "{{model}} {{outcome}}", instant=True),),
                "Training runs in the selected time range by outcome.",
                width=12,
            ),
            Panel(
                "Retrain triggers",
                "timeseries",
                (Query(_events(triggers, "result", "$__interval"), "{{model}} {{result}}"),),
                "Retrain requests per hour by result: triggered, skipped_cooldown, skipped_in_flight, duplicate, "
                "failed.",
                width=12,
                bars=True,
                min_interval="1h",
            ),
            Panel(
                "Retrain triggers in range",
                "bargauge",
                (Query(_events(triggers, "result", "$__range"), "{{model}} {{result}}", instant=True),),
                "Retrain requests in the selected time range by result.",
                width=12,
            ),
        ),
    )
    features = Row(
        "Online features",
        (
            Panel(
                "Online feature age",
                "bargauge",
                (Query(freshness, "{{feature_view}}", instant=True),),
                "How far behind now the online store is per feature view; red past the OnlineFeaturesStale "
                "limit. Feature views serve every model, so the model filter does not apply.",
                unit="s",
                width=8,
                threshold=thresholds.ONLINE_FEATURES_MAX_AGE_SECONDS,
            ),
            Panel(
                "Online feature age over time",
                "timeseries",
                (Query(freshness, "{{feature_view}}"),),
                "Materialization lag per feature view; the line is the OnlineFeaturesStale limit.",
                unit="s",
                width=16,
                threshold=thresholds.ONLINE_FEATURES_MAX_AGE_SECONDS,
                minimum=0,
            ),
        ),
    )
    return Dashboard(
        uid="mlplatform-pipelines",
        title="mlplatform / Pipelines",
        description="Training outcomes, retrain triggers and online feature freshness.",
        model_metric=runs,
        rows=(training, features),
    )


# --------------------------------------------------------------------------------------------------- files


def build_dashboards() -> dict[str, JsonDict]:
    """Every dashboard's JSON by file name."""
    return {
        f"{dashboard.uid.removeprefix('mlplatform-')}.json": to_json(dashboard)
        for dashboard in (serving_dashboard(), drift_dashboard(), pipelines_dashboard())
    }


def render(dashboard: JsonDict) -> str:
    """Stable text of a dashboard (two-space indent, trailing newline) so regenerating is a no-op diff."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def write_dashboards(directory: Path = DEFAULT_DIRECTORY) -> list[Path]:
    """Write every dashboard into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, dashboard in build_dashboards().items():
        path = directory / name
        path.write_text(render(dashboard), encoding="utf-8")
        written.append(path)
    return written


def stale_dashboards(directory: Path = DEFAULT_DIRECTORY) -> list[str]:
    """Names of dashboards whose file in ``directory`` is missing or differs from the generator's output."""
    stale = []
    for name, dashboard in build_dashboards().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != render(dashboard):
            stale.append(name)
    return stale
