"""The rollout and outcome tables: one contract, run on sqlite (tests/unit) and PostgreSQL (tests/integration)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mlplatform.store import PlatformStore
from mlplatform.store.outcomes import OutcomeRecords
from mlplatform.store.rollouts import RolloutConflictError, RolloutRecords

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _labels(rows: list[tuple[str, str | None, datetime | None, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["entity_value", "request_id", "event_ts", "label"])
    frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True)
    return frame


def check_rollout_contract(url: str) -> None:
    store = PlatformStore.migrated(url)
    try:
        records = RolloutRecords(store)
        started = records.start(
            model="churn", candidate_version="7", champion_version="6", mode="shadow", share=0.1, policy={}, actor="ana"
        )
        with pytest.raises(RolloutConflictError, match="already has rollout"):
            records.start(
                model="churn",
                candidate_version="8",
                champion_version="6",
                mode="split",
                share=0.2,
                policy={},
                actor="bo",
            )
        # several API replicas tick at once: exactly one claims the due evaluation
        claimed: list[bool] = []
        due = records.get(started.id)
        assert due is not None
        threads = [
            threading.Thread(
                target=lambda: claimed.append(records.claim(due, datetime.now(UTC) + timedelta(minutes=1)))
            )
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(claimed) == [False, False, False, True]
        ended = records.end(started.id, state="stopped", decision="stop", reason="enough", actor="ana")
        assert (ended.state, ended.open, ended.decided_by) == ("stopped", False, "ana")
        with pytest.raises(RolloutConflictError, match="is stopped"):
            records.change(started.id, state="running")
        again = records.start(
            model="churn", candidate_version="8", champion_version="6", mode="split", share=0.2, policy={}, actor="bo"
        )
        assert [rollout.id for rollout in records.recent("churn")] == [again.id, started.id]
        assert records.open_for("churn") == again

        outcomes = OutcomeRecords(store)
        first = outcomes.add(
            "churn", _labels([("1", "r1", None, 1.0), ("2", None, T0, 0.0), ("2", None, T0, 0.0)]), "a"
        )
        assert (first.inserted, first.duplicates, first.conflicts) == (2, 1, [])
        second = outcomes.add("churn", _labels([("1", "r1", None, 0.0), ("3", None, T0 + timedelta(days=2), 1.0)]), "b")
        assert (second.inserted, second.duplicates, len(second.conflicts)) == (1, 0, 1)
        window = outcomes.labels("churn", T0 - timedelta(hours=1), T0 + timedelta(days=1))
        assert sorted(window["entity_value"]) == ["1", "2"]  # a request-id label always, timed ones in the window
        assert str(window["event_ts"].dtype) == "datetime64[us, UTC]"
        result = [{"model_version": "6", "arm": "champion", "labelled": 2, "metrics": {"log_loss": 0.3}}]
        outcomes.record_quality("churn", (T0, T0 + timedelta(days=1)), result)
        outcomes.record_quality("churn", (T0, T0 + timedelta(days=2)), [{**result[0], "metrics": {"log_loss": 0.4}}])
        latest = outcomes.latest_quality("churn")
        assert [(item.version, item.arm, item.metrics) for item in latest] == [("6", "champion", {"log_loss": 0.4})]
    finally:
        store.dispose()
