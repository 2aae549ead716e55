"""Time-based train/holdout split: the model is judged on data that comes after everything it learned from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd


class SplitError(ValueError):
    """The data cannot be split into a usable train and holdout part."""


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    holdout: pd.DataFrame
    cutoff: pd.Timestamp


def time_split(
    frame: pd.DataFrame,
    timestamp_column: str,
    label_column: str,
    holdout_fraction: float,
    classes: Sequence[int] | None = (0, 1),
) -> TimeSplit:
    """Rows before the cutoff train, rows at or after it are held out; the cutoff is the time quantile.

    For classification both parts must contain every one of ``classes``: a model cannot learn a class its training
    part lacks (XGBoost refuses to fit), and the holdout metrics the gate relies on are undefined for a class the
    holdout lacks.  For regression (``classes=None``) both parts need rows.
    """
    if frame.empty:
        raise SplitError("cannot split an empty training set")
    ordered = frame.sort_values(timestamp_column, kind="stable").reset_index(drop=True)
    cutoff = pd.Timestamp(ordered[timestamp_column].quantile(1.0 - holdout_fraction))  # type: ignore[arg-type]
    is_holdout = ordered[timestamp_column] >= cutoff
    train, holdout = ordered[~is_holdout], ordered[is_holdout]
    for part_name, part in (("train", train), ("holdout", holdout)):
        where = f"the {part_name} part ({len(part)} rows, split at {cutoff.isoformat()})"
        if classes is None:
            if len(part) == 0:
                raise SplitError(f"{where} is empty; widen the data window or change split.holdout_fraction")
            continue
        present = set(part[label_column].unique().tolist())
        if not set(classes) <= present:
            raise SplitError(
                f"{where} needs every label class {sorted(classes)}, has {sorted(present)}; "
                "widen the data window or change split.holdout_fraction"
            )
    return TimeSplit(train=train.reset_index(drop=True), holdout=holdout.reset_index(drop=True), cutoff=cutoff)
