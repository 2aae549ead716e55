"""The retrain records: one contract, run against every backend (sqlite in tests/unit, PostgreSQL in
tests/integration)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mlplatform.store import PlatformStore
from mlplatform.store.retrains import AlertRef, RetrainRecords

STARTS = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _ref(key: str, model: str = "m") -> AlertRef:
    return AlertRef(model, "DatasetDriftDetected", key.split("@")[0], STARTS, key)


def check_retrain_contract(url: str) -> None:
    store = PlatformStore.migrated(url)
    try:
        records = RetrainRecords(store)
        now = datetime.now(UTC)
        first = records.claim(_ref("aa@1"), "train_m", "retrain__1", "drift", first_attempt_at=now)
        assert first is not None and first.status == "pending" and first.attempts == 0
        assert first.starts_at == STARTS and first.created_at.tzinfo is not None
        # The key can be claimed once; a skip never claims it.
        assert records.claim(_ref("aa@1"), "train_m", "retrain__1", "again", first_attempt_at=now) is None
        skipped = records.skip(_ref("aa@1"), "duplicate")
        assert (skipped.status, skipped.skip_reason) == ("skipped", "duplicate")
        assert records.claimed("aa@1") == first and records.claimed("bb@1") is None
        assert records.last_claim("m") == first and records.last_claim("other") is None

        assert records.due(now - timedelta(seconds=1)) == []
        assert [t.id for t in records.due(now)] == [first.id]
        later = now + timedelta(seconds=10)
        retry = records.attempt_failed(first.id, "Airflow is unreachable", later)
        assert (retry.status, retry.attempts, retry.next_attempt_at) == ("pending", 1, later)
        assert records.due(now) == [] and [t.id for t in records.due(later)] == [first.id]
        done = records.triggered(first.id, "retrain__1")
        assert (done.status, done.attempts, done.dag_run_id, done.next_attempt_at) == (
            "triggered",
            2,
            "retrain__1",
            None,
        )
        assert done.last_error == "Airflow is unreachable"

        second = records.claim(_ref("cc@2"), "train_m", "retrain__2", "drift", first_attempt_at=now)
        assert second is not None
        gave_up = records.attempt_failed(second.id, "refused", None)
        assert gave_up.status == "failed" and records.due(later) == []
        assert records.last_claim("m") == gave_up
        records.skip(_ref("dd@3", model="other"), "resolved")
        assert [(t.status, t.skip_reason) for t in records.list("m")] == [
            ("failed", None),
            ("skipped", "duplicate"),
            ("triggered", None),
        ]
        assert len(records.list("m", limit=1)) == 1
    finally:
        store.dispose()
