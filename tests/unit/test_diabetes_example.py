"""The bundled diabetes example: tables shaped as a data scientist brings them (pandas' default timestamps)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from mlplatform.demo.diabetes_data import DRIFT_SHIFT, ENTITY_KEY, LABEL, LABEL_DELAY, write_example

END = datetime(2026, 6, 1, tzinfo=UTC)


def test_example_tables_have_the_documented_shape(tmp_path: Path) -> None:
    tables = write_example(tmp_path / "out", end=END, days=90)
    features, labels = pd.read_parquet(tables.features), pd.read_parquet(tables.labels)
    assert len(features) == len(labels) == tables.patients == 442
    assert features[ENTITY_KEY].is_unique and features[ENTITY_KEY].dtype == "int64"
    assert str(features["event_timestamp"].dtype) == "datetime64[ns]", "written as pandas does by default: naive ns"
    assert {"bmi", "bp", "glucose", "ldl"} <= set(features.columns)
    assert labels[LABEL].dtype == "float64"
    joined = labels.merge(features, on=ENTITY_KEY, suffixes=("_label", "_visit"))
    assert ((joined["event_timestamp_label"] - joined["event_timestamp_visit"]) == LABEL_DELAY).all()
    assert features["event_timestamp"].max() < pd.Timestamp(END.replace(tzinfo=None))


def test_the_drifted_table_shifts_the_named_columns_and_is_measured_later(tmp_path: Path) -> None:
    tables = write_example(tmp_path, end=END, days=90)
    features, drifted = pd.read_parquet(tables.features), pd.read_parquet(tables.drifted)
    for column, shift in DRIFT_SHIFT.items():
        assert (drifted[column] - features[column]).round(9).eq(shift).all()
    assert (drifted["event_timestamp"] > features["event_timestamp"].max()).all()
    assert list(drifted.columns) == list(features.columns)
