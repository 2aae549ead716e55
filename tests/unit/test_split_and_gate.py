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


def test_time_split_for_multiclass_needs_every_class_in_both_parts() -> None:
    frame = _frame()
    frame["label"] = [index % 3 for index in range(len(frame))]
    frame.loc[frame["event_timestamp"] >= frame["event_timestamp"].quantile(0.7), "label"] = 1
    with pytest.raises(SplitError, match=r"holdout part .* needs every label class \[0, 1, 2\], has \[1\]"):
        time_split(frame, "event_timestamp", "label", 0.2, classes=[0, 1, 2])


def test_time_split_for_regression_needs_rows_not_classes() -> None:
    frame = _frame()
    frame["label"] = np.linspace(0.0, 1.0, len(frame))
    split = time_split(frame, "event_timestamp", "label", 0.2, classes=None)
    assert len(split.holdout) > 0 and split.holdout["label"].dtype == np.float64
    same_time = frame.assign(event_timestamp=frame["event_timestamp"].min())
    with pytest.raises(SplitError, match=r"the train part \(0 rows, .*\) is empty"):
        time_split(same_time, "event_timestamp", "label", 0.2, classes=None)


def test_gate_maximums_are_ceilings() -> None:
    gates = GatesSpec(minimums={"r2": 0.5}, maximums={"rmse": 2.0})
    assert decide(gates, "rmse", {"rmse": 1.5, "r2": 0.8}, None).passed
    over = decide(gates, "rmse", {"rmse": 2.5, "r2": 0.8}, None)
    assert not over.passed and "rmse 2.5000 is above the maximum 2.0000" in over.summary
    missing = decide(gates, "rmse", {"r2": 0.8}, None)
    assert not missing.passed and "rmse was not computed" in missing.summary


def test_gate_with_an_error_metric_wants_the_challenger_lower() -> None:
    gates = GatesSpec(min_improvement=0.1)
    champion = {"rmse": 2.0}
    lower = decide(gates, "rmse", {"rmse": 1.8}, champion, "4")
    assert lower.passed
    assert "rmse 1.8000 beats champion v4 (2.0000): lower is better, required margin 0.1000" in lower.summary
    close = decide(gates, "rmse", {"rmse": 1.95}, champion, "4")
    higher = decide(gates, "rmse", {"rmse": 2.5}, champion, "4")
    assert not close.passed and not higher.passed
    assert "rmse 2.5000 does not beat champion v4 (2.0000): lower is better" in higher.summary


def test_gate_with_log_loss_as_primary_and_a_tie_keeps_the_champion() -> None:
    gates = GatesSpec(maximums={"log_loss": 0.7})
    assert not decide(gates, "log_loss", {"log_loss": 0.3}, {"log_loss": 0.3}, "1").passed
    assert decide(gates, "log_loss", {"log_loss": 0.29}, {"log_loss": 0.3}, "1").passed
