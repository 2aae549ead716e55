"""Drift results: the store contract (sqlite here, PostgreSQL in tests/integration), the API's read endpoints and
the drift gauges the API's ``/metrics`` shows from the DB."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.exc import OperationalError

from mlplatform.config import Settings
from mlplatform.monitoring.drift_metrics import DriftCollector
from mlplatform.store import PlatformStore
from mlplatform.store.drift import DriftCheck, DriftResults, FeatureDrift
from tests.unit.test_api_app import MODEL, World, make_world

START = datetime(2026, 3, 1, tzinfo=UTC)


def feature(name: str, drifted: bool, score: float) -> FeatureDrift:
    return FeatureDrift(
        feature=name,
        method="Wasserstein distance (normed)",
        threshold=0.1,
        score=score,
        drifted=drifted,
        missing_count=3,
        out_of_range_count=2,
        reference_min=0.0,
        reference_max=10.0,
    )


def make_check(model: str = MODEL, *, status: str = "drift", hour: int = 0) -> DriftCheck:
    analysed = status != "insufficient_data"
    features = (feature("amount", True, 0.4), feature("txn_count_1h", False, 0.02)) if analysed else ()
    return DriftCheck(
        model=model,
        model_version="3",
        reference_run_id="abc123",
        status=status,  # type: ignore[arg-type]
        window_start=START + timedelta(hours=hour),
        window_end=START + timedelta(hours=hour + 24),
        rows=1200 if analysed else 12,
        rows_compared=1000 if analysed else 0,
        min_rows=100,
        reference_rows=5000 if analysed else 0,
        drift_share_threshold=0.5,
        started_at=START + timedelta(hours=hour + 24),
        finished_at=START + timedelta(hours=hour + 24, seconds=5),
        actor="pytest",
        drift_share=0.5 if analysed else None,
        dataset_drift=status == "drift" if analysed else None,
        prediction_method="Wasserstein distance (normed)" if analysed else None,
        prediction_drift_score=0.05 if analysed else None,
        prediction_drifted=False if analysed else None,
        features=features,
        detail={"sampled": False},
    )


@pytest.fixture()
def world(settings: Settings) -> World:
    return make_world(settings)


def check_drift_contract(url: str) -> None:
    """What every platform DB must do with drift results (run on sqlite and PostgreSQL)."""
    store = PlatformStore.connect(url)
    try:
        results = DriftResults(store)
        first = results.record(make_check(status="no_drift"))
        second = results.record(make_check(hour=1))
        results.record(make_check("other_model", status="no_drift", hour=2))
        third = results.record(make_check(status="insufficient_data", hour=3))

        listed = results.for_model(MODEL)
        assert [check.id for check in listed] == [third, second, first]
        assert listed[1] == replace(make_check(hour=1), id=second)  # round trip, times in UTC
        assert [check.id for check in results.for_model(MODEL, limit=1, before_id=third)] == [second]
        assert results.get("other_model", first) is None  # ids are looked up within the model
        assert results.get(MODEL, 10**9) is None

        latest = {check.model: check for check in results.latest_analysed()}
        assert latest[MODEL].id == second  # the insufficient_data check carries no verdict
        assert set(latest) == {MODEL, "other_model"}
        assert not latest[MODEL].has_report
        results.set_has_report(second)
        assert results.get(MODEL, second).has_report  # type: ignore[union-attr]
    finally:
        store.dispose()


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
