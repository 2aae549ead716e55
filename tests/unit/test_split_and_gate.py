"""Time split and promotion gate: pure logic, the rules the pipeline promotes by."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.specs import GatesSpec
from mlplatform.training.evaluate import recall_at_precision
from mlplatform.training.gate import decide
from mlplatform.training.split import SplitError, time_split


def _frame(rows: int = 100, positives_every: int = 5) -> pd.DataFrame:
    times = pd.date_range("2026-01-01", periods=rows, freq="h", tz="UTC")
    labels = [1 if i % positives_every == 0 else 0 for i in range(rows)]
    # Shuffle so the split must sort by time itself.
    return pd.DataFrame({"event_timestamp": times, "label": labels}).sample(frac=1.0, random_state=1)


def test_time_split_puts_every_holdout_row_after_every_train_row() -> None:
    split = time_split(_frame(), "event_timestamp", "label", 0.2)
    assert split.train["event_timestamp"].max() < split.cutoff <= split.holdout["event_timestamp"].min()
    assert len(split.train) + len(split.holdout) == 100
    assert 15 <= len(split.holdout) <= 25


def test_time_split_refuses_a_holdout_without_positives() -> None:
    frame = _frame()
    frame.loc[frame["event_timestamp"] >= frame["event_timestamp"].quantile(0.7), "label"] = 0
    with pytest.raises(SplitError, match=r"holdout part .* needs every label class \[0, 1\], has \[0\]"):
        time_split(frame, "event_timestamp", "label", 0.2)


def test_time_split_refuses_empty_data() -> None:
    with pytest.raises(SplitError, match="empty"):
        time_split(_frame().iloc[:0], "event_timestamp", "label", 0.2)


GATES = GatesSpec(minimums={"roc_auc": 0.85, "average_precision": 0.3}, min_improvement=0.01)


def test_gate_passes_first_model_above_minimums() -> None:
    decision = decide(GATES, "roc_auc", {"roc_auc": 0.9, "average_precision": 0.5}, None)
    assert decision.passed
    assert "no current champion" in decision.summary


def test_gate_fails_below_a_minimum_even_without_champion() -> None:
    decision = decide(GATES, "roc_auc", {"roc_auc": 0.84, "average_precision": 0.5}, None)
    assert not decision.passed
    assert "roc_auc 0.8400 is below the minimum 0.8500" in decision.summary


def test_gate_requires_beating_champion_by_margin() -> None:
    champion = {"roc_auc": 0.90, "average_precision": 0.5}
    close = decide(GATES, "roc_auc", {"roc_auc": 0.905, "average_precision": 0.5}, champion, "3")
    better = decide(GATES, "roc_auc", {"roc_auc": 0.92, "average_precision": 0.5}, champion, "3")
    assert not close.passed
    assert "does not beat champion v3 (0.9000)" in close.summary
    assert better.passed
    assert better.champion_score == pytest.approx(0.90)


def test_gate_with_zero_margin_refuses_a_tie() -> None:
    gates = GatesSpec(minimums={}, min_improvement=0.0)
    assert not decide(gates, "roc_auc", {"roc_auc": 0.9}, {"roc_auc": 0.9}, "1").passed


def test_gate_fails_when_champion_cannot_be_scored() -> None:
    decision = decide(GATES, "roc_auc", {"roc_auc": 0.95, "average_precision": 0.6}, {}, "2")
    assert not decision.passed
    assert "missing for the comparison with champion v2" in decision.summary


def test_recall_at_precision_picks_the_best_reachable_threshold() -> None:
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 1], dtype=np.int64)
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    recall, threshold = recall_at_precision(labels, scores, 0.99)
    assert recall == pytest.approx(0.75)
    assert threshold == pytest.approx(0.6)
    assert recall_at_precision(np.array([1, 0], dtype=np.int64), np.array([0.1, 0.9]), 0.99) == (0.0, 1.0)
