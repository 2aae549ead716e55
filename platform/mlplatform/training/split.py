"""Time-based train/holdout split: the model is judged on data that comes after everything it learned from."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


class SplitError(ValueError):
    """The data cannot be split into a usable train and holdout part."""


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    holdout: pd.DataFrame
    cutoff: pd.Timestamp


def time_split(frame: pd.DataFrame, timestamp_column: str, label_column: str, holdout_fraction: float) -> TimeSplit:
    """Rows before the cutoff train, rows at or after it are held out; the cutoff is the time quantile.

    Both parts must contain both classes, otherwise the metrics the gate relies on are undefined.
    """
    if frame.empty:
        raise SplitError("cannot split an empty training set")
    ordered = frame.sort_values(timestamp_column, kind="stable").reset_index(drop=True)
    cutoff = pd.Timestamp(ordered[timestamp_column].quantile(1.0 - holdout_fraction))  # type: ignore[arg-type]
    is_holdout = ordered[timestamp_column] >= cutoff
    train, holdout = ordered[~is_holdout], ordered[is_holdout]
    for part_name, part in (("train", train), ("holdout", holdout)):
        classes = set(part[label_column].unique().tolist())
        if len(part) == 0 or not {0, 1} <= classes:
            raise SplitError(
                f"the {part_name} part ({len(part)} rows, split at {cutoff.isoformat()}) needs both label classes, "
                f"has {sorted(classes)}; widen the data window or change split.holdout_fraction"
            )
    return TimeSplit(train=train.reset_index(drop=True), holdout=holdout.reset_index(drop=True), cutoff=cutoff)
