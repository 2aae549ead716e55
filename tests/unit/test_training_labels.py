"""Labels per task: what training accepts, what it converts, and the message for what it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlplatform.config import Settings, get_settings
from mlplatform.specs import ModelSpec
from mlplatform.training.pipeline import TrainingDataError, TrainingRequest, checked_labels, load_labels


def _spec(task: str) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": "m_labels",
            "task": task,
            "entity": "thing",
            "entity_key": "thing_id",
            "features": {"service": "things"},
            "label": {"source": "labels.parquet", "column": "outcome"},
            "estimator": {"class_path": "sklearn.linear_model.LogisticRegression"},
        }
    )


@pytest.mark.parametrize(
    ("task", "values", "expected", "dtype"),
    [
        ("binary", [0, 1, 1, 0], [0, 1, 1, 0], "int64"),
        ("binary", [True, False, True], [1, 0, 1], "int64"),
        ("binary", [0.0, 1.0], [0, 1], "int64"),
        ("multiclass", [2, 0, 1, 2], [2, 0, 1, 2], "int64"),
        ("multiclass", [1, 0], [1, 0], "int64"),
        ("regression", [1, 2, 5], [1.0, 2.0, 5.0], "float64"),
        ("regression", [0.5, -1.25], [0.5, -1.25], "float64"),
    ],
)
def test_accepted_labels_keep_the_task_dtype(task: str, values: list[Any], expected: list[Any], dtype: str) -> None:
    checked = checked_labels(pd.Series(values), _spec(task), "labels.parquet: ")
    assert checked.tolist() == expected and str(checked.dtype) == dtype


@pytest.mark.parametrize(
    ("task", "values", "message"),
    [
        ("binary", [1, 1, 1], r"labels\.parquet: label column 'outcome' has one class \(1\) in the data window"),
        ("binary", [0, 1, 2], r"must hold only 0 and 1 for task binary \(found 0, 1, 2\); .*task: multiclass"),
        ("binary", ["yes", "no"], r"must hold integer class codes for task binary; it holds object values .*'yes'"),
        ("binary", [0, None, 1], r"has 1 empty value\(s\) in the data window"),
        ("multiclass", [0, 1, 3], r"class codes 0\.\.K-1 .* \(found 0, 1, 3; missing 2\); recode the classes"),
        ("multiclass", [1, 2, 3], r"class codes 0\.\.K-1 .* \(found 1, 2, 3; missing 0\)"),
        ("multiclass", [0.5, 1.0, 2.0], r"must hold integer class codes for task multiclass; it holds fractions"),
        ("multiclass", [4, 4], r"has one class \(4\)"),
        ("regression", [3.0, 3.0], r"has one value \(3\.0\) in the data window: nothing to learn"),
        ("regression", ["1.5", "2"], r"must hold numbers for task regression; it holds object values"),
        ("regression", [1.0, float("inf")], r"holds infinite values"),
    ],
)
def test_refused_labels_name_the_file_column_and_fix(task: str, values: list[Any], message: str) -> None:
    with pytest.raises(TrainingDataError, match=message):
        checked_labels(pd.Series(values), _spec(task), "labels.parquet: ")


def _label_file(tmp_path: Path, frame: pd.DataFrame) -> Settings:
    settings = get_settings(state_dir=tmp_path)
    settings.model_data_dir("m_labels").mkdir(parents=True)
    frame.to_parquet(settings.model_data_dir("m_labels") / "labels.parquet")
    return settings


def _events(**extra: list[Any]) -> pd.DataFrame:
    times = pd.to_datetime(["2026-11-01", "2026-11-02", "2026-11-03"], utc=True)
    return pd.DataFrame({"thing_id": [1, 2, 3], "event_timestamp": times, "outcome": [0, 1, 0], **extra})


def test_only_the_columns_the_spec_names_are_read(tmp_path: Path) -> None:
    settings = _label_file(tmp_path, _events(note=["a long free-text note"] * 3, other_id=[7, 8, 9]))
    labels, _ = load_labels(settings, _spec("binary"), TrainingRequest("m_labels", "k", "pytest"))
    assert labels.columns.tolist() == ["thing_id", "event_timestamp", "outcome"]
    assert labels["outcome"].tolist() == [0, 1, 0]


def test_an_entity_key_stored_as_the_index_is_a_missing_column(tmp_path: Path) -> None:
    """pandas gives an index back as the index: the message names the columns a reader of the file sees."""
    settings = _label_file(tmp_path, _events().set_index("thing_id"))
    with pytest.raises(TrainingDataError) as refused:
        load_labels(settings, _spec("binary"), TrainingRequest("m_labels", "k", "pytest"))
    path = settings.model_data_dir("m_labels") / "labels.parquet"
    assert str(refused.value) == (
        f"{path}: missing column(s) thing_id named by spec m_labels; the file has event_timestamp, outcome"
    )
