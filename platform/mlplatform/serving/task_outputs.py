"""What a served estimator computes for the spec's task, and the fastest exact way to compute it.

* **binary**: the probability of the positive class (the second of ``classes_``), the label by
  ``spec.serving.threshold``; binary HistGradientBoosting models score through ``compiled_trees`` (bit-identical).
* **multiclass**: one probability per class in ``classes_`` order, the label is the most probable class and the
  score its probability.
* **regression**: the predicted value (no label).

The estimator is checked against the task once, at load: a classifier served under a regression spec (or the other
way round), a binary spec over a three-class model, or class labels that are not integer codes fail the load with
the reason, so the slot keeps serving the version it had instead of answering with the wrong shape.

Inputs are plain arrays where ``accept_arrays`` allowed it (plain scikit-learn estimators), else DataFrames with the
trained column names (Pipelines and ColumnTransformers select columns by name; LightGBM and XGBoost check names).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from mlplatform.serving.compiled_trees import positive_scorer

if TYPE_CHECKING:
    from mlplatform.specs import Task

log = logging.getLogger(__name__)

Rows = npt.NDArray[np.float64]
"""Input rows (n, inputs) in the trained column order."""


@dataclass(frozen=True)
class Outputs:
    """One batch's outputs, position i for input row i."""

    scores: list[float]
    """binary: P(positive class); multiclass: the predicted class's probability; regression: the predicted value."""
    labels: list[int] | None
    """The predicted class (classifiers); ``None`` for regression."""
    probabilities: list[tuple[float, ...]] | None
    """multiclass: one probability per class, in ``TaskScorer.classes`` order; ``None`` otherwise."""


@dataclass(frozen=True)
class TaskScorer:
    """Turns input rows into the task's outputs; built once per loaded version by ``task_scorer``."""

    task: Task
    classes: tuple[int, ...]
    """The estimator's ``classes_`` as integer codes (empty for regression)."""
    threshold: float
    compiled: bool
    """Whether the compiled trees answer (binary HistGradientBoosting on arrays)."""
    arrays: bool
    """Whether the estimator takes plain arrays (else a DataFrame with the trained column names)."""
    raw: Callable[[Rows], npt.NDArray[np.float64]]
    """binary: (n,) positive probabilities; multiclass: (n, k) probabilities; regression: (n,) values."""

    def __call__(self, rows: Rows) -> Outputs:
        raw = self.raw(rows)
        if self.task == "regression":
            return Outputs([float(value) for value in raw.reshape(-1)], None, None)
        if self.task == "binary":
            negative, positive = self.classes
            scores: list[float] = raw.tolist()
            return Outputs(scores, [positive if score >= self.threshold else negative for score in scores], None)
        best = np.argmax(raw, axis=1)
        return Outputs(
            [float(raw[row, column]) for row, column in enumerate(best)],
            [self.classes[column] for column in best],
            [tuple(float(value) for value in row) for row in raw],
        )

    @property
    def how(self) -> str:
        """How the version scores, for the load log line."""
        if self.compiled:
            return "compiled trees"
        method = "predict" if self.task == "regression" else "predict_proba"
        return f"the estimator's {method} on {'arrays' if self.arrays else 'frames'}"


def task_scorer(
    estimator: Any, task: Task, model_inputs: list[str], arrays: bool, threshold: float, version: str
) -> TaskScorer:
    """The scorer of ``estimator`` for ``task``; raises ``ValueError`` naming the mismatch when it cannot serve it."""
    kind = type(estimator).__name__
    to_input = _array_input if arrays else _frame_input(model_inputs)
    if task == "regression":
        if hasattr(estimator, "classes_"):
            raise ValueError(
                f"version {version}: the spec's task is regression but the model ({kind}) is a classifier with "
                f"classes {_listed(estimator.classes_)}; set task: binary or multiclass, or train a regressor"
            )
        predict = estimator.predict
        return TaskScorer(task, (), threshold, False, arrays, lambda rows: _float(predict(to_input(rows))))
    classes = _class_codes(estimator, task, kind, version)
    proba = estimator.predict_proba
    if task == "binary":
        if len(classes) != 2:
            raise ValueError(
                f"version {version}: the spec's task is binary but the model ({kind}) has {len(classes)} classes "
                f"{list(classes)}; set task: multiclass"
            )
        if arrays:
            positive, compiled = positive_scorer(estimator, version)
            return TaskScorer(task, classes, threshold, compiled, arrays, positive)
        return TaskScorer(task, classes, threshold, False, arrays, lambda rows: _float(proba(to_input(rows)))[:, 1])
    return TaskScorer(task, classes, threshold, False, arrays, lambda rows: _float(proba(to_input(rows))))


def _class_codes(estimator: Any, task: Task, kind: str, version: str) -> tuple[int, ...]:
    """The classifier's classes as integer codes (the data contract's label type for classification)."""
    classes = getattr(estimator, "classes_", None)
    if classes is None or not callable(getattr(estimator, "predict_proba", None)):
        raise ValueError(
            f"version {version}: the spec's task is {task} but the model ({kind}) is not a classifier with "
            "predict_proba and classes_; set task: regression, or train a classifier"
        )
    codes: list[int] = []
    for value in np.asarray(classes).tolist():
        if isinstance(value, bool | int) or (isinstance(value, float) and value.is_integer()):
            codes.append(int(value))
        else:
            raise ValueError(
                f"version {version}: the model's classes {_listed(classes)} are not integer codes; the spec's "
                "label.column must hold integer class codes for classification"
            )
    return tuple(codes)


def _listed(values: Any) -> list[Any]:
    return list(np.asarray(values).tolist())


def _float(values: Any) -> npt.NDArray[np.float64]:
    return np.asarray(values, dtype=np.float64)


def _array_input(rows: Rows) -> Rows:
    return rows


def _frame_input(model_inputs: list[str]) -> Callable[[Rows], Any]:
    def frame(rows: Rows) -> Any:
        import pandas as pd

        return pd.DataFrame(rows, columns=model_inputs)

    return frame
