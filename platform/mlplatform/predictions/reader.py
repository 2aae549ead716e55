"""Reading the prediction log back: what the drift job and the demo loop call."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from mlplatform.predictions.records import SAMPLE_COLUMNS, WindowSample, records_frame
from mlplatform.predictions.sinks import SAMPLE_SEED, open_sink

if TYPE_CHECKING:
    from mlplatform.config import Settings


def read_prediction_log(
    settings: Settings, model_name: str, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Logged predictions of one model with ``start <= timestamp < end``, sorted by time ("off": empty).

    ``timestamp`` is ``datetime64[us, UTC]``, features and ``score`` float64 (missing or non-finite: NaN),
    ``label`` int64; entity columns keep their logged type.  Everything in the window is loaded: for windows of
    unknown size use ``sample_prediction_log``.
    """
    if settings.serving.prediction_log == "off":
        return records_frame([], [], [])
    sink = open_sink(settings)
    try:
        return sink.read(model_name, start, end)
    finally:
        sink.close()


def sample_prediction_log(
    settings: Settings,
    model_name: str,
    start: datetime | None,
    end: datetime | None,
    *,
    features: list[str],
    max_rows: int,
    seed: int = SAMPLE_SEED,
) -> WindowSample:
    """At most ``max_rows`` uniformly drawn rows of one model's window (all of them in a smaller window) with the
    window's counts, sampled where the log lives so memory stays bounded at any window size ("off": empty)."""
    if settings.serving.prediction_log == "off":
        empty = pd.DataFrame({name: [] for name in (*SAMPLE_COLUMNS, *features)})
        return WindowSample(empty, 0, {}, max_rows)
    sink = open_sink(settings)
    try:
        return sink.sample(model_name, start, end, features=features, max_rows=max_rows, seed=seed)
    finally:
        sink.close()
