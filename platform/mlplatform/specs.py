"""Model specs: one YAML file describes one model end to end.

A model is a folder, ``<models root>/<name>/``: ``spec.yaml`` (this schema), ``features.yaml`` and, for on-demand
transformations only, ``features.py``.  A spec names the model's task (binary, multiclass, regression), its Feast
feature service, where its labels come from, the estimator and its parameters, how
the data is split in time, which metrics are computed, the promotion gates and the training schedule.  DAGs, the
CLI and the API all act on specs, so adding a model means adding a spec, never editing platform code.

Errors always name the file and the field (``x/spec.yaml: gates.minimums.roc_auc: Input should be ...``) because
specs are written by hand and the person fixing one needs to know where to look.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

Task = Literal["binary", "multiclass", "regression"]
MetricName = Literal[
    "roc_auc",
    "average_precision",
    "recall_at_precision",
    "accuracy",
    "f1_macro",
    "log_loss",
    "rmse",
    "mae",
    "r2",
]
TASK_METRICS: Final[dict[str, tuple[str, ...]]] = {
    "binary": ("roc_auc", "average_precision", "recall_at_precision", "accuracy", "log_loss"),
    "multiclass": ("roc_auc", "accuracy", "f1_macro", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
"""Metrics each task computes; a spec may gate on and compare by these only."""
DEFAULT_PRIMARY_METRIC: Final[dict[str, str]] = {"binary": "roc_auc", "multiclass": "roc_auc", "regression": "rmse"}
LOWER_IS_BETTER: Final = frozenset({"log_loss", "rmse", "mae"})
"""Error metrics: a challenger beats the champion by being lower; gates set them a maximum, not a minimum."""
UNIT_INTERVAL_METRICS: Final = frozenset(
    {"roc_auc", "average_precision", "recall_at_precision", "accuracy", "f1_macro"}
)
NAME_PATTERN = r"^[a-z][a-z0-9_]{1,62}$"
SPEC_FILE = "spec.yaml"
# Estimators are imported by dotted path from a spec; limiting the modules keeps a spec from importing arbitrary code.
ALLOWED_ESTIMATOR_MODULES = ("sklearn.", "lightgbm.", "xgboost.")
PIPELINE_CLASS = "sklearn.pipeline.Pipeline"
COLUMN_TRANSFORMER_CLASS = "sklearn.compose.ColumnTransformer"
REFUSED_CLASSES: Final = frozenset(
    {"sklearn.preprocessing.FunctionTransformer", "sklearn.preprocessing._function_transformer.FunctionTransformer"}
)
"""Classes whose purpose is to run a callable: a spec cannot name code to run."""
REFUSED_PARAMS: Final = frozenset({"func", "inverse_func", "score_func", "callback", "callbacks", "obj", "feval"})
"""Parameters that take a callable; a spec's parameters are data, never code."""
COLUMN_KEYWORDS: Final = ("passthrough", "drop")
# The drift check's defaults live here, at the bottom, because a spec's defaults are part of its schema;
# ``mlplatform.monitoring.thresholds`` names them among the alert thresholds (rules, runbooks, dashboards).
DEFAULT_DRIFT_SHARE: Final = 0.5
DEFAULT_DRIFT_MIN_ROWS: Final = 100


class SpecError(ValueError):
    """A spec that cannot be used; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    service: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="Feast feature service the model uses.")


class LabelSpec(_Strict):
    source: str = Field(description="Parquet file of labelled events, relative to the model's data directory.")
    column: str = Field(
        description="Label column: 0/1 for binary, class codes 0..K-1 (every one present) for multiclass, a number for "
        "regression."
    )
    timestamp_column: str = Field("event_timestamp", description="Event time of each labelled row.")
    request_columns: tuple[str, ...] = Field((), description="Request-time values passed to on-demand features.")

    @field_validator("source")
    @classmethod
    def _relative_inside_data_dir(cls, value: str) -> str:
        path = Path(value)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError("must be a relative path inside the model's data directory")
        return value


class DataSpec(_Strict):
    window_days: int = Field(60, ge=1, le=36500, description="Days of labelled data, ending at the data's end.")


def _check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters are data: callables cannot be named, nested estimators are checked like top-level ones."""
    for key, value in params.items():
        if key in REFUSED_PARAMS:
            raise ValueError(f"parameter {key!r} takes a callable; a spec cannot name code to run")
        if isinstance(value, dict) and "class_path" in value:
            EstimatorSpec.model_validate(value)
    return params


class EstimatorSpec(_Strict):
    """An estimator by class and parameters; a Pipeline lists its ``steps`` and a ColumnTransformer its
    ``transformers``, each of which is again an estimator spec (so every class passes the same module check).

    A parameter given as a mapping with a ``class_path`` (e.g. a BaggingClassifier's ``estimator``) is built as an
    estimator too.
    """

    class_path: str = Field(
        description="Dotted path of the class: scikit-learn, LightGBM or XGBoost; "
        "'passthrough' or 'drop' inside a ColumnTransformer."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Constructor arguments (plain values).")
    steps: tuple[NamedEstimatorSpec, ...] | None = Field(
        None, description="Pipeline steps in order (class_path sklearn.pipeline.Pipeline); the last one predicts."
    )
    transformers: tuple[ColumnTransformerPart, ...] | None = Field(
        None, description="Parts of a ColumnTransformer (class_path sklearn.compose.ColumnTransformer)."
    )

    @field_validator("class_path")
    @classmethod
    def _allowed_module(cls, value: str) -> str:
        if value in COLUMN_KEYWORDS:
            return value
        if not value.startswith(ALLOWED_ESTIMATOR_MODULES) or "." not in value:
            raise ValueError(f"must be a class in one of {', '.join(ALLOWED_ESTIMATOR_MODULES)} (got {value!r})")
        if value in REFUSED_CLASSES:
            raise ValueError(f"{value} runs a callable; a spec cannot name code to run")
        return value

    @field_validator("params")
    @classmethod
    def _plain_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_params(value)

    @model_validator(mode="after")
    def _composites_have_parts(self) -> EstimatorSpec:
        if self.class_path == PIPELINE_CLASS:
            if not self.steps:
                raise ValueError(f"{PIPELINE_CLASS} needs steps")
            if "steps" in self.params:
                raise ValueError("give a Pipeline's steps as 'steps', not as a parameter")
        elif self.steps is not None:
            raise ValueError(f"steps are only for {PIPELINE_CLASS}")
        if self.class_path == COLUMN_TRANSFORMER_CLASS:
            if not self.transformers:
                raise ValueError(f"{COLUMN_TRANSFORMER_CLASS} needs transformers")
            if "transformers" in self.params:
                raise ValueError("give a ColumnTransformer's parts as 'transformers', not as a parameter")
        elif self.transformers is not None:
            raise ValueError(f"transformers are only for {COLUMN_TRANSFORMER_CLASS}")
        return self

    def class_paths(self) -> list[str]:
        """Every class this estimator builds, nested ones included (what the allowed-modules check covers)."""
        paths = [] if self.class_path in COLUMN_KEYWORDS else [self.class_path]
        for part in (*(self.steps or ()), *(self.transformers or ())):
            paths.extend(part.class_paths())
        for value in self.params.values():
            if isinstance(value, dict) and "class_path" in value:
                paths.extend(EstimatorSpec.model_validate(value).class_paths())
        return paths

    def resolve(self) -> type[Any]:
        """Import the estimator class; a missing class is a spec error, not an ImportError deep in training."""
        return import_class(self.class_path)

    @property
    def final_class_path(self) -> str:
        """The class that predicts: the last step of a Pipeline (recursively), else the class itself."""
        return self.steps[-1].final_class_path if self.steps else self.class_path


class NamedEstimatorSpec(EstimatorSpec):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="Step name (unique in its Pipeline).")


class ColumnTransformerPart(EstimatorSpec):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="Part name (unique in its ColumnTransformer).")
    columns: tuple[str, ...] = Field(min_length=1, description="Input columns this part transforms.")


EstimatorSpec.model_rebuild()
NamedEstimatorSpec.model_rebuild()
ColumnTransformerPart.model_rebuild()


def import_class(class_path: str) -> type[Any]:
    """Import a class a spec names (the module check has already passed)."""
    module_name, _, class_name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), class_name)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as error:
        raise SpecError(f"estimator.class_path: cannot import {class_path!r}: {error}") from error


class SplitSpec(_Strict):
    holdout_fraction: float = Field(0.2, gt=0.0, lt=0.9, description="Latest share of the window held out.")


class MetricsSpec(_Strict):
    primary: MetricName | None = Field(
        None, description="Metric the champion comparison uses. Unset: roc_auc for classification, rmse for regression."
    )
    precision_target: float = Field(0.8, gt=0.0, lt=1.0, description="Precision for recall_at_precision (binary).")


class GatesSpec(_Strict):
    minimums: dict[MetricName, float] = Field(
        default_factory=dict, description="Floors per metric where higher is better (roc_auc, r2, ...)."
    )
    maximums: dict[MetricName, float] = Field(
        default_factory=dict, description="Ceilings per error metric, where lower is better (rmse, mae, log_loss)."
    )
    min_improvement: float = Field(
        0.0, ge=0.0, description="Primary metric margin by which a challenger must beat the champion."
    )

    @field_validator("minimums")
    @classmethod
    def _floors_on_higher_is_better(cls, value: dict[str, float]) -> dict[str, float]:
        for metric, floor in value.items():
            if metric in LOWER_IS_BETTER:
                raise ValueError(f"{metric} is an error metric (lower is better): give it under gates.maximums")
            if metric in UNIT_INTERVAL_METRICS and not 0.0 <= floor <= 1.0:
                raise ValueError(f"{metric} must be between 0 and 1 (got {floor})")
        return value

    @field_validator("maximums")
    @classmethod
    def _ceilings_on_lower_is_better(cls, value: dict[str, float]) -> dict[str, float]:
        for metric, ceiling in value.items():
            if metric not in LOWER_IS_BETTER:
                raise ValueError(f"{metric} is higher-is-better: give it under gates.minimums")
            if ceiling < 0:
                raise ValueError(f"{metric} must not be negative (got {ceiling})")
        return value


class ServingSpec(_Strict):
    threshold: float = Field(
        0.5, gt=0.0, lt=1.0, description="Binary only: probability at or above which the label is 1."
    )


class MonitoringSpec(_Strict):
    """The drift check of the model: which window of served traffic it compares with the training reference."""

    window_hours: int = Field(24, ge=1, le=24 * 90, description="Hours of the prediction log each check reads.")
    min_rows: int = Field(
        DEFAULT_DRIFT_MIN_ROWS,
        ge=10,
        le=10_000_000,
        description="Fewer logged rows in the window: recorded as insufficient_data, never judged as drift.",
    )
    max_rows: int = Field(
        50_000,
        ge=1_000,
        le=10_000_000,
        description="Larger windows are compared on a uniform random sample of this many rows, drawn where the "
        "prediction log lives (bounds time and memory; see docs/performance.md for the error bound). The platform's "
        "monitoring.max_sample_rows setting caps it.",
    )
    drift_share: float = Field(
        DEFAULT_DRIFT_SHARE,
        gt=0.0,
        le=1.0,
        description="Share of drifted features at or above which the data set counts as drifted.",
    )
    schedule: str | None = Field("@daily", description="Airflow schedule of monitor_<model>; null: manual only.")
    labels_schedule: str | None = Field(
        "@hourly",
        description="Airflow schedule of labels_<model>, which ingests the label source's rows of the quality window "
        "(duplicates skipped) and measures the online quality; null: manual only.",
    )
    quality_window_hours: int = Field(
        24 * 7,
        ge=1,
        le=24 * 365,
        description="Hours of predictions whose late labels make the online quality (labels may arrive days after "
        "their predictions: the window must reach back that far).",
    )

    @model_validator(mode="after")
    def _min_rows_below_sample(self) -> MonitoringSpec:
        if self.min_rows > self.max_rows:
            raise ValueError("min_rows must not exceed max_rows")
        return self


RolloutMode = Literal["shadow", "split"]
RolloutMetric = Literal["log_loss", "brier", "top_label_brier", "absolute_error"]
DEFAULT_ROLLOUT_METRIC: Final[dict[str, RolloutMetric]] = {
    "binary": "log_loss",
    "multiclass": "top_label_brier",
    "regression": "absolute_error",
}
TASK_ROLLOUT_METRICS: Final[dict[str, tuple[str, ...]]] = {
    "binary": ("log_loss", "brier"),
    "multiclass": ("top_label_brier",),
    "regression": ("absolute_error",),
}
"""Per-outcome losses a rollout's sequential test can compare, per task (the log holds only the predicted class's
probability of a multiclass model, so its loss is the top label's Brier score)."""
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_DURATION_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(value: object) -> float:
    """A spec's duration (``90s``, ``30m``, ``24h``, ``7d``, or a number of seconds) in seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration like 90s, 30m, 24h or 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match[1]) * _DURATION_UNITS[match[2]]
    else:
        raise ValueError(f"must be a duration like 90s, 30m, 24h or 7d, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"must be a non-negative duration, got {value!r}")
    return seconds


Duration = Annotated[float, BeforeValidator(duration_seconds)]


class GuardrailsSpec(_Strict):
    """Checks that stop a rollout at once, whatever the test says: the candidate fails, slows down or predicts
    differently from the champion (judged once both arms have ``min_requests`` logged entities)."""

    max_error_ratio: float = Field(
        2.0,
        gt=1.0,
        description="Candidate's failure rate over the champion's (each at least 0.1 %) above which it stops.",
    )
    max_latency_ratio: float = Field(
        3.0,
        gt=1.0,
        description="Candidate's p99 scoring time over the champion's (each at least latency_floor_ms) above which "
        "it stops.",
    )
    latency_floor_ms: float = Field(
        10.0,
        ge=0.0,
        le=60_000.0,
        description="p99 scoring times below this count as this in the latency ratio: sub-millisecond scorings "
        "jitter by thread switches (a shadow scores on its own thread), which says nothing about the model.",
    )
    max_prediction_shift: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Largest distance (two-sample Kolmogorov-Smirnov) between the arms' predictions before it stops.",
    )
    min_requests: int = Field(200, ge=10, le=10_000_000, description="Logged entities per arm before guardrails judge.")


class RolloutSpec(_Strict):
    """How a candidate version is rolled out against the champion and decided (docs/rollouts.md).

    ``shadow`` scores every entity with both and answers with the champion; ``split`` answers a ``share`` of
    entities (by a stable hash of the entity key) with the candidate.  An always-valid sequential test on the
    per-outcome ``metric`` promotes the candidate when it is better, or rolls it back when it is worse or credibly
    not better by ``min_effect``, wrong at most ``alpha`` of the time; by ``max_duration`` it ends inconclusive.
    """

    mode: RolloutMode = Field("shadow", description="shadow (both score, the champion answers) or split.")
    share: float = Field(0.1, gt=0.0, le=0.5, description="split: share of entities the candidate answers.")
    split_after: Duration | None = Field(
        None,
        description="shadow only: switch to a split of `share` once guardrails have held this long (then the test "
        "treats the arms as independent from the start, which keeps its error rate).",
    )
    metric: RolloutMetric | None = Field(
        None,
        description="Per-outcome loss the test compares (lower is better). Unset: log_loss for binary, "
        "top_label_brier for multiclass, absolute_error for regression.",
    )
    min_effect: float = Field(
        0.01, gt=0.0, description="Smallest improvement of the mean loss worth shipping, in the metric's units."
    )
    alpha: float = Field(0.05, gt=0.0, le=0.2, description="Rate of wrong decisions the test allows.")
    beta: float = Field(0.2, gt=0.0, le=0.5, description="1 - power at min_effect (what plans the sample size).")
    min_samples: int = Field(
        100, ge=20, le=10_000_000, description="Labelled outcomes per arm before the test decides."
    )
    min_duration: Duration = Field(
        "0s", validate_default=True, description="No decision before this (e.g. a full weekly cycle: 7d)."
    )
    max_duration: Duration = Field(
        "7d",
        validate_default=True,
        gt=0.0,
        description="Undecided by then: the rollout ends inconclusive and waits for a person.",
    )
    evaluation_interval: Duration = Field(
        "1m", validate_default=True, ge=1.0, description="How often the evaluator reads outcomes."
    )
    label_tolerance: Duration = Field(
        "5m",
        validate_default=True,
        description="Labels joined by entity and time match a prediction at most this far from its time.",
    )
    decision: Literal["auto", "manual"] = Field(
        "auto", description="auto: the test's promote or rollback is carried out; manual: a person confirms it."
    )
    guardrails: GuardrailsSpec = Field(default_factory=GuardrailsSpec)

    @model_validator(mode="after")
    def _consistent(self) -> RolloutSpec:
        if self.split_after is not None and self.mode != "shadow":
            raise ValueError("split_after applies to shadow rollouts only")
        if self.min_duration >= self.max_duration:
            raise ValueError("min_duration must be shorter than max_duration")
        return self


OverrideValue = bool | int | float | str


class OverrideBounds(_Strict):
    """What a training request may set one estimator parameter to: a number within ``min``..``max`` (a whole
    number when ``integer``), or one of ``choices``.

    Why the spec says it: libraries declare no upper bound (``max_iter=10**12`` is a valid HistGradientBoosting
    argument that would hold the training slot for days), so only the model's owner can say what is sensible.
    """

    min: float | None = Field(None, description="Smallest number allowed (inclusive).")
    max: float | None = Field(None, description="Largest number allowed (inclusive).")
    integer: bool = Field(False, description="Only whole numbers (e.g. max_iter, max_depth).")
    choices: tuple[OverrideValue, ...] | None = Field(
        None, description="The values allowed, for a parameter that is not a number (e.g. loss, early_stopping)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> OverrideBounds:
        if self.choices is not None:
            if self.min is not None or self.max is not None or self.integer:
                raise ValueError("give either choices or min/max (with integer), not both")
            if not self.choices:
                raise ValueError("choices must list at least one value")
            return self
        if self.min is None or self.max is None:
            raise ValueError("a numeric parameter needs both min and max (or give choices)")
        if not (math.isfinite(self.min) and math.isfinite(self.max)) or self.min > self.max:
            raise ValueError(f"min and max must be finite with min <= max (got {self.min}, {self.max})")
        return self

    def problem(self, value: object) -> str | None:
        """Why ``value`` is not allowed, or None when it is."""
        if self.choices is not None:
            allowed = any(value == choice and type(value) is type(choice) for choice in self.choices)
            return None if allowed else f"must be one of {list(self.choices)}, got {value!r}"
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        if self.integer and not isinstance(value, int):
            return f"must be a whole number, got {value!r}"
        low, high = self.min or 0.0, self.max or 0.0  # both set: _one_kind
        if not low <= value <= high:
            return f"must be between {low:g} and {high:g}, got {value!r}"
        return None


class ModelSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Registered model name; also names the DAGs and its folder.")
    description: str = ""
    owner: str = Field("unassigned", description="Team accountable for the model.")
    task: Task = Field("binary", description="binary or multiclass classification, or regression.")
    entity: str = Field(description="Feast entity name.")
    entity_key: str = Field(description="Join key of the entity (e.g. patient_id).")
    features: FeatureSpec
    label: LabelSpec
    data: DataSpec = Field(default_factory=DataSpec)
    estimator: EstimatorSpec
    split: SplitSpec = Field(default_factory=SplitSpec)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)
    gates: GatesSpec = Field(default_factory=GatesSpec)
    serving: ServingSpec = Field(default_factory=ServingSpec)
    schedule: str | None = Field(None, description="Airflow schedule (cron or preset); null for manual only.")
    monitoring: MonitoringSpec = Field(default_factory=MonitoringSpec)
    rollout: RolloutSpec = Field(default_factory=RolloutSpec)
    overridable: dict[str, OverrideBounds] = Field(
        default_factory=dict,
        description="Estimator parameters a training request may override (names as set_params takes them, "
        "step__param inside a Pipeline), each with what it may be set to; any other override is refused.",
    )

    @model_validator(mode="after")
    def _label_not_a_request_column(self) -> ModelSpec:
        if self.label.column in self.label.request_columns:
            raise ValueError("label.column must not be a request column (that would leak the label)")
        return self

    @model_validator(mode="after")
    def _metrics_fit_the_task(self) -> ModelSpec:
        computed = TASK_METRICS[self.task]
        named = {
            "metrics.primary": [self.metrics.primary] if self.metrics.primary else [],
            "gates.minimums": list(self.gates.minimums),
            "gates.maximums": list(self.gates.maximums),
        }
        for where, metrics in named.items():
            for metric in metrics:
                if metric not in computed:
                    raise ValueError(
                        f"{where}: {metric} is not computed for task {self.task}; it computes {', '.join(computed)}"
                    )
        return self

    @model_validator(mode="after")
    def _rollout_metric_fits_the_task(self) -> ModelSpec:
        metric = self.rollout.metric
        if metric is not None and metric not in TASK_ROLLOUT_METRICS[self.task]:
            allowed = ", ".join(TASK_ROLLOUT_METRICS[self.task])
            raise ValueError(f"rollout.metric: {metric} does not fit task {self.task}; use one of {allowed}")
        return self

    @property
    def rollout_metric(self) -> str:
        """The per-outcome loss a rollout compares (the spec's, else the task's default)."""
        return self.rollout.metric or DEFAULT_ROLLOUT_METRIC[self.task]

    def override_problems(self, overrides: dict[str, Any]) -> dict[str, str]:
        """What is wrong with a training request's parameter overrides, by parameter (empty when nothing is)."""
        problems = {}
        for key, value in overrides.items():
            bounds = self.overridable.get(key)
            if bounds is None:
                listed = ", ".join(sorted(self.overridable)) or "none"
                problems[key] = (
                    f"not overridable for {self.name} (overridable: {listed}); the model's spec.yaml lists "
                    "what may be overridden under `overridable`, with bounds"
                )
            elif (problem := bounds.problem(value)) is not None:
                problems[key] = problem
        return problems

    @property
    def primary_metric(self) -> str:
        """The metric the champion comparison uses (the spec's, else the task's default)."""
        return self.metrics.primary or DEFAULT_PRIMARY_METRIC[self.task]

    @property
    def is_classifier(self) -> bool:
        return self.task != "regression"

    @property
    def training_dag_id(self) -> str:
        return f"train_{self.name}"

    @property
    def monitoring_dag_id(self) -> str:
        return f"monitor_{self.name}"

    @property
    def labels_dag_id(self) -> str:
        return f"labels_{self.name}"

    def fingerprint(self) -> str:
        """A short, stable hash of the spec's content, recorded as lineage."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def validation_message(path: Path, what: str, error: ValidationError) -> str:
    """A pydantic error as people read it: the file, then one line per field (``spec.yaml: gates.minimums: ...``)."""
    lines = [f"{path}: invalid {what}"]
    for issue in error.errors():
        location = ".".join(str(part) for part in issue["loc"]) or "(top level)"
        lines.append(f"  {path.name}: {location}: {issue['msg']}")
    return "\n".join(lines)


def read_yaml(path: Path, what: str, error_type: type[ValueError]) -> object:
    """A hand-written YAML file's content; unreadable or malformed files raise ``error_type`` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise error_type(f"{path}: cannot read {what}: {error.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise error_type(f"{path}: not valid YAML: {error}") from None


def parse_spec(data: object, path: Path) -> ModelSpec:
    """Validate already-loaded YAML content; ``path`` is only used in messages (its folder names the model)."""
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a model spec must be a YAML mapping, got {type(data).__name__}")
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(validation_message(path, "model spec", error)) from None
    folder = path.parent.name if path.name == SPEC_FILE else path.stem
    if folder != spec.name:
        raise SpecError(f"{path}: name: {spec.name!r} must match the model's folder name {folder!r}")
    return spec


def load_spec(path: Path) -> ModelSpec:
    """Read and validate one spec file."""
    return parse_spec(read_yaml(path, "model spec", SpecError), path)


def model_folders(roots: Sequence[Path]) -> dict[str, Path]:
    """Every model's folder (``<root>/<name>/spec.yaml``) across the roots, by name.

    Roots that do not exist hold no models (the state directory's models folder appears with the first
    ``models init``).  One name in two roots is refused: which one is meant would depend on the order of the roots.
    """
    folders: dict[str, Path] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for spec_path in sorted(root.glob(f"*/{SPEC_FILE}")):
            folder = spec_path.parent
            if folder.name in folders and folders[folder.name] != folder:
                raise SpecError(
                    f"model {folder.name!r} is defined twice: {folders[folder.name]} and {folder}; rename or remove one"
                )
            folders[folder.name] = folder
    return folders


def load_specs(roots: Sequence[Path]) -> dict[str, ModelSpec]:
    """All models' specs across the roots, by name."""
    return {name: load_spec(folder / SPEC_FILE) for name, folder in model_folders(roots).items()}


def find_model_folder(roots: Sequence[Path], name: str) -> Path:
    """The folder of one model, with a message listing the known models when it is missing."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise SpecError(f"invalid model name {name!r}: use lowercase letters, digits and underscores")
    folders = model_folders(roots)
    if name not in folders:
        searched = ", ".join(str(root) for root in roots)
        raise SpecError(
            f"no model {name!r} (searched {searched}); known models: {', '.join(sorted(folders)) or 'none'}"
        )
    return folders[name]


def find_spec(roots: Sequence[Path], name: str) -> ModelSpec:
    """The spec of one model, with a message listing the known models when it is missing."""
    return load_spec(find_model_folder(roots, name) / SPEC_FILE)
