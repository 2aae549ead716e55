"""The second bundled example: scikit-learn's diabetes table as a data scientist would bring it.

Why it exists: the fraud demo has its own generator, on-demand features and a binary label; this one has the shape
most teams start from, which the bring-your-own-model guide, the tests and the onboarding benchmark walk through
with `mlplatform models init`: one feature table keyed by an entity (``patient_id``) with an event timestamp, and a
separate label table (``progression``, a number: regression).  It ships inside scikit-learn, so nothing is
downloaded.

The files are written the way pandas writes them by default (naive nanosecond timestamps), because that is what
people have; `models init` converts them with a notice.  The drifted variant shifts body-mass index, blood
pressure and glucose upwards, as a new clinic's population might, for the loop's ``--drifted`` table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import pandas as pd

FEATURES_FILE: Final = "patient_measurements.parquet"
LABELS_FILE: Final = "progression_labels.parquet"
DRIFTED_FILE: Final = "patient_measurements_drifted.parquet"
ENTITY_KEY: Final = "patient_id"
LABEL: Final = "progression"
COLUMN_NAMES: Final = {
    "s1": "total_cholesterol",
    "s2": "ldl",
    "s3": "hdl",
    "s4": "cholesterol_ratio",
    "s5": "log_triglycerides",
    "s6": "glucose",
}
"""scikit-learn's s1..s6 under the names its documentation gives them."""
LABEL_DELAY: Final = timedelta(days=7)
"""The progression is measured a week after the visit whose measurements predict it."""
DRIFT_SHIFT: Final = {"bmi": 6.0, "bp": 15.0, "glucose": 20.0}


@dataclass(frozen=True)
class ExampleTables:
    """Where the example was written and what it holds."""

    features: Path
    labels: Path
    drifted: Path
    patients: int
    start: datetime
    end: datetime


def measurements(end: datetime, days: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The feature table (one visit per patient, spread over ``days`` before ``end``) and the label table."""
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_diabetes

    table = load_diabetes(as_frame=True, scaled=False).frame.rename(columns=COLUMN_NAMES)
    rng = np.random.default_rng(seed)
    naive_end = pd.Timestamp(end).tz_localize(None) if pd.Timestamp(end).tzinfo else pd.Timestamp(end)
    offsets = rng.uniform(0, days * 86_400 - LABEL_DELAY.total_seconds(), size=len(table))
    visits = naive_end - pd.to_timedelta(days * 86_400 - offsets, unit="s")
    features = table.drop(columns="target")
    features.insert(0, "event_timestamp", visits.astype("datetime64[ns]"))
    features.insert(0, ENTITY_KEY, np.arange(1, len(table) + 1, dtype="int64"))
    labels = pd.DataFrame(
        {
            ENTITY_KEY: features[ENTITY_KEY],
            "event_timestamp": (features["event_timestamp"] + LABEL_DELAY).astype("datetime64[ns]"),
            LABEL: table["target"].astype("float64"),
        }
    )
    return features.sort_values("event_timestamp", ignore_index=True), labels.sort_values(
        "event_timestamp", ignore_index=True
    )


def drifted(features: pd.DataFrame, end: datetime) -> pd.DataFrame:
    """The same patients measured again at ``end`` with shifted distributions: new rows, later timestamps."""
    import pandas as pd

    shifted = features.copy()
    for column, shift in DRIFT_SHIFT.items():
        shifted[column] = shifted[column] + shift
    naive_end = pd.Timestamp(end).tz_localize(None) if pd.Timestamp(end).tzinfo else pd.Timestamp(end)
    shifted["event_timestamp"] = pd.Series(naive_end, index=shifted.index).astype("datetime64[ns]")
    return shifted


def write_example(out_dir: Path, end: datetime, days: int = 180, seed: int = 11) -> ExampleTables:
    """Write the feature, label and drifted tables into ``out_dir`` (created), with pandas' default types."""
    out_dir.mkdir(parents=True, exist_ok=True)
    features, labels = measurements(end, days, seed)
    paths = (out_dir / FEATURES_FILE, out_dir / LABELS_FILE, out_dir / DRIFTED_FILE)
    features.to_parquet(paths[0], index=False)
    labels.to_parquet(paths[1], index=False)
    drifted(features, end).to_parquet(paths[2], index=False)
    return ExampleTables(
        features=paths[0],
        labels=paths[1],
        drifted=paths[2],
        patients=len(features),
        start=features["event_timestamp"].min().floor("s").to_pydatetime(),
        end=labels["event_timestamp"].max().floor("s").to_pydatetime(),
    )
