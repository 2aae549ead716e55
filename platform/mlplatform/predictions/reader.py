"""Reading the prediction log back: what the drift job and the demo loop call."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import pandas as pd

from mlplatform.predictions.records import records_frame
from mlplatform.predictions.sinks import open_sink

if TYPE_CHECKING:
    from mlplatform.config import Settings


def read_prediction_log(
    settings: Settings, model_name: str, start: datetime | None = None, end: datetime | None = None
) -> pd.DataFrame:
    """Logged predictions of one model with ``start <= timestamp < end``, sorted by time ("off": empty).

    ``timestamp`` is ``datetime64[us, UTC]``, features and ``score`` float64 (missing or non-finite: NaN),
    ``label`` int64; entity columns keep their logged type.
    """
    if settings.serving.prediction_log == "off":
        return records_frame([], [], [])
    sink = open_sink(settings)
    try:
        return sink.read(model_name, start, end)
    finally:
        sink.close()
