"""Every series a rule or dashboard selects is one the platform exports (or has declared it will export).

The union checked against: the model server's real ``/metrics`` (``ServingMetrics``), the platform API's real
``/metrics`` (``create_app``), and ``mlplatform.monitoring.metric_names`` for the drift and loop metrics the API
does not export yet.  ``NOT_YET_EXPORTED`` says which those are, so the test stays honest: when the API starts
exporting one, the test fails until it is removed from that list (and then checks its type and labels).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlplatform.config import get_settings
from mlplatform.monitoring.dashboards import build_dashboards
from mlplatform.monitoring.drift_metrics import DriftCollector
from mlplatform.monitoring.metric_names import PLATFORM_API_METRICS
from mlplatform.monitoring.quality_metrics import QualityCollector
from mlplatform.serving.metrics import ServingMetrics
from mlplatform.store.drift import DriftResults
from mlplatform.store.outcomes import OutcomeRecords
from mlplatform.webapp import create_app
from tests.monitoring.conftest import rule_expressions
from tests.monitoring.exports import (
    TARGET_LABELS,
    Known,
    collector_labels,
    described_labels,
    exposition_families,
    known_declared,
    known_from_exposition,
)
from tests.monitoring.promql import grouping_labels, label_values_metric, numbers, selectors
from tests.support.environment import with_migrated_db

NOT_YET_EXPORTED = frozenset(
    {
        "mlplatform_online_features_last_materialized_timestamp_seconds",
        "mlplatform_training_runs_total",
    }
)


@pytest.fixture(scope="module")
def serving_exposition() -> tuple[str, ServingMetrics]:
    metrics = ServingMetrics()
    return metrics.render().decode(), metrics


@pytest.fixture(scope="module")
def api_exposition(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, frozenset[str]]]]:
    """The API's ``/metrics`` answer from a real app (sqlite platform DB in a temporary state directory).

    With it, the label names of the app's collectors: the metrics object's own, the drift and quality collectors'.
    """
    state: Path = tmp_path_factory.mktemp("api") / "state"
    app = create_app(with_migrated_db(get_settings(state_dir=state)))
    with TestClient(app) as client:
        response = client.get("/metrics")
        assert response.status_code == 200
        services = app.state.services
        yield (
            response.text,
            collector_labels(services.metrics)
            | described_labels(DriftCollector(DriftResults(services.store)))
            | described_labels(QualityCollector(OutcomeRecords(services.store))),
        )


@pytest.fixture(scope="module")
def exported(
    serving_exposition: tuple[str, ServingMetrics], api_exposition: tuple[str, dict[str, frozenset[str]]]
) -> dict[str, Known]:
    serving = known_from_exposition(
        serving_exposition[0], collector_labels(serving_exposition[1]), "model server /metrics"
    )
    api = known_from_exposition(*api_exposition, "platform API /metrics")
    assert not serving.keys() & api.keys(), "the model server and the API export the same name"
    return {**serving, **api}


@pytest.fixture(scope="module")
def known(exported: dict[str, Known]) -> dict[str, Known]:
    """Exported names, plus declared names that are not exported yet."""
    return {**known_declared(), **exported}


def _expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every rule, dashboard panel query and dashboard annotation."""
    found = [(f"rule {name}", expr) for name, expr in rule_expressions()]
    for file_name, dashboard in build_dashboards().items():
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{file_name} panel {panel['title']!r}", target["expr"]))
        for annotation in dashboard["annotations"]["list"]:
            if "expr" in annotation:
                found.append((f"{file_name} annotation {annotation['name']!r}", annotation["expr"]))
    return found


def test_the_expositions_and_collectors_agree(
    serving_exposition: tuple[str, ServingMetrics], api_exposition: tuple[str, dict[str, frozenset[str]]]
) -> None:
    """Labels are read from the collectors; make sure those are exactly the families the scrape shows."""
    serving_text, serving_metrics = serving_exposition
    for text, labels in ((serving_text, collector_labels(serving_metrics)), api_exposition):
        assert set(exposition_families(text)) == set(labels)


def test_every_selected_series_is_exported_or_declared(known: dict[str, Known]) -> None:
    problems = []
    for where, expr in _expressions():
        for selector in selectors(expr):
            metric = known.get(selector.name)
            if metric is None:
                problems.append(f"{where}: {selector.name} is neither exported nor declared")
                continue
            unknown = selector.labels - metric.labels - TARGET_LABELS
            if unknown:
                problems.append(f"{where}: {selector.name} has no label(s) {sorted(unknown)}")
    assert not problems, "\n".join(problems)


def test_grouping_and_join_labels_exist_on_the_selected_series(known: dict[str, Known]) -> None:
    """``by (modle)`` is valid PromQL that silently groups everything into one series: catch such typos."""
    problems = []
    for where, expr in _expressions():
        available = set(TARGET_LABELS)
        for selector in selectors(expr):
            if selector.name in known:
                available |= known[selector.name].labels
        missing = grouping_labels(expr) - available
        if missing:
            problems.append(f"{where}: grouping label(s) {sorted(missing)} on none of its series")
    assert not problems, "\n".join(problems)


def test_dashboard_model_variables_read_exported_or_declared_series(known: dict[str, Known]) -> None:
    for file_name, dashboard in build_dashboards().items():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                metric = label_values_metric(variable["query"]["query"])
                assert metric in known, f"{file_name}: variable {variable['name']} reads unknown {metric}"
                assert "model" in known[metric].labels


def test_declared_metrics_not_exported_yet_are_listed(exported: dict[str, Known]) -> None:
    declared = {spec.name for spec in PLATFORM_API_METRICS}
    not_exported = declared - exported.keys()
    newly_exported = NOT_YET_EXPORTED - not_exported
    assert not newly_exported, f"the API now exports {sorted(newly_exported)}: remove them from NOT_YET_EXPORTED"
    assert not_exported == NOT_YET_EXPORTED, f"declared but not exported: {sorted(not_exported)}"


def test_declared_metrics_that_are_exported_match_their_declaration(exported: dict[str, Known]) -> None:
    for spec in PLATFORM_API_METRICS:
        for name in spec.sample_names():
            if name in exported:
                assert exported[name].type == spec.type, name
                assert exported[name].labels - {"le"} == frozenset(spec.labels), name


def test_declared_metrics_follow_prometheus_naming() -> None:
    names = [spec.name for spec in PLATFORM_API_METRICS]
    assert len(names) == len(set(names))
    for spec in PLATFORM_API_METRICS:
        assert spec.name.startswith("mlplatform_"), spec.name
        assert spec.name.endswith("_total") == (spec.type == "counter"), spec.name
        assert spec.help and spec.labels, spec.name
        for label, values in spec.label_values:
            assert label in spec.labels and values, spec.name


def test_every_declared_metric_is_used_by_a_rule_or_dashboard() -> None:
    used = {selector.name for _, expr in _expressions() for selector in selectors(expr)}
    unused = {name for spec in PLATFORM_API_METRICS for name in spec.sample_names()} - used
    assert not unused, f"declared but never queried: {sorted(unused)}"


def test_the_selector_reader_itself() -> None:
    """The reader must see names next to keywords, ranges, strings and label lists, and nothing else."""
    expr = (
        'histogram_quantile(0.99, sum by (model, le) (rate(a_bucket{stage="total",model=~"x|y"}[5m])'
        " * on (model, instance) group_left (version) max by (model) (b_info)))"
        ' > 0.05 and on (model) c_total unless time() - d{job!~"n{1}"} offset 5m'
    )
    found = {(selector.name, selector.labels) for selector in selectors(expr)}
    assert found == {
        ("a_bucket", frozenset({"stage", "model"})),
        ("b_info", frozenset()),
        ("c_total", frozenset()),
        ("d", frozenset({"job"})),
    }
    assert grouping_labels(expr) == {"model", "le", "instance", "version"}
    assert numbers(expr) == {0.99, 0.05}
