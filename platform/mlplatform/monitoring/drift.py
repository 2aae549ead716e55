"""The drift comparison itself: training reference vs a window of served traffic, with Evidently.

Pure functions on data frames (no MLflow, no DB), so the benchmark and the tests call exactly what the check runs.

What is computed, per model input: Evidently's ``ValueDrift`` with the method Evidently picks for the column's type
and the reference size (numerical columns with few distinct values get a categorical test: chi-squared or
Jensen-Shannon; others Kolmogorov-Smirnov below 1000 reference rows, normed Wasserstein above), its threshold and
verdict; ``MissingValueCount``; ``OutRangeValueCount`` against the reference's [min, max].  The same ``ValueDrift``
on the score is the prediction drift.  The data set counts as drifted when the share of drifted inputs reaches the
spec's ``drift_share``.

Why not ``DataDriftPreset``: it computes every column twice (its dataset-level table through Evidently's legacy
metrics, then one ``ValueDrift`` per column), so it costs 2-2.5x the time for the same per-column verdicts; the
share is a count over those verdicts.  Why sample: the reference is bounded at training (10k rows), and the
current window is compared on at most ``max_rows`` uniformly sampled rows, so time and memory stay flat as traffic
grows (figures and the error bound: docs/performance.md, "Drift check").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplatform.store.drift import FeatureDrift

if TYPE_CHECKING:
    import pandas as pd

PREDICTION = "prediction"
"""Column of the model's score in the reference snapshot; the log's ``score`` is renamed to it for the comparison."""
SAMPLE_SEED = 0
_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_MISSING = "evidently:metric_v2:MissingValueCount"
_OUT_OF_RANGE = "evidently:metric_v2:OutRangeValueCount"
_DRIFT_TEST = "evidently:bound_test:ValueDriftBoundTest"


@dataclass(frozen=True)
class DriftAnalysis:
    """Evidently's answer, flattened to what the platform stores; ``snapshot`` renders the HTML report."""

    features: tuple[FeatureDrift, ...]
    drift_share: float
    dataset_drift: bool
    prediction_method: str | None
    prediction_drift_score: float | None
    prediction_drifted: bool | None
    rows_compared: int
    snapshot: Any

    def save_html(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.snapshot.save_html(str(path))


def sample_rows(frame: pd.DataFrame, max_rows: int, seed: int = SAMPLE_SEED) -> pd.DataFrame:
    """A uniform random sample of at most ``max_rows`` rows (all of them when there are fewer)."""
    if len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed)


def _bounds(reference: pd.DataFrame, features: list[str]) -> dict[str, tuple[float, float] | None]:
    """The reference's observed [min, max] per input: the range served values are expected to stay in."""
    bounds: dict[str, tuple[float, float] | None] = {}
    for name in features:
        low, high = float(reference[name].min()), float(reference[name].max())
        bounds[name] = (low, high) if math.isfinite(low) and math.isfinite(high) else None
    return bounds


def _numeric(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame[columns].astype("float64")


def _metrics(features: list[str], bounds: dict[str, tuple[float, float] | None], with_prediction: bool) -> list[Any]:
    from evidently.metrics import MissingValueCount, OutRangeValueCount, ValueDrift

    metrics: list[Any] = []
    for name in features:
        metrics += [ValueDrift(column=name), MissingValueCount(column=name)]
        bound = bounds[name]
        if bound is not None:
            metrics.append(OutRangeValueCount(column=name, left=bound[0], right=bound[1]))
    if with_prediction:
        metrics.append(ValueDrift(column=PREDICTION))
    return metrics


def run_report(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str], with_prediction: bool
) -> tuple[Any, dict[str, tuple[float, float] | None]]:
    """Evidently's report over numeric inputs (and the score); returns the snapshot and the reference ranges."""
    from evidently import DataDefinition, Dataset, Report

    columns = [*features, PREDICTION] if with_prediction else list(features)
    definition = DataDefinition(numerical_columns=columns)
    bounds = _bounds(reference, features)
    report = Report(_metrics(features, bounds, with_prediction), include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(_numeric(current, columns), data_definition=definition),
        Dataset.from_pandas(_numeric(reference, columns), data_definition=definition),
    )
    return snapshot, bounds


@dataclass
class _Column:
    method: str | None = None
    threshold: float | None = None
    score: float | None = None
    drifted: bool | None = None
    missing: int = 0
    out_of_range: int = 0


def _columns(snapshot: Any) -> dict[str, _Column]:
    """Per column: drift method, threshold, score and verdict, and the data quality counts, from the snapshot."""
    content = snapshot.dict()
    failed = {
        test["bound_test"]["metric_fingerprint"]
        for test in content["tests"]
        if test.get("bound_test", {}).get("type") == _DRIFT_TEST and test["status"] == "FAIL"
    }
    columns: dict[str, _Column] = {}
    for metric in content["metrics"]:
        config, value = metric["config"], metric["value"]
        column = columns.setdefault(config["column"], _Column())
        if config["type"] == _VALUE_DRIFT:
            column.method, column.threshold = config.get("method"), config.get("threshold")
            column.score, column.drifted = float(value), metric["id"] in failed
        elif config["type"] == _MISSING:
            column.missing = int(value["count"])
        elif config["type"] == _OUT_OF_RANGE:
            column.out_of_range = int(value["count"])
    return columns


def _feature_result(name: str, column: _Column, bound: tuple[float, float] | None) -> FeatureDrift:
    low, high = bound if bound is not None else (None, None)
    return FeatureDrift(
        feature=name,
        method=column.method,
        threshold=column.threshold,
        score=column.score,
        drifted=column.drifted,
        missing_count=column.missing,
        out_of_range_count=column.out_of_range,
        reference_min=low,
        reference_max=high,
    )


def analyse(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    *,
    drift_share_threshold: float,
    max_rows: int,
    with_prediction: bool = True,
) -> DriftAnalysis:
    """Compare ``current`` (sampled to ``max_rows``) with ``reference`` on ``features`` and, optionally, the score.

    Both frames hold the input columns and, with ``with_prediction``, a ``prediction`` column (rows whose score is
    NaN, e.g. served by another version, are left out of the prediction drift only).
    """
    compared = sample_rows(current, max_rows)
    snapshot, bounds = run_report(reference, compared, features, with_prediction)
    columns = _columns(snapshot)
    results = tuple(_feature_result(name, columns[name], bounds[name]) for name in features)
    share = sum(1 for result in results if result.drifted) / len(results) if results else 0.0
    prediction = columns.get(PREDICTION, _Column())
    return DriftAnalysis(
        features=results,
        drift_share=share,
        dataset_drift=share >= drift_share_threshold,
        prediction_method=prediction.method,
        prediction_drift_score=prediction.score,
        prediction_drifted=prediction.drifted,
        rows_compared=len(compared),
        snapshot=snapshot,
    )
