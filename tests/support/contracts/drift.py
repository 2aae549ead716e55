"""The drift results: one contract, run against every backend (sqlite in tests/unit, PostgreSQL in
tests/integration)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from mlplatform.store import PlatformStore
from mlplatform.store.drift import DriftCheck, DriftResults, FeatureDrift
from tests.support.api_world import MODEL

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


def check_drift_contract(url: str) -> None:
    """What every platform DB must do with drift results (run on sqlite and PostgreSQL)."""
    store = PlatformStore.migrated(url)
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
