"""Online quality: the model's labelled predictions of the spec's quality window, measured per version and arm,
stored for the page and exported to Prometheus (``quality_metrics``); the ``ModelQualityDropped`` alert reads it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlplatform.monitoring.outcomes import MAX_LABEL_ROWS, LabelError, join_outcomes, normalise_labels, online_quality
from mlplatform.predictions.reader import read_prediction_log
from mlplatform.store.outcomes import IngestResult, OutcomeRecords

if TYPE_CHECKING:
    from mlplatform.config import Settings
    from mlplatform.specs import ModelSpec
    from mlplatform.store.db import PlatformStore


def refresh_quality(
    settings: Settings, store: PlatformStore, spec: ModelSpec, now: datetime | None = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Measure and record the online quality of the window ending ``now``; returns it with the join's counts."""
    end = now or datetime.now(UTC)
    start = end - timedelta(hours=spec.monitoring.quality_window_hours)
    tolerance = timedelta(seconds=spec.rollout.label_tolerance)  # the one tolerance: rollouts join the same way
    predictions = read_prediction_log(settings, spec.name, start, end)
    records = OutcomeRecords(store)
    joined = join_outcomes(predictions, records.labels(spec.name, start - tolerance, end), spec.entity_key, tolerance)
    results = online_quality(joined.frame, spec.task, spec.serving.threshold)
    if results:
        records.record_quality(spec.name, (start, end), results)
    return results, joined.counts


def ingest_label_source(
    settings: Settings, store: PlatformStore, spec: ModelSpec, now: datetime | None = None
) -> IngestResult:
    """Store the rows of the spec's label source (``label.source``: entity key, label, event time) whose event time
    falls in the quality window ending ``now``; rows stored before are skipped as duplicates, so the schedule may
    read the same rows again.  What ``labels_<model>`` runs."""
    import pandas as pd

    end = now or datetime.now(UTC)
    start = end - timedelta(hours=spec.monitoring.quality_window_hours)
    path = settings.model_data_dir(spec.name) / spec.label.source
    columns = [spec.entity_key, spec.label.column, spec.label.timestamp_column]
    try:
        frame = pd.read_parquet(path, columns=columns)
    except (OSError, ValueError) as error:
        raise LabelError(f"{path}: cannot read the label source: {error}") from None
    times = pd.to_datetime(frame[spec.label.timestamp_column], utc=True)
    recent = frame[(times >= start) & (times < end)].tail(MAX_LABEL_ROWS)
    if recent.empty:
        return IngestResult(0, 0, [])
    return OutcomeRecords(store).add(
        spec.name, normalise_labels(recent, spec, str(path)), f"label source {spec.label.source}"
    )
