"""The rollout replay's features: each event's row as of its time, and chunks that never hold an entity twice."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlplatform.loop.replay import chunk_end, rows_as_of
from mlplatform.specs import find_spec
from tests.support.environment import REPO_ROOT

T = pd.Timestamp("2026-12-01T12:00:00Z")


def test_each_event_gets_the_latest_row_at_or_before_its_time_for_its_own_entity(tmp_path: Path) -> None:
    spec = find_spec([REPO_ROOT / "pipelines" / "models"], "fraud_detector")
    source = tmp_path / "stats.parquet"
    minutes = pd.to_timedelta([0, 10, 20, 5], unit="min")
    pd.DataFrame(
        {"customer_id": [1, 1, 1, 2], "event_timestamp": T + minutes, "txn_count_1h": [1, 2, 3, 7]}
    ).to_parquet(source)
    events = pd.DataFrame(
        {
            "customer_id": [1, 2, 1, 1, 2],
            "event_timestamp": [T + pd.Timedelta(minutes=m) for m in (15, 1, 10, -5, 30)],
        }
    )
    rows, as_of = rows_as_of(str(source), "event_timestamp", spec, events)
    # 15 min: the 10-min row; 1 min: customer 2's first row is at 5 min (none yet); 10 min: exactly its row;
    # -5 min: before anything; 30 min: customer 2's only row
    assert as_of == [1, None, 1, None, 3]
    assert rows["txn_count_1h"].iloc[3] == 7


def test_chunks_stop_before_an_entity_repeats_and_at_the_limit() -> None:
    entities = [1, 2, 3, 2, 4, 5, 6, 7]
    assert chunk_end(entities, 0, 10) == 3  # 2 comes again at index 3
    assert chunk_end(entities, 3, 10) == 8
    assert chunk_end(entities, 3, 2) == 5
    assert chunk_end(entities, 8, 5) == 8
