"""Holdout metrics, outputs, plots and importance per task, on small fitted scikit-learn models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlplatform.specs import TASK_METRICS, ModelSpec
from mlplatform.training.evaluate import (
    compute_metrics,
    model_outputs,
    multiclass_metrics,
    permutation_importances,
    prediction_column,
    regression_metrics,
    write_plots,
)


def _spec(task: str) -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": f"m_{task}",
            "task": task,
            "entity": "thing",
            "entity_key": "thing_id",
            "features": {"service": "things"},
            "label": {"source": "labels.parquet", "column": "label"},
            "estimator": {"class_path": "sklearn.linear_model.LogisticRegression"},
        }
    )


def _data(task: str, rows: int = 300) -> tuple[pd.DataFrame, Any]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows), "noise": rng.normal(size=rows)})
    signal = frame["a"] - 0.5 * frame["b"] + rng.normal(scale=0.3, size=rows)
    if task == "binary":
        return frame, (signal > 0).astype("int64").to_numpy()
    if task == "multiclass":
        return frame, np.digitize(signal, [-0.5, 0.5]).astype("int64")
    return frame, (2.0 * signal + 5.0).to_numpy(dtype=np.float64)


def _fitted(task: str) -> tuple[Any, pd.DataFrame, Any]:
    from sklearn.linear_model import LinearRegression, LogisticRegression

    frame, labels = _data(task)
    model = LinearRegression() if task == "regression" else LogisticRegression()
    return model.fit(frame, labels), frame, labels


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_each_task_computes_its_metrics_and_they_are_sane(task: str) -> None:
    model, frame, labels = _fitted(task)
    classes = model.classes_.tolist() if task != "regression" else []
    metrics = compute_metrics(_spec(task), labels, model_outputs(model, frame, task), classes)
    assert set(TASK_METRICS[task]) <= set(metrics)
    assert metrics["holdout_rows"] == len(labels)
    if task == "regression":
        assert metrics["r2"] > 0.9 and 0 < metrics["mae"] <= metrics["rmse"]
    else:
        assert metrics["roc_auc"] > 0.9 and metrics["accuracy"] > 0.7 and metrics["log_loss"] < 0.6


def test_outputs_and_prediction_column_per_task() -> None:
    binary, frame, _ = _fitted("binary")
    scores = model_outputs(binary, frame, "binary")
    np.testing.assert_allclose(scores, binary.predict_proba(frame)[:, 1])
    assert prediction_column(scores, "binary") is scores

    multi, frame, _ = _fitted("multiclass")
    probabilities = model_outputs(multi, frame, "multiclass")
    assert probabilities.shape == (len(frame), 3)
    np.testing.assert_allclose(prediction_column(probabilities, "multiclass"), probabilities.max(axis=1))

    regressor, frame, _ = _fitted("regression")
    np.testing.assert_allclose(
        prediction_column(model_outputs(regressor, frame, "regression"), "regression"), regressor.predict(frame)
    )


def test_binary_outputs_follow_class_one_whatever_the_column_order() -> None:
    from sklearn.dummy import DummyClassifier

    model = DummyClassifier(strategy="prior").fit([[0]] * 4, [1, 1, 1, 0])
    assert model.classes_.tolist() == [0, 1]
    assert model_outputs(model, [[0]], "binary").tolist() == [0.75]


def test_multiclass_metrics_by_hand() -> None:
    labels = np.array([0, 1, 2, 2])
    probabilities = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.1, 0.4]])
    metrics = multiclass_metrics(labels, probabilities, [0, 1, 2])
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["roc_auc"] == pytest.approx(1.0)
    assert metrics["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.7, 0.7, 0.4])))
    assert metrics["f1_macro"] == pytest.approx((2 / 3 + 1.0 + 2 / 3) / 3)


def test_multiclass_with_two_classes_uses_the_binary_auc() -> None:
    labels = np.array([0, 1, 1, 0])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7]])
    assert multiclass_metrics(labels, probabilities, [0, 1])["roc_auc"] == pytest.approx(0.75)


def test_regression_metrics_by_hand() -> None:
    metrics = regression_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 3.0, 6.0]))
    assert metrics["rmse"] == pytest.approx(1.0)
    assert metrics["mae"] == pytest.approx(0.5)
    assert metrics["r2"] == pytest.approx(1 - 4 / 5)


@pytest.mark.parametrize(
    ("task", "files"),
    [
        ("binary", {"roc_curve", "pr_curve", "confusion_matrix", "feature_importance"}),
        ("multiclass", {"confusion_matrix", "feature_importance"}),
        ("regression", {"predicted_vs_actual", "residuals", "feature_importance"}),
    ],
)
def test_plots_per_task(task: str, files: set[str], tmp_path: Path) -> None:
    model, frame, labels = _fitted(task)
    classes = model.classes_.tolist() if task != "regression" else []
    written = write_plots(
        tmp_path, _spec(task), labels, model_outputs(model, frame, task), classes, {"a": 0.3, "b": 0.1, "noise": 0.0}
    )
    assert {path.stem for path in written} == files
    assert all(path.stat().st_size > 1000 for path in written)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_permutation_importance_ranks_the_signal_first_for_every_task(task: str) -> None:
    model, frame, labels = _fitted(task)
    classes = model.classes_.tolist() if task != "regression" else []
    importances = permutation_importances(model, frame, labels, task, classes)
    assert max(importances, key=importances.__getitem__) == "a"
    assert importances["a"] > 0.05 and abs(importances["noise"]) < 0.05


def test_multiclass_importance_sample_keeps_a_rare_class() -> None:
    """A bounded sample keeps one row of every class, so the one-vs-rest AUC stays defined for a class the uniform
    sample missed."""
    model, frame, labels = _fitted("multiclass")
    uniform = np.random.default_rng(0).choice(len(frame), size=40, replace=False)
    labels = labels.copy()
    labels[uniform[labels[uniform] == 2]] = 1  # class 2 only outside the uniform sample
    assert 2 in labels and 2 not in labels[uniform]
    importances = permutation_importances(model, frame, labels, "multiclass", [0, 1, 2], max_rows=40)
    assert all(np.isfinite(value) for value in importances.values())
    assert max(importances, key=importances.__getitem__) == "a"
