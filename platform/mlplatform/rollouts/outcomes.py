"""What the evaluator reads: a rollout's window of the prediction log, and its labels joined to it.

Wired here, over the platform's real stores, so ``RolloutEvaluator`` itself takes plain callables (tests hand in
frames)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mlplatform.monitoring.outcomes import join_outcomes
from mlplatform.predictions.reader import read_prediction_log
from mlplatform.store.outcomes import OutcomeRecords

if TYPE_CHECKING:
    import pandas as pd

    from mlplatform.config import Settings
    from mlplatform.specs import ModelSpec
    from mlplatform.store.db import PlatformStore


def prediction_window(settings: Settings) -> Callable[[str, datetime, datetime], pd.DataFrame]:
    def read(model: str, start: datetime, end: datetime) -> pd.DataFrame:
        return read_prediction_log(settings, model, start, end)

    return read


def outcome_join(
    store: PlatformStore,
) -> Callable[[ModelSpec, pd.DataFrame, datetime, datetime, float], tuple[pd.DataFrame, dict[str, int]]]:
    """Labels of the window (and a tolerance around it) joined to its predictions."""
    records = OutcomeRecords(store)

    def join(
        spec: ModelSpec, predictions: pd.DataFrame, start: datetime, end: datetime, tolerance_s: float
    ) -> tuple[pd.DataFrame, dict[str, int]]:
        tolerance = timedelta(seconds=tolerance_s)
        labels = records.labels(spec.name, start - tolerance, end + tolerance)
        joined = join_outcomes(predictions, labels, spec.entity_key, tolerance)
        return joined.frame, joined.counts

    return join
