"""Late labels: reading them, joining them to the predictions they label, and the online quality that follows.

* **Reading** (``read_labels``): a parquet or CSV file, or API rows, with the model's entity key, its label column
  (``spec.label.column``), and either the ``request_id`` of the prediction or the event time
  (``spec.label.timestamp_column``: when the labelled event happened, i.e. the moment that was scored; naive times
  are taken as UTC, like the rest of the platform's data contract).  Every problem is refused before anything is
  stored, naming the file, the column and the first rows.
* **Joining** (``join_outcomes``): a label with a request id joins that request's prediction rows of its entity
  (both arms in shadow); a label with an event time joins the entity's prediction rows closest to that time within
  ``tolerance`` (clock skew between the labelling system and the servers), all arms of that one request.  A label
  whose entity has no prediction within the tolerance is ``unknown``, or ``before_prediction`` when the entity's
  first prediction comes after it: it never joins a later prediction.  Failures (rows with an ``error``) carry no
  prediction and are never joined.
* **Quality** (``online_quality``): per version and arm, what the outcomes say: binary log loss, Brier score, ROC
  AUC, precision and recall at the threshold, calibration error; multiclass accuracy and top-label calibration (the
  log holds only the predicted class's probability); regression MAE and RMSE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from mlplatform.specs import ModelSpec

MAX_LABEL_ROWS = 1_000_000
"""Largest label file one ingest reads: bigger ones are split (a day of chargebacks is far below)."""
MAX_ID_CHARS = 64
"""Request ids as the prediction log stores them."""
MAX_ENTITY_CHARS = 255
SHOWN_ROWS = 5
CALIBRATION_BINS = 10
LABEL_COLUMNS = ("entity_value", "request_id", "event_ts", "label")
"""The normalised labels every reader returns (entity as text, times in UTC)."""


class LabelError(ValueError):
    """Labels that cannot be used; the message names the file (or the request), the column and the rows."""


def read_label_table(path: Path) -> pd.DataFrame:
    """A parquet or CSV file of labels as it is, within ``MAX_LABEL_ROWS``: what the CLI sends and
    ``read_label_file`` checks; ``LabelError`` for a file that cannot be read."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.ParquetFile(path).metadata.num_rows
            if rows > MAX_LABEL_ROWS:
                raise LabelError(f"{path}: {rows} rows; at most {MAX_LABEL_ROWS} per ingest: split the file")
            return pd.read_parquet(path)
        if suffix == ".csv":
            frame = pd.read_csv(path, nrows=MAX_LABEL_ROWS + 1, dtype={"request_id": "string"})
            if len(frame) > MAX_LABEL_ROWS:
                raise LabelError(f"{path}: more than {MAX_LABEL_ROWS} rows per ingest: split the file")
            return frame
        raise LabelError(f"{path}: labels must be a .parquet or .csv file")
    except (OSError, ValueError) as error:
        if isinstance(error, LabelError):
            raise
        raise LabelError(f"{path}: cannot read labels: {error}") from None


def read_label_file(path: Path, spec: ModelSpec) -> pd.DataFrame:
    """The labels of a parquet or CSV file, normalised (``LABEL_COLUMNS``); ``LabelError`` for anything wrong."""
    return normalise_labels(read_label_table(path), spec, str(path))


def normalise_labels(frame: pd.DataFrame, spec: ModelSpec, where: str) -> pd.DataFrame:
    """Check and normalise raw label rows (a file's or an API body's) to ``LABEL_COLUMNS``."""
    key, label, time_column = spec.entity_key, spec.label.column, spec.label.timestamp_column
    missing = [column for column in (key, label) if column not in frame.columns]
    if missing:
        raise LabelError(
            f"{where}: missing column(s) {missing}; labels need {key!r}, {label!r} and either "
            f"'request_id' or {time_column!r}"
        )
    has_id, has_time = "request_id" in frame.columns, time_column in frame.columns
    if not (has_id or has_time):
        raise LabelError(f"{where}: labels need a 'request_id' or a {time_column!r} column to find their predictions")
    if frame.empty:
        raise LabelError(f"{where}: no label rows")
    entities = _entities(frame[key], where, key)
    request_ids = _request_ids(frame["request_id"], where) if has_id else pd.Series([None] * len(frame), dtype=object)
    times = _times(frame[time_column], where, time_column) if has_time else pd.Series(pd.NaT, index=frame.index)
    unplaced = request_ids.isna().to_numpy() & times.isna().to_numpy()
    _refuse(unplaced, where, f"'request_id' and {time_column!r}", "each label needs a request id or an event time")
    values = _labels(frame[label], spec, where)
    return pd.DataFrame(
        {
            "entity_value": entities.to_numpy(),
            "request_id": request_ids.to_numpy(),
            "event_ts": times.to_numpy(),
            "label": values,
        }
    )


def _refuse(bad: np.ndarray, where: str, column: str, rule: str) -> None:
    if bad.any():
        rows = np.flatnonzero(bad)[:SHOWN_ROWS].tolist()
        raise LabelError(f"{where}: column {column}: {rule} (rows {rows}{', ...' if bad.sum() > SHOWN_ROWS else ''})")


def _entities(column: pd.Series, where: str, key: str) -> pd.Series:
    _refuse(column.isna().to_numpy(), where, repr(key), "the entity key is missing")
    if pd.api.types.is_float_dtype(column):
        whole = column.to_numpy() == np.floor(column.to_numpy())
        _refuse(~whole, where, repr(key), "entity keys are whole numbers or text")
        column = column.astype("int64")
    text = column.astype(str)
    _refuse((text.str.len() > MAX_ENTITY_CHARS).to_numpy(), where, repr(key), f"longer than {MAX_ENTITY_CHARS} chars")
    return text


def _request_ids(column: pd.Series, where: str) -> pd.Series:
    text = column.astype("string")
    _refuse(
        (text.str.len() > MAX_ID_CHARS).fillna(False).to_numpy(dtype=bool),
        where,
        "'request_id'",
        f"request ids are at most {MAX_ID_CHARS} characters",
    )
    return text.astype(object).where(text.notna(), None)


def _times(column: pd.Series, where: str, name: str) -> pd.Series:
    try:
        times = pd.to_datetime(column, utc=True, errors="raise", format="mixed")
    except (ValueError, TypeError) as error:
        raise LabelError(f"{where}: column {name!r}: not a timestamp: {error}") from None
    return times.dt.as_unit("us")


def _labels(column: pd.Series, spec: ModelSpec, where: str) -> np.ndarray:
    name = repr(spec.label.column)
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
    _refuse(~np.isfinite(numbers), where, name, "labels must be finite numbers")
    if spec.task == "binary":
        _refuse(~np.isin(numbers, (0.0, 1.0)), where, name, "binary labels are 0 or 1")
    elif spec.task == "multiclass":
        _refuse((numbers < 0) | (numbers != np.floor(numbers)), where, name, "class codes are whole numbers >= 0")
    return numbers


@dataclass(frozen=True)
class JoinResult:
    """Labelled prediction rows (the log's columns plus ``outcome``) and what happened to every label."""

    frame: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    """matched, unknown (no prediction of the request or entity), before_prediction."""


def join_outcomes(predictions: pd.DataFrame, labels: pd.DataFrame, entity_key: str, tolerance: timedelta) -> JoinResult:
    """The prediction rows each label labels, with the label as ``outcome`` (rules: the module docstring)."""
    counts = {"labels": len(labels), "matched": 0, "unknown": 0, "before_prediction": 0}
    scored = predictions[predictions["error"].isna()] if "error" in predictions.columns else predictions
    if labels.empty or scored.empty:
        counts["unknown"] = len(labels)
        return JoinResult(scored.iloc[0:0].assign(outcome=pd.Series(dtype=float)), counts)
    scored = scored.assign(entity_value=scored[entity_key].astype(str))
    by_id = labels[labels["request_id"].notna()]
    by_time = labels[labels["request_id"].isna()]
    joined_id = by_id[["request_id", "entity_value", "label"]].merge(scored, on=["request_id", "entity_value"])
    joined_time, before = _join_by_time(scored, by_time, tolerance)
    frame = pd.concat([joined_id, joined_time], ignore_index=True).rename(
        columns={"label_x": "outcome", "label_y": "label"}
    )
    predicted = scored[["request_id", "entity_value"]].drop_duplicates()
    matched_by_id = len(by_id.merge(predicted, on=["request_id", "entity_value"]))
    counts["matched"] = matched_by_id + (int(joined_time["event_key"].nunique()) if len(joined_time) else 0)
    counts["before_prediction"] = before
    counts["unknown"] = len(labels) - counts["matched"] - before
    return JoinResult(frame.drop(columns=["entity_value", "event_key"], errors="ignore"), counts)


def _join_by_time(scored: pd.DataFrame, labels: pd.DataFrame, tolerance: timedelta) -> tuple[pd.DataFrame, int]:
    """Each label to the request of its entity nearest its event time within ``tolerance`` (all that request's
    rows); the count of labels earlier than every prediction of their entity."""
    if labels.empty:
        empty = scored.iloc[0:0].rename(columns={"label": "label_y"})
        return empty.assign(label_x=pd.Series(dtype=float), event_key=pd.Series(dtype=int)), 0
    requests = (
        scored[["entity_value", "request_id", "timestamp"]]
        .drop_duplicates(["entity_value", "request_id"])
        .sort_values("timestamp", kind="stable")
    )
    wanted = labels.assign(event_key=np.arange(len(labels))).sort_values("event_ts", kind="stable")
    nearest = pd.merge_asof(
        wanted,
        requests,
        left_on="event_ts",
        right_on="timestamp",
        by="entity_value",
        direction="nearest",
        tolerance=pd.Timedelta(tolerance),
    )
    found = nearest[nearest["request_id_y"].notna()]
    first = requests.groupby("entity_value")["timestamp"].min()
    unmatched = nearest[nearest["request_id_y"].isna()]
    earliest = unmatched["entity_value"].map(first)
    before = int((earliest.notna() & (unmatched["event_ts"] < earliest - pd.Timedelta(tolerance))).sum())
    keys = found[["event_key", "entity_value", "request_id_y", "label"]].rename(
        columns={"request_id_y": "request_id", "label": "label_x"}
    )
    joined = keys.merge(scored, on=["request_id", "entity_value"]).rename(columns={"label": "label_y"})
    return joined, before


def online_quality(joined: pd.DataFrame, task: str, threshold: float) -> list[dict[str, Any]]:
    """Quality per (model version, arm) of labelled predictions: ``labelled`` and the task's metrics."""
    results: list[dict[str, Any]] = []
    if joined.empty:
        return results
    for (version, arm), rows in joined.groupby(["model_version", "arm"], sort=True):
        scores = rows["score"].to_numpy(dtype=float)
        outcomes = rows["outcome"].to_numpy(dtype=float)
        predicted = rows["label"].to_numpy(dtype=float, na_value=np.nan)
        if task == "regression":
            metrics = regression_quality(scores, outcomes)
        elif task == "binary":
            metrics = binary_quality(scores, outcomes, threshold)
        else:
            metrics = multiclass_quality(scores, predicted, outcomes)
        results.append({"model_version": str(version), "arm": str(arm), "labelled": len(rows), "metrics": metrics})
    return results


def binary_quality(probability: np.ndarray, outcome: np.ndarray, threshold: float) -> dict[str, float | None]:
    clipped = np.clip(probability, 1e-15, 1 - 1e-15)
    positive = outcome == 1
    predicted = probability >= threshold
    true_positive = float((predicted & positive).sum())
    return {
        "log_loss": float(-np.mean(np.where(positive, np.log(clipped), np.log1p(-clipped)))),
        "brier": float(np.mean((probability - outcome) ** 2)),
        "roc_auc": roc_auc(probability, positive),
        "precision": true_positive / predicted.sum() if predicted.any() else None,
        "recall": true_positive / positive.sum() if positive.any() else None,
        "calibration_error": calibration_error(probability, outcome),
        "positive_rate": float(positive.mean()),
    }


def multiclass_quality(
    top_probability: np.ndarray, predicted: np.ndarray, outcome: np.ndarray
) -> dict[str, float | None]:
    correct = (predicted == outcome).astype(float)
    return {
        "accuracy": float(correct.mean()),
        "top_label_brier": float(np.mean((top_probability - correct) ** 2)),
        "calibration_error": calibration_error(top_probability, correct),
    }


def regression_quality(prediction: np.ndarray, outcome: np.ndarray) -> dict[str, float | None]:
    errors = prediction - outcome
    return {"mae": float(np.mean(np.abs(errors))), "rmse": float(math.sqrt(np.mean(errors**2)))}


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float | None:
    """The probability that a random positive outscores a random negative (ties count half); ``None`` with one
    class only."""
    positives, negatives = int(positive.sum()), int((~positive).sum())
    if positives == 0 or negatives == 0:
        return None
    ranks = pd.Series(score).rank(method="average").to_numpy()
    return float((ranks[positive].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def calibration_error(probability: np.ndarray, outcome: np.ndarray) -> float:
    """Expected calibration error over ``CALIBRATION_BINS`` equal-width bins of the probability: the mean gap
    between predicted and observed rates, weighted by how many predictions fall in each bin."""
    bins = np.minimum((probability * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    total = 0.0
    for index in np.unique(bins):
        inside = bins == index
        total += inside.sum() * abs(float(probability[inside].mean()) - float(outcome[inside].mean()))
    return total / len(probability)
