"""Synthetic tables as a data scientist brings them: an entity feature table and a label table, for onboarding
tests (``models init``, ``models validate``, the upload form)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlplatform.config import Settings, get_settings
from tests.support.environment import REPO_ROOT, with_migrated_db

FEATURE_REPO = REPO_ROOT / "feature_repo"
END = datetime(2026, 3, 1, tzinfo=UTC)
KEY = "machine_id"
LABEL = "failed"


@dataclass(frozen=True)
class Tables:
    features: Path
    labels: Path


def onboarding_settings(state_dir: Path, **overrides: object) -> Settings:
    """Settings over ``state_dir`` (features come from every model folder's features.yaml), platform DB migrated."""
    settings = get_settings(
        state_dir=state_dir,
        bundled_models_dir=state_dir / "bundled",
        feast={"repo_path": FEATURE_REPO, "project": "mlp_onboard"},
        **overrides,
    )
    return with_migrated_db(settings)


def feature_frame(entities: int = 300, features: int = 4, days: int = 30, seed: int = 3) -> pd.DataFrame:
    """One row per entity at a time in the ``days`` before ``END``: numeric features, naive nanosecond stamps."""
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(0, days * 86_400 - 86_400, size=entities)
    stamps = pd.Timestamp(END).tz_localize(None) - pd.to_timedelta(days * 86_400 - offsets, unit="s")
    frame = pd.DataFrame({KEY: np.arange(1, entities + 1, dtype="int64"), "event_timestamp": stamps})
    for index in range(features):
        frame[f"sensor_{index}"] = rng.normal(size=entities)
    frame["running_hours"] = rng.integers(0, 10_000, size=entities)
    return frame


def label_frame(features: pd.DataFrame, task: str = "binary", delay: timedelta = timedelta(hours=6)) -> pd.DataFrame:
    """Labels an hour after each feature row, learnable from the first two sensors."""
    score = features["sensor_0"] + 0.5 * features["sensor_1"]
    labels = {
        "binary": (score > 0).astype("int64"),
        "multiclass": pd.cut(score, [-np.inf, -0.5, 0.5, np.inf], labels=False).astype("int64"),
        "regression": score * 10.0,
    }[task]
    return pd.DataFrame({KEY: features[KEY], "event_timestamp": features["event_timestamp"] + delay, LABEL: labels})


def write_tables(
    folder: Path,
    features: pd.DataFrame | None = None,
    labels: pd.DataFrame | None = None,
    task: str = "binary",
) -> Tables:
    """Write the two tables as parquet files into ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    features = feature_frame() if features is None else features
    labels = label_frame(features, task) if labels is None else labels
    tables = Tables(folder / "machine_readings.parquet", folder / "failures.parquet")
    features.to_parquet(tables.features, index=False)
    labels.to_parquet(tables.labels, index=False)
    return tables
