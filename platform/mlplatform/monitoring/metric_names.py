"""The Prometheus series the platform API exports for the monitoring loop: one declaration, read by everyone.

Alert rules and dashboards query these names before the API exports them (the drift and retrain code lands
separately), so they are declared here, with their type and labels, and ``tests/monitoring`` checks every name a
rule or dashboard uses against the union of the model server's real exposition, the API's real exposition and
this list.  Whoever implements the exporter should build its collectors from ``PLATFORM_API_METRICS`` (or at
least keep the two in step: the test reports which declared names the API does not export yet).

Conventions (Prometheus naming): ``mlplatform_`` prefix, base units (seconds, ratios 0..1), counters end in
``_total``.  ``name`` is the series name as PromQL sees it.

Contract details the rules rely on:

* The per-model gauges carry the result of the **latest** drift check of that model; they are absent until a
  model's first check has finished.
* Counters are initialised to 0 for every model with a spec and every declared label value when the API starts:
  ``increase()`` cannot see a counter's first increment if the series is born with value 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["counter", "gauge", "histogram"]

TRAINING_OUTCOMES = ("promoted", "kept_champion", "failed")
RETRAIN_TRIGGER_RESULTS = ("triggered", "skipped_cooldown", "skipped_in_flight", "duplicate", "failed")


@dataclass(frozen=True)
class MetricSpec:
    """One series family: what a rule may select and which labels it may match on."""

    name: str
    type: MetricType
    labels: tuple[str, ...]
    help: str
    label_values: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def sample_names(self) -> tuple[str, ...]:
        """The series names a scrape shows for this family (a histogram is three series)."""
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


FEATURE_DRIFT_SCORE = MetricSpec(
    "mlplatform_feature_drift_score",
    "gauge",
    ("model", "feature"),
    "Drift score of one feature in the latest drift check, exactly as Evidently reports it (`drift_score`): "
    "for a statistical test (Kolmogorov-Smirnov, chi-squared, Z; Evidently's default below 1000 reference rows) "
    "it is the p-value, lower means more drift; for a distance (normed Wasserstein, Jensen-Shannon, PSI; the "
    "default above 1000 reference rows) it is the distance, higher means more drift. Compare scores of one "
    "feature over time, never across methods; alerts use mlplatform_feature_drifted instead.",
)
FEATURE_DRIFTED = MetricSpec(
    "mlplatform_feature_drifted",
    "gauge",
    ("model", "feature"),
    "1 when the latest drift check found this feature drifted (Evidently's per-column verdict at the test's "
    "threshold), else 0.",
)
DATASET_DRIFT_SHARE = MetricSpec(
    "mlplatform_dataset_drift_share",
    "gauge",
    ("model",),
    "Share of the model's features found drifted by the latest drift check, 0..1.",
)
DATASET_DRIFT = MetricSpec(
    "mlplatform_dataset_drift",
    "gauge",
    ("model",),
    "1 when the latest drift check found the data set drifted (drift share at or above the model's drift-share "
    "threshold, mlplatform.monitoring.thresholds.DATASET_DRIFT_SHARE unless its spec says otherwise), else 0.",
)
DRIFT_CHECK_LAST_SUCCESS = MetricSpec(
    "mlplatform_drift_check_last_success_timestamp_seconds",
    "gauge",
    ("model",),
    "Unix time at which the model's latest successful drift check finished.",
)
DRIFT_CHECK_ROWS = MetricSpec(
    "mlplatform_drift_check_rows",
    "gauge",
    ("model",),
    "Rows of current (served) data the latest drift check compared with the reference.",
)
ONLINE_FEATURES_LAST_MATERIALIZED = MetricSpec(
    "mlplatform_online_features_last_materialized_timestamp_seconds",
    "gauge",
    ("feature_view",),
    "End of the latest interval materialized into the online store for the feature view (Unix time): the online "
    "features are fresh up to this moment.",
)
TRAINING_RUNS = MetricSpec(
    "mlplatform_training_runs_total",
    "counter",
    ("model", "outcome"),
    "Finished training runs by outcome: promoted (the challenger became champion), kept_champion (the gate kept "
    "the champion), failed (the run did not finish).",
    (("outcome", TRAINING_OUTCOMES),),
)
RETRAIN_TRIGGERS = MetricSpec(
    "mlplatform_retrain_triggers_total",
    "counter",
    ("model", "result"),
    "Retrain requests (from drift alerts or people) by result: triggered (an Airflow run started), "
    "skipped_cooldown, skipped_in_flight, duplicate (idempotency key seen before), failed (Airflow refused or was "
    "unreachable).",
    (("result", RETRAIN_TRIGGER_RESULTS),),
)

ONLINE_QUALITY = MetricSpec(
    "mlplatform_online_quality",
    "gauge",
    ("model", "version", "arm", "metric"),
    "Online quality of a model version on a rollout arm (champion, candidate) from its late labels, latest "
    "measurement: log_loss, brier, roc_auc, precision, recall, calibration_error (binary), accuracy, "
    "top_label_brier (multiclass), mae, rmse (regression).",
)
ONLINE_QUALITY_LABELLED = MetricSpec(
    "mlplatform_online_quality_labelled",
    "gauge",
    ("model", "version", "arm"),
    "Labelled predictions behind the latest online quality of a version and arm.",
)

PLATFORM_API_METRICS: tuple[MetricSpec, ...] = (
    FEATURE_DRIFT_SCORE,
    FEATURE_DRIFTED,
    DATASET_DRIFT_SHARE,
    DATASET_DRIFT,
    DRIFT_CHECK_LAST_SUCCESS,
    DRIFT_CHECK_ROWS,
    ONLINE_FEATURES_LAST_MATERIALIZED,
    TRAINING_RUNS,
    RETRAIN_TRIGGERS,
    ONLINE_QUALITY,
    ONLINE_QUALITY_LABELLED,
)
