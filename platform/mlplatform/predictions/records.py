"""Prediction-log records and the frame shape every reader gives back.

Why a package of its own: the model servers write these records and the drift job reads them; keeping the
records, sinks, writer and reader below both ``serving`` and ``monitoring`` lets each import them without
importing the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

BASE_COLUMNS = (
    "request_id",
    "timestamp",
    "model_name",
    "model_version",
    "score",
    "label",
    "arm",
    "shadow",
    "latency_s",
    "error",
)
MAX_ERROR_CHARS = 200
"""How much of an arm's failure a record keeps (the server's log has it whole)."""
CHAMPION_ARM = "champion"
CANDIDATE_ARM = "candidate"
"""The arms of a rollout (``mlplatform.registry.traffic``); a server without a rollout answers with the champion."""
_RESERVED = frozenset(BASE_COLUMNS)


@dataclass(slots=True)
class PredictionRecord:
    """One prediction as the drift job needs it: who was scored, with which inputs, by which model, with what.

    Names of entity keys and features become column names, so they must not collide with each other or with the
    base columns (checked here, on the request path, so a bad record fails loudly instead of poisoning a batch).

    Nothing changes a record once made, yet the class is not frozen: a frozen dataclass sets each field through
    ``object.__setattr__``, which made a record cost 3.5 us to build against 1.3, on the request path, once per
    entity scored.
    """

    request_id: str
    timestamp: datetime
    model_name: str
    model_version: str
    entity: dict[str, Any]
    features: dict[str, float | None]
    score: float | None
    """binary: P(positive class); multiclass: the predicted class's probability; regression: the predicted value
    (the quantity a reference snapshot's ``prediction`` column holds, which the drift check compares it with).
    ``None`` only in a record of a failure (``error``)."""
    label: int | None
    """The predicted class; ``None`` for regression, which predicts no class."""
    arm: str = CHAMPION_ARM
    """Which arm of a rollout scored it: ``champion`` or ``candidate``."""
    shadow: bool = False
    """Scored in shadow only: the candidate's prediction, logged but not answered (the champion's row of the same
    request and entity was the answer).  Drift checks read answered rows only."""
    latency_s: float | None = None
    """Seconds the arm took to fetch features for and score the request's batch: a rollout's latency guardrail."""
    error: str | None = None
    """Why the arm could not score this entity (an estimator's refusal, a failing candidate); such a record has no
    score and counts in a rollout's error guardrail, never in drift or quality."""

    def __post_init__(self) -> None:
        if self.timestamp.tzinfo is None:
            raise ValueError(f"PredictionRecord.timestamp must be timezone-aware (UTC), got {self.timestamp!r}")
        if not _RESERVED.isdisjoint(self.entity) or not _RESERVED.isdisjoint(self.features):
            raise ValueError(f"entity keys and feature names must not be any of {sorted(_RESERVED)}")
        if (self.score is None) != (self.error is not None):
            raise ValueError("a record has a score, or an error saying why it has none, never both or neither")
        if not self.entity.keys().isdisjoint(self.features):
            clash = sorted(self.entity.keys() & self.features.keys())
            raise ValueError(f"names used both as entity key and feature: {clash}")


def records_frame(
    base: list[dict[str, Any]], entities: list[dict[str, Any]], features: list[dict[str, float | None]]
) -> pd.DataFrame:
    """The documented read shape from parallel lists of base values, entity dicts and feature dicts."""
    entity_keys = union_keys(entities)
    feature_names = union_keys(features)
    frame = pd.DataFrame(base, columns=list(BASE_COLUMNS))
    entity_frame = pd.DataFrame(entities, columns=entity_keys, index=frame.index)
    feature_frame = pd.DataFrame(features, columns=feature_names, index=frame.index, dtype="float64")
    return ordered_frame(pd.concat([frame, entity_frame, feature_frame], axis=1), entity_keys, feature_names)


def ordered_frame(frame: pd.DataFrame, entity_keys: list[str], feature_names: list[str]) -> pd.DataFrame:
    """Columns in documented order, stable dtypes, rows sorted by time."""
    entity_keys = [key for key in entity_keys if key in frame.columns]
    feature_names = [name for name in feature_names if name in frame.columns]
    identity, outcome = BASE_COLUMNS[:4], BASE_COLUMNS[4:]  # who was scored, and what came of it
    columns = [*identity, *entity_keys, *feature_names, *outcome]
    for name in ("latency_s", "error"):
        if name not in frame.columns:
            frame[name] = None
    for name, before_rollouts in (("arm", CHAMPION_ARM), ("shadow", False)):
        # Logs written before rollouts have neither column: every row was the champion's answer.
        frame[name] = frame[name].fillna(before_rollouts) if name in frame.columns else before_rollouts
    frame = frame[columns].copy()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).dt.as_unit("us")
    frame["score"] = frame["score"].astype("float64")
    frame["label"] = frame["label"].astype("Int64")  # nullable: regression models predict no class
    frame["arm"] = frame["arm"].astype(str)
    frame["shadow"] = frame["shadow"].astype(bool)
    frame["latency_s"] = frame["latency_s"].astype("float64")
    frame["error"] = frame["error"].astype(object).where(frame["error"].notna(), None)
    for name in feature_names:
        frame[name] = frame[name].astype("float64")
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)


SAMPLE_COLUMNS = ("timestamp", "model_version", "score")
"""What a window sample holds besides the requested features: enough to split scores by version and keep order."""


@dataclass(frozen=True)
class WindowSample:
    """At most ``max_rows`` rows of one model's window, drawn uniformly without replacement, and what the whole
    window held: the drift check needs the counts of the window but only a bounded sample of its values.

    ``frame`` has ``SAMPLE_COLUMNS`` and the requested features (float64, NaN where a row lacks one), sorted by time
    in the order the log returns it; when the window holds no more than ``max_rows`` rows it is all of them.
    """

    frame: pd.DataFrame
    rows: int
    """Rows in the window (all of them, not only the sample)."""
    rows_by_version: dict[str, int]
    """Rows in the window per model version that served them."""
    max_rows: int

    @property
    def sampled(self) -> bool:
        """Whether ``frame`` is a sample rather than the whole window."""
        return len(self.frame) < self.rows


def sample_frame(columns: dict[str, list[Any]], features: list[str]) -> pd.DataFrame:
    """A window sample's frame from column lists, with the dtypes every backend gives back."""
    frame = pd.DataFrame({name: columns[name] for name in (*SAMPLE_COLUMNS, *features)})
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).dt.as_unit("us")
    frame["model_version"] = frame["model_version"].astype(str)
    for name in ("score", *features):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return frame


def union_keys(dicts: Iterable[dict[str, Any]]) -> list[str]:
    """Keys of all dicts, in first-seen order."""
    keys: dict[str, None] = {}
    for item in dicts:
        keys.update(dict.fromkeys(item))
    return list(keys)


def to_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; naive values (sqlite returns them) are taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
