"""``models validate``: everything that would fail a training run in Airflow, checked here in seconds.

In order: the spec loads; every estimator class imports; the feature service exists in the Feast registry; the
label file and its columns exist; the data window holds labelled rows; then the model is fitted, saved, loaded and
scored on a sample of at most ``SAMPLE_ROWS`` labels through the same point-in-time join training uses.  Each
failure is one line naming what is wrong and the fix.  Checks that do not depend on each other all run, so one
validation shows every independent mistake; the sample fit runs only when everything before it passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mlplatform.config import Settings
from mlplatform.specs import SPEC_FILE, ModelSpec, SpecError, find_model_folder, import_class, load_spec

if TYPE_CHECKING:
    import pandas as pd

SAMPLE_ROWS: Final = 300
"""Labels the sample fit uses: enough for every estimator family to fit, few enough to take seconds."""
SCORED_ROWS: Final = 20


@dataclass(frozen=True)
class Check:
    """One check: its name, whether it passed, and what it found (or what is wrong and the fix)."""

    name: str
    passed: bool
    detail: str


@dataclass
class ValidationReport:
    """Every check that ran, in order."""

    model: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[str]:
        return [f"{check.name}: {check.detail}" for check in self.checks if not check.passed]

    def add(self, name: str, passed: bool, detail: str) -> bool:
        self.checks.append(Check(name, passed, detail))
        return passed


class ValidationFailedError(ValueError):
    """A model that would fail in Airflow; the message lists one line per failed check."""

    def __init__(self, report: ValidationReport) -> None:
        super().__init__(f"model {report.model!r} is not ready to train: " + "; ".join(report.failures))
        self.report = report


def label_source(settings: Settings, spec: ModelSpec) -> Path:
    """The label file: in the model's own data directory, else (bundled demo data) the shared data directory."""
    own = settings.model_data_dir(spec.name) / spec.label.source
    return own if own.is_file() else settings.data_dir / spec.label.source


def validate_model(settings: Settings, name: str, progress: Callable[[str], None] | None = None) -> ValidationReport:
    """Run every check on model ``name``; the report says which passed (nothing is registered or written)."""
    say = progress or (lambda _message: None)
    report = ValidationReport(name)
    try:
        spec = load_spec(find_model_folder(settings.model_roots, name) / SPEC_FILE)
    except SpecError as error:
        report.add("spec", False, f"{error} (fix: edit spec.yaml)")
        return report
    report.add("spec", True, f"task {spec.task}, estimator {spec.estimator.final_class_path}")
    say("spec loads")
    ready = _check_estimator(spec, report)
    features = _check_feature_service(settings, spec, report)
    labels = _check_labels(settings, spec, report)
    if not (ready and features is not None and labels is not None):
        return report
    sample = _check_window(spec, labels, report)
    if sample is None:
        return report
    say(f"fitting {spec.estimator.final_class_path} on a sample of {len(sample)} labels")
    _check_sample_fit(settings, spec, sample, features, report)
    return report


def _check_estimator(spec: ModelSpec, report: ValidationReport) -> bool:
    missing = []
    for class_path in spec.estimator.class_paths():
        try:
            import_class(class_path)
        except SpecError:
            missing.append(class_path)
    if missing:
        return report.add(
            "estimator",
            False,
            f"cannot import {', '.join(missing)} (fix: correct estimator.class_path in spec.yaml, e.g. "
            "sklearn.ensemble.RandomForestClassifier)",
        )
    return report.add("estimator", True, f"{len(spec.estimator.class_paths())} class(es) import")


def _check_feature_service(settings: Settings, spec: ModelSpec, report: ValidationReport) -> list[str] | None:
    from mlplatform.features.store import FeatureStoreAdapter

    try:
        names = FeatureStoreAdapter(settings).feature_names(spec.features.service)
    except (ValueError, RuntimeError) as error:
        report.add(
            "features.service",
            False,
            f"{error} (fix: name a service of the model's features.yaml in spec.yaml, then `mlplatform features "
            "apply`)",
        )
        return None
    report.add("features.service", True, f"{spec.features.service}: {len(names)} features")
    return names


def _check_labels(settings: Settings, spec: ModelSpec, report: ValidationReport) -> pd.DataFrame | None:
    import pandas as pd

    source = label_source(settings, spec)
    if not source.is_file():
        report.add(
            "label.source",
            False,
            f"{source} does not exist (fix: put the label table in {settings.model_data_dir(spec.name)} or correct "
            "label.source)",
        )
        return None
    frame = pd.read_parquet(source)
    wanted = [spec.entity_key, spec.label.timestamp_column, spec.label.column, *spec.label.request_columns]
    missing = [column for column in wanted if column not in frame.columns]
    if missing:
        report.add(
            "label.column",
            False,
            f"{source} has no column(s) {', '.join(missing)}; it has {', '.join(map(str, frame.columns))} "
            "(fix: correct label.column / label.timestamp_column / entity_key in spec.yaml)",
        )
        return None
    report.add("label.source", True, f"{source.name}: {len(frame)} rows")
    return frame[wanted]


def _check_window(spec: ModelSpec, labels: pd.DataFrame, report: ValidationReport) -> pd.DataFrame | None:
    """The labels in the spec's data window (ending at the data's end), sampled to ``SAMPLE_ROWS``."""
    import pandas as pd

    times = pd.to_datetime(labels[spec.label.timestamp_column], utc=True)
    end = times.max()
    start = end - timedelta(days=spec.data.window_days)
    inside = labels[times > start]
    if inside.empty:
        report.add(
            "data.window_days",
            False,
            f"no labelled rows in the {spec.data.window_days} days before {end.isoformat()} (fix: raise "
            "data.window_days)",
        )
        return None
    report.add("data.window_days", True, f"{len(inside)} labelled rows in the window")
    sample = inside.sample(n=min(SAMPLE_ROWS, len(inside)), random_state=0) if len(inside) > SAMPLE_ROWS else inside
    frame = sample.rename(columns={spec.label.timestamp_column: "event_timestamp"}).reset_index(drop=True)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    return frame


def _check_sample_fit(
    settings: Settings, spec: ModelSpec, sample: pd.DataFrame, features: list[str], report: ValidationReport
) -> None:
    """Fit, save (skops), load and score on the sample, as training and serving will."""
    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.training.estimators import UntrustedModelError, build_estimator, dumps, loads

    try:
        joined = FeatureStoreAdapter(settings).training_set(sample, spec.features.service)
    except (ValueError, RuntimeError, KeyError) as error:
        report.add("training set", False, f"point-in-time join failed: {error} (fix: check features.yaml's sources)")
        return
    inputs = [*features, *spec.label.request_columns]
    x, y = joined[inputs], _target(spec, joined[spec.label.column])
    if spec.is_classifier and y.nunique() < 2:
        report.add("sample fit", False, "the sample holds one class only (fix: add labelled rows of other classes)")
        return
    step = "build"
    try:
        estimator = build_estimator(spec.estimator)
        step = "fit"
        estimator.fit(x, y)
        step = "save"
        loaded = loads(dumps(estimator))
        step = "score"
        scored = (
            loaded.predict_proba(x.head(SCORED_ROWS)) if spec.is_classifier else loaded.predict(x.head(SCORED_ROWS))
        )
    except UntrustedModelError as error:
        report.add("sample fit", False, f"{step}: {error} (fix: use scikit-learn, LightGBM or XGBoost classes)")
        return
    except Exception as error:  # any estimator error is reported as the one line it is
        report.add("sample fit", False, f"{step} failed: {type(error).__name__}: {error} (fix: estimator in spec.yaml)")
        return
    report.add("sample fit", True, f"fitted on {len(x)} rows, saved, loaded and scored {len(scored)} rows")


def _target(spec: ModelSpec, labels: pd.Series[Any]) -> pd.Series[Any]:
    return labels.astype("float64") if spec.task == "regression" else labels.astype("int64")
