"""Drift results: the store contract (sqlite here, PostgreSQL in tests/integration), the API's read endpoints and
the drift gauges the API's ``/metrics`` shows from the DB."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError

from mlplatform.config import MonitoringSettings, Settings
from mlplatform.monitoring.drift_metrics import DriftCollector
from mlplatform.monitoring.reports import LocalReportStore, open_report_store
from mlplatform.store.drift import DriftCheck, DriftResults
from tests.support.api_world import MODEL, World, make_world
from tests.support.contracts.drift import check_drift_contract, make_check


def test_drift_contract_on_sqlite(settings: Settings) -> None:
    check_drift_contract(settings.db_url)


def test_report_path_is_built_from_the_id_only(settings: Settings) -> None:
    path = settings.layout.drift_report(MODEL, 42)
    assert path == settings.state_dir / "monitoring" / "reports" / MODEL / "42.html"


def _seed(world: World) -> tuple[int, int]:
    results = DriftResults(world.services.store)
    with_report = results.record(make_check(status="no_drift"))
    path = world.services.settings.layout.drift_report(MODEL, with_report)
    path.parent.mkdir(parents=True)
    path.write_text("<html><body>evidently</body></html>")
    results.set_has_report(with_report)
    newest = results.record(make_check(hour=1))
    return with_report, newest


def test_drift_checks_are_listed_newest_first_and_paged(world: World) -> None:
    with_report, newest = _seed(world)
    response = world.client.get(f"/api/v1/models/{MODEL}/drift", headers=world.as_role("viewer"))
    assert response.status_code == 200
    body = response.json()
    assert [check["id"] for check in body] == [newest, with_report]
    assert body[0]["status"] == "drift" and body[0]["report_url"] is None
    assert body[1]["report_url"] == f"/api/v1/models/{MODEL}/drift/{with_report}/report"
    assert body[0]["features"][0] == {
        "feature": "amount",
        "method": "Wasserstein distance (normed)",
        "threshold": 0.1,
        "score": 0.4,
        "drifted": True,
        "missing_count": 3,
        "out_of_range_count": 2,
        "reference_min": 0.0,
        "reference_max": 10.0,
    }
    page = world.client.get(
        f"/api/v1/models/{MODEL}/drift", params={"limit": 1, "before_id": newest}, headers=world.as_role("viewer")
    )
    assert [check["id"] for check in page.json()] == [with_report]


def test_drift_report_is_served_sandboxed_to_viewers(world: World) -> None:
    with_report, newest = _seed(world)
    url = f"/api/v1/models/{MODEL}/drift/{with_report}/report"
    assert world.client.get(url).status_code == 401
    response = world.client.get(url, headers=world.as_role("viewer"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == "sandbox allow-scripts"
    assert "evidently" in response.text
    missing = world.client.get(f"/api/v1/models/{MODEL}/drift/{newest}/report", headers=world.as_role("viewer"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    unknown = world.client.get(f"/api/v1/models/{MODEL}/drift/999/report", headers=world.as_role("viewer"))
    assert unknown.status_code == 404
    bad_model = world.client.get("/api/v1/models/nope/drift", headers=world.as_role("viewer"))
    assert bad_model.status_code == 404


def test_the_local_report_store_renames_a_whole_report_into_place(settings: Settings, tmp_path: Path) -> None:
    store = open_report_store(settings)
    assert isinstance(store, LocalReportStore)
    check = replace(make_check(status="no_drift"), id=7)
    assert store.get(check) is None
    rendered = tmp_path / "report.html"
    rendered.write_text("<html>first</html>")
    store.put(check, rendered)
    rendered.write_text("<html>second</html>")
    store.put(check, rendered)
    assert store.get(check) == b"<html>second</html>"
    assert [path.name for path in settings.layout.drift_report(MODEL, 7).parent.iterdir()] == ["7.html"]  # no drafts
    with pytest.raises(ValueError, match="record the check before its report"):
        store.put(make_check(status="no_drift"), rendered)


def test_a_report_kept_in_mlflow_while_mlflow_is_down_is_a_503_not_a_500(settings: Settings) -> None:
    """Nothing listens on the settings' MLflow port: the report store cannot answer, and the API says so."""
    world = make_world(settings.model_copy(update={"monitoring": MonitoringSettings(report_store="mlflow")}))
    results = DriftResults(world.services.store)
    check_id = results.record(make_check(status="no_drift"))
    results.set_has_report(check_id)
    response = world.client.get(f"/api/v1/models/{MODEL}/drift/{check_id}/report", headers=world.as_role("viewer"))
    assert response.status_code == 503
    assert response.json()["type"] == "/problems/registry-unavailable"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith(("mlplatform_feature_drift", "mlplatform_dataset_drift", "mlplatform_drift_check"))
    }


def test_metrics_show_the_latest_analysed_check_per_model(world: World) -> None:
    assert _samples(world.client.get("/metrics").text) == {}  # absent until a first check
    results = DriftResults(world.services.store)
    results.record(make_check(status="no_drift"))
    latest = make_check(hour=1)
    results.record(latest)
    results.record(make_check(status="insufficient_data", hour=2))  # keeps the previous verdict

    model = (("model", MODEL),)
    assert _samples(world.client.get("/metrics").text) == {
        ("mlplatform_feature_drift_score", (("feature", "amount"), *model)): 0.4,
        ("mlplatform_feature_drift_score", (("feature", "txn_count_1h"), *model)): 0.02,
        ("mlplatform_feature_drifted", (("feature", "amount"), *model)): 1.0,
        ("mlplatform_feature_drifted", (("feature", "txn_count_1h"), *model)): 0.0,
        ("mlplatform_dataset_drift_share", model): 0.5,
        ("mlplatform_dataset_drift", model): 1.0,
        ("mlplatform_drift_check_last_success_timestamp_seconds", model): latest.finished_at.timestamp(),
        ("mlplatform_drift_check_rows", model): 1000.0,
    }


def test_drift_metrics_show_the_last_results_while_the_db_does_not_answer(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = DriftResults(world.services.store)
    results.record(make_check(hour=1))
    collector = DriftCollector(results)
    answered = [family.samples for family in collector.collect()]

    def unavailable() -> list[DriftCheck]:
        raise OperationalError("SELECT", {}, ConnectionError("the platform DB is down"))

    monkeypatch.setattr(results, "latest_analysed", unavailable)
    assert [family.samples for family in collector.describe()] == [[]] * 6  # described without a query
    assert [family.samples for family in collector.collect()] == answered
    assert all(answered)
