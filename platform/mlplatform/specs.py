"""Model specs: one YAML file describes one model end to end.

A spec names the model's Feast feature service, where its labels come from, the estimator and its parameters, how
the data is split in time, which metrics are computed, the promotion gates and the training schedule.  DAGs, the
CLI and the API all act on specs, so adding a model means adding a spec, never editing platform code.

Errors always name the file and the field (``specs/x.yaml: gates.minimums.roc_auc: Input should be ...``) because
specs are written by hand and the person fixing one needs to know where to look.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

MetricName = Literal["roc_auc", "average_precision", "recall_at_precision"]
NAME_PATTERN = r"^[a-z][a-z0-9_]{1,62}$"
# Estimators are imported by dotted path from a spec; limiting the modules keeps a spec from importing arbitrary code.
ALLOWED_ESTIMATOR_MODULES = ("sklearn.",)
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
    source: str = Field(description="Parquet file of labelled events, relative to the data directory.")
    column: str = Field(description="Binary label column (0/1).")
    timestamp_column: str = Field("event_timestamp", description="Event time of each labelled row.")
    request_columns: tuple[str, ...] = Field((), description="Request-time values passed to on-demand features.")

    @field_validator("source")
    @classmethod
    def _relative_inside_data_dir(cls, value: str) -> str:
        path = Path(value)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError("must be a relative path inside the data directory")
        return value


class DataSpec(_Strict):
    window_days: int = Field(60, ge=1, le=3650, description="Days of labelled data, ending at the data's end.")


class EstimatorSpec(_Strict):
    class_path: str = Field(description="Dotted path of a scikit-learn classifier.")
    params: dict[str, Any] = Field(default_factory=dict, description="Constructor arguments.")

    @field_validator("class_path")
    @classmethod
    def _allowed_module(cls, value: str) -> str:
        if not value.startswith(ALLOWED_ESTIMATOR_MODULES) or "." not in value:
            raise ValueError(f"must be a class in one of {', '.join(ALLOWED_ESTIMATOR_MODULES)} (got {value!r})")
        return value

    def resolve(self) -> type[Any]:
        """Import the estimator class; a missing class is a spec error, not an ImportError deep in training."""
        module_name, _, class_name = self.class_path.rpartition(".")
        try:
            return getattr(importlib.import_module(module_name), class_name)  # type: ignore[no-any-return]
        except (ImportError, AttributeError) as error:
            raise SpecError(f"estimator.class_path: cannot import {self.class_path!r}: {error}") from error


class SplitSpec(_Strict):
    holdout_fraction: float = Field(0.2, gt=0.0, lt=0.9, description="Latest share of the window held out.")


class MetricsSpec(_Strict):
    primary: MetricName = Field("roc_auc", description="Metric the champion comparison uses.")
    precision_target: float = Field(0.8, gt=0.0, lt=1.0, description="Precision for recall_at_precision.")


class GatesSpec(_Strict):
    minimums: dict[MetricName, float] = Field(default_factory=dict, description="Absolute floors per metric.")
    min_improvement: float = Field(
        0.0, ge=0.0, le=1.0, description="Primary metric margin by which a challenger must beat the champion."
    )

    @field_validator("minimums")
    @classmethod
    def _between_zero_and_one(cls, value: dict[str, float]) -> dict[str, float]:
        for metric, floor in value.items():
            if not 0.0 <= floor <= 1.0:
                raise ValueError(f"{metric} must be between 0 and 1 (got {floor})")
        return value


class ServingSpec(_Strict):
    threshold: float = Field(0.5, gt=0.0, lt=1.0, description="Probability at or above which the label is 1.")


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
        description="Larger windows are compared on a uniform random sample of this many rows (bounds time and "
        "memory; see docs/performance.md for the error bound).",
    )
    drift_share: float = Field(
        DEFAULT_DRIFT_SHARE,
        gt=0.0,
        le=1.0,
        description="Share of drifted features at or above which the data set counts as drifted.",
    )
    schedule: str | None = Field("@daily", description="Airflow schedule of monitor_<model>; null: manual only.")

    @model_validator(mode="after")
    def _min_rows_below_sample(self) -> MonitoringSpec:
        if self.min_rows > self.max_rows:
            raise ValueError("min_rows must not exceed max_rows")
        return self


class ModelSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="Registered model name; also names the DAGs.")
    description: str = ""
    owner: str = Field("unassigned", description="Team accountable for the model.")
    entity: str = Field(description="Feast entity name.")
    entity_key: str = Field(description="Join key of the entity (e.g. customer_id).")
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

    @model_validator(mode="after")
    def _label_not_a_request_column(self) -> ModelSpec:
        if self.label.column in self.label.request_columns:
            raise ValueError("label.column must not be a request column (that would leak the label)")
        return self

    @property
    def training_dag_id(self) -> str:
        return f"train_{self.name}"

    @property
    def monitoring_dag_id(self) -> str:
        return f"monitor_{self.name}"

    def fingerprint(self) -> str:
        """A short, stable hash of the spec's content, recorded as lineage."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid model spec"]
    for issue in error.errors():
        location = ".".join(str(part) for part in issue["loc"]) or "(top level)"
        lines.append(f"  {path.name}: {location}: {issue['msg']}")
    return "\n".join(lines)


def parse_spec(data: object, path: Path) -> ModelSpec:
    """Validate already-loaded YAML content; ``path`` is only used in messages."""
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a model spec must be a YAML mapping, got {type(data).__name__}")
    try:
        spec = ModelSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_format_validation_error(path, error)) from None
    if path.stem != spec.name:
        raise SpecError(f"{path}: name: {spec.name!r} must match the file name {path.stem!r}")
    return spec


def load_spec(path: Path) -> ModelSpec:
    """Read and validate one spec file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(f"{path}: cannot read model spec: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: not valid YAML: {error}") from None
    return parse_spec(data, path)


def load_specs(specs_dir: Path) -> dict[str, ModelSpec]:
    """All specs in a folder, by name."""
    if not specs_dir.is_dir():
        raise SpecError(f"{specs_dir}: the model spec folder does not exist")
    return {spec.name: spec for spec in (load_spec(path) for path in sorted(specs_dir.glob("*.yaml")))}


def find_spec(specs_dir: Path, name: str) -> ModelSpec:
    """The spec of one model, with a message listing the known models when it is missing."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise SpecError(f"invalid model name {name!r}: use lowercase letters, digits and underscores")
    path = specs_dir / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in specs_dir.glob("*.yaml")) if specs_dir.is_dir() else []
        raise SpecError(f"no model spec {path}; known models: {', '.join(known) or 'none'}")
    return load_spec(path)
