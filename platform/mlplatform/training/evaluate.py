"""Holdout metrics and the pictures a data scientist looks at before trusting a model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


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


def compute_metrics(
    labels: IntArray, scores: FloatArray, threshold: float, precision_target: float
) -> dict[str, float]:
    """The spec's metrics plus the operating-point figures at the serving threshold."""
    from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score, roc_auc_score

    predicted = (scores >= threshold).astype(int)
    recall_target, threshold_target = recall_at_precision(labels, scores, precision_target)
    return {
        "roc_auc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
        "recall_at_precision": recall_target,
        "threshold_at_precision": threshold_target,
        "precision_at_threshold": float(precision_score(labels, predicted, zero_division=0)),
        "recall_at_threshold": float(recall_score(labels, predicted, zero_division=0)),
        "f1_at_threshold": float(f1_score(labels, predicted, zero_division=0)),
        "holdout_positive_rate": float(labels.mean()),
        "holdout_rows": float(len(labels)),
    }


def write_plots(
    out_dir: Path,
    labels: IntArray,
    scores: FloatArray,
    threshold: float,
    importances: dict[str, float],
) -> list[Path]:
    """ROC and PR curves, confusion matrix at the serving threshold, feature importance; PNG files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(figure: Any, name: str) -> None:
        path = out_dir / name
        figure.tight_layout()
        figure.savefig(path, dpi=110)
        plt.close(figure)
        written.append(path)

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

    ranked = sorted(importances.items(), key=lambda item: item[1])
    figure, axis = plt.subplots(figsize=(6, 0.35 * max(len(ranked), 4) + 1))
    axis.barh([name for name, _ in ranked], [value for _, value in ranked], color="#3b6ea8")
    axis.set_xlabel("drop in ROC AUC when shuffled")
    axis.set_title("Permutation feature importance (holdout)")
    save(figure, "feature_importance.png")
    return written


def permutation_importances(
    model: Any, features: Any, labels: IntArray, seed: int = 0, max_rows: int = 5000
) -> dict[str, float]:
    """Model-agnostic importance (HistGradientBoosting has no ``feature_importances_``), on a bounded sample."""
    from sklearn.inspection import permutation_importance

    if len(features) > max_rows:
        sample = np.random.default_rng(seed).choice(len(features), size=max_rows, replace=False)
        features, labels = features.iloc[sample], labels[sample]
    result = permutation_importance(model, features, labels, scoring="roc_auc", n_repeats=3, random_state=seed)
    return {str(name): float(value) for name, value in zip(features.columns, result.importances_mean, strict=True)}
