"""Holdout metrics per task and the pictures a data scientist looks at before trusting a model.

What a model outputs depends on its task (``model_outputs``): binary classifiers the probability of class 1,
multi-class classifiers one probability per class (columns in the order of ``classes_``), regressors the predicted
value.  Metrics, plots and the permutation importance's scoring are chosen from the same task, so the gate compares
like with like.  The metric names are the spec's (``mlplatform.specs.TASK_METRICS``) plus descriptive extras
(``holdout_rows``, the binary operating point); a metric in ``LOWER_IS_BETTER`` is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from mlplatform.specs import ModelSpec

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Labels = npt.NDArray[Any]
"""Holdout labels: int64 class codes for classification, float64 values for regression."""

IMPORTANCE_SCORING = {"binary": "roc_auc", "multiclass": "roc_auc_ovr", "regression": "neg_root_mean_squared_error"}
"""What permutation importance measures per task (a drop in the score the gate usually compares by)."""
IMPORTANCE_AXIS = {
    "binary": "drop in ROC AUC when shuffled",
    "multiclass": "drop in ROC AUC (one-vs-rest, macro) when shuffled",
    "regression": "increase in RMSE when shuffled",
}


def model_outputs(estimator: Any, inputs: Any, task: str) -> FloatArray:
    """What the task judges: P(class 1) for binary, the (rows, classes) probability matrix for multiclass, the
    predicted value for regression (``estimators.check_task`` has made sure the estimator gives them)."""
    if task == "regression":
        return np.asarray(estimator.predict(inputs), dtype=np.float64)
    probabilities = np.asarray(estimator.predict_proba(inputs), dtype=np.float64)
    if task == "binary":
        return probabilities[:, list(estimator.classes_).index(1)]
    return probabilities


def prediction_column(outputs: FloatArray, task: str) -> FloatArray:
    """One number per row, the quantity drift checks compare with the prediction log's ``score``: P(class 1) for
    binary, the predicted class's probability for multiclass, the predicted value for regression."""
    return outputs.max(axis=1) if task == "multiclass" else outputs


def compute_metrics(spec: ModelSpec, labels: Labels, outputs: FloatArray, classes: Sequence[int]) -> dict[str, float]:
    """The task's metrics on a holdout; ``classes`` are the estimator's (the columns of a multiclass ``outputs``)."""
    if spec.task == "binary":
        return binary_metrics(labels, outputs, spec.serving.threshold, spec.metrics.precision_target)
    if spec.task == "multiclass":
        return multiclass_metrics(labels, outputs, classes)
    return regression_metrics(labels, outputs)


def recall_at_precision(labels: IntArray, scores: FloatArray, precision_target: float) -> tuple[float, float]:
    """Highest recall reachable with precision at or above the target, and the score threshold that gives it.

    Returns ``(0.0, 1.0)`` when no threshold reaches the target precision.
    """
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(labels, scores)
    # precision/recall have one more entry than thresholds (the point at recall 0); drop it.
    reachable = precision[:-1] >= precision_target
    if not reachable.any():
        return 0.0, 1.0
    best = int(np.argmax(np.where(reachable, recall[:-1], -1.0)))
    return float(recall[best]), float(thresholds[best])


def binary_metrics(labels: Labels, scores: FloatArray, threshold: float, precision_target: float) -> dict[str, float]:
    """Ranking quality, the operating point at the serving threshold, and calibration (log loss)."""
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        f1_score,
        log_loss,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    predicted = (scores >= threshold).astype(int)
    recall_target, threshold_target = recall_at_precision(labels, scores, precision_target)
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
        "recall_at_precision": recall_target,
        "threshold_at_precision": threshold_target,
        "accuracy": float(accuracy_score(labels, predicted)),
        "log_loss": float(log_loss(labels, scores, labels=[0, 1])),
        "precision_at_threshold": float(precision_score(labels, predicted, zero_division=0)),
        "recall_at_threshold": float(recall_score(labels, predicted, zero_division=0)),
        "f1_at_threshold": float(f1_score(labels, predicted, zero_division=0)),
        "holdout_positive_rate": float(labels.mean()),
        "holdout_rows": float(len(labels)),
    }


def multiclass_metrics(labels: Labels, probabilities: FloatArray, classes: Sequence[int]) -> dict[str, float]:
    """One-vs-rest ROC AUC (macro), accuracy and macro F1 of the most probable class, log loss.

    Every holdout label must be one of ``classes`` (the time split guarantees it for the model it trained).  With
    two classes the ROC AUC is the binary one on the second class's probability (what one-vs-rest reduces to).
    """
    from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

    known = list(classes)
    predicted = np.asarray(known)[probabilities.argmax(axis=1)]
    if len(known) == 2:
        roc_auc = roc_auc_score(labels == known[1], probabilities[:, 1])
    else:
        roc_auc = roc_auc_score(labels, probabilities, multi_class="ovr", average="macro", labels=known)
    return {
        "roc_auc": float(roc_auc),
        "accuracy": float(accuracy_score(labels, predicted)),
        "f1_macro": float(f1_score(labels, predicted, average="macro", labels=known, zero_division=0)),
        "log_loss": float(log_loss(labels, probabilities, labels=known)),
        "holdout_rows": float(len(labels)),
    }


def regression_metrics(labels: Labels, predictions: FloatArray) -> dict[str, float]:
    """Root mean squared error, mean absolute error and R² of the predicted values."""
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    return {
        "rmse": float(root_mean_squared_error(labels, predictions)),
        "mae": float(mean_absolute_error(labels, predictions)),
        "r2": float(r2_score(labels, predictions)),
        "holdout_rows": float(len(labels)),
    }


def write_plots(
    out_dir: Path,
    spec: ModelSpec,
    labels: Labels,
    outputs: FloatArray,
    classes: Sequence[int],
    importances: dict[str, float],
) -> list[Path]:
    """PNG files: binary ROC and PR curves and the confusion matrix at the serving threshold; multiclass the
    confusion matrix of the most probable class; regression predicted against actual and the residuals; every task
    the permutation importance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(figure: Any, name: str) -> None:
        path = out_dir / name
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)

    if spec.task == "binary":
        _binary_plots(save, labels, outputs, spec.serving.threshold)
    elif spec.task == "multiclass":
        _multiclass_plots(save, labels, outputs, classes)
    else:
        _regression_plots(save, labels, outputs)

    ranked = sorted(importances.items(), key=lambda item: item[1])
    figure, axis = plt.subplots(figsize=(6, 0.35 * max(len(ranked), 4) + 1))
    axis.barh([name for name, _ in ranked], [value for _, value in ranked], color="#3b6ea8")
    axis.set_xlabel(IMPORTANCE_AXIS[spec.task])
    axis.set_title("Permutation feature importance (holdout)")
    save(figure, "feature_importance.png")
    return written


def _binary_plots(save: Callable[[Any, str], None], labels: Labels, scores: FloatArray, threshold: float) -> None:
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    figure, axis = plt.subplots(figsize=(5, 4.5))
    RocCurveDisplay.from_predictions(labels, scores, ax=axis, name="holdout")
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    axis.set_title("ROC curve (holdout)")
    save(figure, "roc_curve.png")

    figure, axis = plt.subplots(figsize=(5, 4.5))
    PrecisionRecallDisplay.from_predictions(labels, scores, ax=axis, name="holdout")
    axis.set_title("Precision-recall curve (holdout)")
    save(figure, "pr_curve.png")

    figure, axis = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay.from_predictions(labels, (scores >= threshold).astype(int), ax=axis, colorbar=False)
    axis.set_title(f"Confusion matrix at threshold {threshold:.2f}")
    save(figure, "confusion_matrix.png")


def _multiclass_plots(
    save: Callable[[Any, str], None], labels: Labels, probabilities: FloatArray, classes: Sequence[int]
) -> None:
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    predicted = np.asarray(list(classes))[probabilities.argmax(axis=1)]
    size = 3.5 + 0.4 * len(classes)
    figure, axis = plt.subplots(figsize=(size, size * 0.9))
    ConfusionMatrixDisplay.from_predictions(labels, predicted, labels=list(classes), ax=axis, colorbar=False)
    axis.set_title("Confusion matrix, most probable class (holdout)")
    save(figure, "confusion_matrix.png")


def _regression_plots(save: Callable[[Any, str], None], labels: Labels, predictions: FloatArray) -> None:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 4.5))
    axis.scatter(labels, predictions, s=6, alpha=0.5, color="#3b6ea8")
    low, high = float(min(labels.min(), predictions.min())), float(max(labels.max(), predictions.max()))
    axis.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1)
    axis.set_xlabel("actual")
    axis.set_ylabel("predicted")
    axis.set_title("Predicted against actual (holdout)")
    save(figure, "predicted_vs_actual.png")

    figure, axis = plt.subplots(figsize=(5, 4))
    axis.hist(predictions - labels, bins=40, color="#3b6ea8")
    axis.set_xlabel("predicted - actual")
    axis.set_title("Residuals (holdout)")
    save(figure, "residuals.png")


def permutation_importances(
    model: Any,
    features: Any,
    labels: Labels,
    task: str,
    classes: Sequence[int] = (),
    seed: int = 0,
    max_rows: int = 5000,
) -> dict[str, float]:
    """Model-agnostic importance (HistGradientBoosting has no ``feature_importances_``), on a bounded sample,
    scored as the task is judged: ROC AUC (one-vs-rest for more than two ``classes``) or RMSE."""
    from sklearn.inspection import permutation_importance

    if len(features) > max_rows:
        sample = np.random.default_rng(seed).choice(len(features), size=max_rows, replace=False)
        if task != "regression":
            # A uniform sample can miss a rare class, whose one-vs-rest AUC is then undefined: keep one row of each.
            missing = np.setdiff1d(np.unique(labels), labels[sample])
            sample = np.concatenate([sample, [np.flatnonzero(labels == code)[0] for code in missing]]).astype(int)
        features, labels = features.iloc[sample], labels[sample]
    scoring = IMPORTANCE_SCORING[task]
    if task == "multiclass" and len(classes) <= 2:
        scoring = IMPORTANCE_SCORING["binary"]  # one-vs-rest of two classes is the binary AUC
    result = permutation_importance(model, features, labels, scoring=scoring, n_repeats=3, random_state=seed)
    return {str(name): float(value) for name, value in zip(features.columns, result.importances_mean, strict=True)}
