"""The training pipeline as four idempotent steps, each a plain function the Airflow DAG calls as one task.

1. ``prepare_training_set``: labelled events in the data window -> point-in-time features from Feast -> a
   training set stored with the MLflow run (so a task on another machine or pod can pick it up).
2. ``train_and_evaluate``: time split -> fit -> holdout metrics, plots, reference snapshot, the model itself.
3. ``register_version``: one registry version per run, with lineage tags; alias ``challenger``.
4. ``gate_and_promote``: champion and challenger scored on the same holdout; ``champion`` moves only if the gate
   passes.  Every alias move is recorded in the platform DB.

Each step first checks what an earlier attempt already did (MLflow run found by its run key, stage tags, the
version registered from the run), so an Airflow retry or a re-run of the same DAG run never creates a second
version.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplatform.config import Settings
from mlplatform.registry.lineage import Lineage, lineage_json, model_files_dirty, model_files_hash
from mlplatform.registry.mlflow_registry import (
    CHALLENGER,
    CHAMPION,
    ModelRegistry,
    VersionInfo,
    mlflow_client,
)
from mlplatform.specs import ModelSpec, SpecError, find_model_folder, find_spec
from mlplatform.training import estimators
from mlplatform.training.gate import GateDecision, decide

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

TRAINING_SET_ARTIFACT = "data/training_set.parquet"
HOLDOUT_ARTIFACT = "data/holdout.parquet"
REFERENCE_ARTIFACT = "reference/features.parquet"
MODEL_NAME_IN_RUN = "model"
REFERENCE_ROWS = 10_000
MODEL_REQUIREMENTS = ["scikit-learn", "skops", "numpy", "pandas", "scipy"]
"""What every saved model needs at load time; LightGBM or XGBoost are added when the estimator uses them."""
OPTIONAL_LIBRARIES = {"lightgbm": ("lightgbm",), "xgboost": ("xgboost-cpu", "xgboost")}
"""Estimator libraries by import name, and the distributions that provide them (the CPU-only one on Linux)."""
RUN_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.:+\-/]{1,250}$")


class TrainingDataError(ValueError):
    """The labelled data or training set is unusable; the message says what and where. Nothing is registered."""


@dataclass(frozen=True)
class TrainingRequest:
    """What to train and why; built by the DAG from its params, or by tests."""

    model: str
    run_key: str
    actor: str
    reason: str = "manual"
    window_days: int | None = None
    window_end: datetime | None = None
    estimator_params: dict[str, Any] = field(default_factory=dict)
    dag_id: str | None = None
    dag_run_id: str | None = None
    promote: bool = True
    """False: the gate is applied and recorded, but the version stays ``challenger`` (to be rolled out)."""

    def __post_init__(self) -> None:
        if not RUN_KEY_PATTERN.match(self.run_key):
            raise ValueError(f"run_key {self.run_key!r} has characters other than letters, digits and _.:+-/")


@dataclass(frozen=True)
class DataWindow:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class TrainingOutcome:
    """The end of one pipeline run, as the CLI and tests see it."""

    run_id: str
    version: str
    promoted: bool
    decision: str
    champion_version: str | None
    metrics: dict[str, float]


# ---------------------------------------------------------------------------------------------------------- step 1


def prepare_training_set(settings: Settings, request: TrainingRequest) -> str:
    """Build the point-in-time training set and store it with a (new or resumed) MLflow run; returns the run id."""
    spec = find_spec(settings.model_roots, request.model)
    client = mlflow_client(settings)
    run_id = open_run(client, spec, request)
    if _stage(client, run_id) is not None:
        return run_id
    labels, window = load_labels(settings, spec, request)
    from mlplatform.features.store import FeatureStoreAdapter

    features = FeatureStoreAdapter(settings)
    entity_frame = labels.rename(columns={spec.label.timestamp_column: "event_timestamp"})
    training_set = features.training_set(entity_frame, spec.features.service)
    model_inputs = [*features.feature_names(spec.features.service), *spec.label.request_columns]
    _check_training_set(training_set, spec, model_inputs)
    lineage = Lineage(
        feature_service=spec.features.service,
        feature_views=lineage_json(features.feature_service_lineage(spec.features.service)),
        data_window_start=window.start.isoformat(),
        data_window_end=window.end.isoformat(),
        row_count=str(len(training_set)),
        data_hash=frame_hash(training_set),
        spec_hash=spec.fingerprint(),
        git_commit=git_commit(),
        dag_id=request.dag_id or "",
        dag_run_id=request.dag_run_id or "",
        reason=request.reason,
        model_files_hash=model_files_hash(folder := find_model_folder(settings.model_roots, spec.name)),
        model_files_dirty=model_files_dirty(folder),
    )
    client.log_param(run_id, "window_days", (window.end - window.start).days)
    record_training_set(client, run_id, training_set, model_inputs, lineage)
    return run_id


def record_training_set(
    client: MlflowClient, run_id: str, training_set: pd.DataFrame, model_inputs: list[str], lineage: Lineage
) -> None:
    """Store a training set with its run (artifact, lineage, input columns) and mark the run ``prepared``: what
    ``train_and_evaluate`` starts from, wherever the training set came from."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / Path(TRAINING_SET_ARTIFACT).name
        training_set.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), str(Path(TRAINING_SET_ARTIFACT).parent))
    for key, value in lineage.run_tags().items():
        client.set_tag(run_id, key, value)
    client.set_tag(run_id, Lineage.MODEL_INPUTS_TAG, json.dumps(model_inputs))
    client.log_param(run_id, "rows", len(training_set))
    client.set_tag(run_id, Lineage.STAGE_TAG, "prepared")


def load_labels(settings: Settings, spec: ModelSpec, request: TrainingRequest) -> tuple[pd.DataFrame, DataWindow]:
    """Labelled events inside the data window, with the columns the spec names (and nothing else)."""
    import pandas as pd
    import pyarrow.parquet as pq

    source = settings.model_data_dir(spec.name) / spec.label.source
    if not source.is_file():
        raise TrainingDataError(f"label source {source} does not exist (spec {spec.name}: label.source)")
    wanted = list(
        dict.fromkeys([spec.entity_key, spec.label.timestamp_column, spec.label.column, *spec.label.request_columns])
    )
    present = _frame_columns(pq.read_schema(source))
    missing = [column for column in wanted if column not in present]
    if missing:
        raise TrainingDataError(
            f"{source}: missing column(s) {', '.join(missing)} named by spec {spec.name}; "
            f"the file has {', '.join(map(str, present))}"
        )
    # Only the named columns: a label table's other columns (ids, free text) can cost more memory than the join.
    frame = pd.read_parquet(source, columns=wanted)
    timestamps = pd.to_datetime(frame[spec.label.timestamp_column], utc=True)
    end = request.window_end or (timestamps.max() + pd.Timedelta(microseconds=1)).to_pydatetime()
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    start = end - timedelta(days=request.window_days or spec.data.window_days)
    inside = (timestamps >= start) & (timestamps < end)
    if not inside.any():
        raise TrainingDataError(
            f"{source}: no labelled rows in the data window [{start.isoformat()}, {end.isoformat()}); "
            f"the data spans [{timestamps.min().isoformat()}, {timestamps.max().isoformat()}]"
        )
    selected = frame.loc[inside, wanted].copy()
    selected[spec.label.timestamp_column] = timestamps[inside]
    selected[spec.label.column] = checked_labels(selected[spec.label.column], spec, f"{source}: ")
    return selected.reset_index(drop=True), DataWindow(start=start, end=end)


def _frame_columns(schema: Any) -> list[str]:
    """The columns ``pandas.read_parquet`` gives for a file of ``schema``: a pandas index stored in it (its entity
    key, say) comes back as the index, not a column."""
    index = {name for name in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(name, str)}
    return [name for name in schema.names if name not in index]


def checked_labels(values: pd.Series, spec: ModelSpec, where: str = "") -> pd.Series:
    """The label column as the task needs it, or a ``TrainingDataError`` saying what is wrong and the fix.

    binary: 0 and 1 (booleans count), int64.  multiclass: integer class codes 0..K-1, every code present, K >= 2
    (two classes are allowed: a multi-class model whose data has two classes still trains), int64; the codes are
    what the model predicts and what ``mlplatform.classes`` lists.  regression: finite numbers, float64.  Either
    way at least two distinct values: with one class (or one value) there is nothing to learn.
    """
    import numpy as np
    import pandas as pd

    column = f"{where}label column {spec.label.column!r}"
    if values.isna().any():
        raise TrainingDataError(
            f"{column} has {int(values.isna().sum())} empty value(s) in the data window; drop or fill those rows"
        )
    if pd.api.types.is_bool_dtype(values):
        values = values.astype("int64")
    if not pd.api.types.is_numeric_dtype(values):
        examples = ", ".join(repr(value) for value in values.drop_duplicates().head(3).tolist())
        kind = "numbers" if spec.task == "regression" else "integer class codes"
        raise TrainingDataError(
            f"{column} must hold {kind} for task {spec.task}; it holds {values.dtype} values such as {examples}"
        )
    if spec.task == "regression":
        numbers = values.astype("float64")
        if not np.isfinite(numbers.to_numpy()).all():
            raise TrainingDataError(f"{column} holds infinite values; drop those rows")
        if numbers.nunique() < 2:
            raise TrainingDataError(f"{column} has one value ({numbers.iloc[0]}) in the data window: nothing to learn")
        return numbers
    if not (values == values.round()).all():
        raise TrainingDataError(f"{column} must hold integer class codes for task {spec.task}; it holds fractions")
    codes = values.astype("int64")
    found = sorted(int(code) for code in codes.unique())
    if len(found) < 2:
        raise TrainingDataError(
            f"{column} has one class ({found[0]}) in the data window; a classifier needs at least two"
        )
    if spec.task == "binary" and found != [0, 1]:
        raise TrainingDataError(
            f"{column} must hold only 0 and 1 for task binary (found {_listed(found)}); "
            "for more classes use task: multiclass"
        )
    if found != list(range(len(found))):
        missing = sorted(set(range(max(found) + 1)) - set(found))
        raise TrainingDataError(
            f"{column} must hold class codes 0..K-1 with every code present for task multiclass "
            f"(found {_listed(found)}{'; missing ' + _listed(missing) if missing and found[0] >= 0 else ''}); "
            "recode the classes as 0, 1, 2, ..."
        )
    return codes


def _listed(values: list[int], limit: int = 10) -> str:
    shown = ", ".join(map(str, values[:limit]))
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def _check_training_set(training_set: pd.DataFrame, spec: ModelSpec, model_inputs: list[str]) -> None:
    missing = [column for column in [*model_inputs, spec.label.column] if column not in training_set.columns]
    if missing:
        raise TrainingDataError(
            f"training set from feature service {spec.features.service!r} lacks column(s) {', '.join(missing)}"
        )
    if training_set.empty:
        raise TrainingDataError(f"training set for {spec.name} is empty")


# ---------------------------------------------------------------------------------------------------------- step 2


def train_and_evaluate(settings: Settings, request: TrainingRequest, run_id: str) -> dict[str, float]:
    """Fit the spec's estimator on the earlier part of the window and evaluate on the later part."""
    from threadpoolctl import threadpool_limits

    spec = find_spec(settings.model_roots, request.model)
    # Build the estimator first: threadpoolctl only limits OpenMP/BLAS runtimes that are already loaded.
    estimator = configured_estimator(spec, request.estimator_params)
    with threadpool_limits(limits=settings.training.threads):
        return _train_and_evaluate(settings, request, spec, estimator, run_id)


def configured_estimator(spec: ModelSpec, overrides: dict[str, Any]) -> Any:
    """The spec's unfitted estimator with a request's parameter overrides (``step__param`` reaches into a
    Pipeline's steps), checked against the spec's task."""
    estimator = estimators.build_estimator(spec.estimator)
    try:
        estimator.set_params(**overrides)
    except ValueError as error:
        raise SpecError(f"estimator {spec.estimator.class_path} rejected the parameter override(s): {error}") from None
    estimators.check_task(estimator, spec.task, spec.estimator.final_class_path)
    return estimator


def _train_and_evaluate(
    settings: Settings, request: TrainingRequest, spec: ModelSpec, estimator: Any, run_id: str
) -> dict[str, float]:
    import mlflow

    from mlplatform.training.evaluate import compute_metrics, model_outputs, permutation_importances, write_plots
    from mlplatform.training.split import time_split

    client = mlflow_client(settings)
    if _stage(client, run_id) == "trained":
        return dict(client.get_run(run_id).data.metrics)
    run = client.get_run(run_id)
    model_inputs: list[str] = json.loads(run.data.tags[Lineage.MODEL_INPUTS_TAG])
    training_set = _read_parquet_artifact(settings, run_id, TRAINING_SET_ARTIFACT)
    training_set[spec.label.column] = checked_labels(training_set[spec.label.column], spec, "training set: ")
    all_classes = sorted(training_set[spec.label.column].unique().tolist()) if spec.is_classifier else None
    split = time_split(
        training_set, "event_timestamp", spec.label.column, spec.split.holdout_fraction, classes=all_classes
    )
    train_inputs, holdout_inputs = split.train[model_inputs], split.holdout[model_inputs]
    train_labels = split.train[spec.label.column].to_numpy()
    holdout_labels = split.holdout[spec.label.column].to_numpy()
    started = time.perf_counter()
    estimator.fit(train_inputs, train_labels)
    fit_seconds = time.perf_counter() - started
    classes: list[int] = estimator.classes_.tolist() if spec.is_classifier else []
    outputs = model_outputs(estimator, holdout_inputs, spec.task)
    metrics = compute_metrics(spec, holdout_labels, outputs, classes)
    metrics["train_rows"] = float(len(split.train))
    metrics["fit_seconds"] = fit_seconds
    importances = permutation_importances(estimator, holdout_inputs, holdout_labels, spec.task, classes)

    mlflow.set_tracking_uri(settings.mlflow.resolved_tracking_uri())
    with mlflow.start_run(run_id=run_id), tempfile.TemporaryDirectory() as scratch:
        params = {**spec.estimator.params, **request.estimator_params}
        mlflow.log_params({f"estimator.{key}": value for key, value in params.items()})
        mlflow.log_params({"estimator.class": spec.estimator.class_path, "split.cutoff": split.cutoff.isoformat()})
        mlflow.log_dict(spec.estimator.model_dump(mode="json", exclude_none=True), "estimator/spec.json")
        mlflow.log_metrics(metrics)
        mlflow.log_dict(importances, "evaluation/feature_importance.json")
        plots = write_plots(Path(scratch) / "plots", spec, holdout_labels, outputs, classes, importances)
        for plot in plots:
            mlflow.log_artifact(str(plot), "plots")
        holdout_path = Path(scratch) / Path(HOLDOUT_ARTIFACT).name
        split.holdout.to_parquet(holdout_path, index=False)
        mlflow.log_artifact(str(holdout_path), str(Path(HOLDOUT_ARTIFACT).parent))
        reference_path = Path(scratch) / Path(REFERENCE_ARTIFACT).name
        _reference_snapshot(split.train, model_inputs, estimator, spec).to_parquet(reference_path, index=False)
        mlflow.log_artifact(str(reference_path), str(Path(REFERENCE_ARTIFACT).parent))
        _log_model(estimator, spec, train_inputs)
    for key, value in Lineage.model_tags(spec.task, classes if spec.is_classifier else None).items():
        client.set_tag(run_id, key, value)
    client.set_tag(run_id, Lineage.STAGE_TAG, "trained")
    return metrics


def _reference_snapshot(train: pd.DataFrame, model_inputs: list[str], estimator: Any, spec: ModelSpec) -> pd.DataFrame:
    """What the model saw in training (bounded sample, with its predictions): the baseline drift checks compare to.

    ``prediction`` is the number the prediction log records as ``score`` (``evaluate.prediction_column``): P(class 1)
    for binary, the predicted class's probability for multiclass, the predicted value for regression.
    """
    from mlplatform.training.evaluate import model_outputs, prediction_column

    sample = train.sample(n=min(REFERENCE_ROWS, len(train)), random_state=0).sort_values("event_timestamp")
    snapshot = sample[["event_timestamp", *model_inputs, spec.label.column]].copy()
    snapshot["prediction"] = prediction_column(model_outputs(estimator, sample[model_inputs], spec.task), spec.task)
    return snapshot.reset_index(drop=True)


def _log_model(estimator: Any, spec: ModelSpec, train_inputs: pd.DataFrame) -> None:
    """Log the model in skops format, admitting on load exactly the types the platform's trust policy checked."""
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature

    from mlplatform.training.evaluate import model_outputs

    example = train_inputs.head(5)
    outputs: Any = model_outputs(estimator, example, spec.task)
    if spec.task == "multiclass":
        outputs = pd.DataFrame(outputs, columns=[str(label) for label in estimator.classes_])
    mlflow.sklearn.log_model(
        estimator,
        name=MODEL_NAME_IN_RUN,
        signature=infer_signature(example, outputs),
        input_example=example,
        serialization_format="skops",
        skops_trusted_types=estimators.trusted_types_of(estimators.dumps(estimator)),
        pip_requirements=pinned_requirements(model_requirements(spec)),
    )


def model_requirements(spec: ModelSpec) -> list[str]:
    """Distributions a saved model of this spec needs at load time."""
    needed = list(MODEL_REQUIREMENTS)
    for library, distributions in OPTIONAL_LIBRARIES.items():
        if any(path.startswith(f"{library}.") for path in spec.estimator.class_paths()):
            needed.append(next(name for name in distributions if _installed(name)))
    return needed


def _installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def pinned_requirements(distributions: list[str]) -> list[str]:
    """Exact versions of what the model needs at load time, from this environment (explicit, never inferred)."""
    return [f"{name}=={metadata.version(name)}" for name in distributions]


# ---------------------------------------------------------------------------------------------------------- step 3


def register_version(settings: Settings, request: TrainingRequest, run_id: str) -> str:
    """Register the run's model (once) with its lineage, and point ``challenger`` at it; returns the version."""
    registry = ModelRegistry(settings)
    client = registry.client
    run = client.get_run(run_id)
    if run.data.tags.get(Lineage.STAGE_TAG) != "trained":
        raise TrainingDataError(
            f"run {run_id} has no trained model yet (stage {run.data.tags.get(Lineage.STAGE_TAG)!r})"
        )
    model_id = _logged_model_id(client, run_id)
    tags = Lineage.version_tags(run.data.tags)
    tags[Lineage.RUN_KEY_TAG] = request.run_key
    tags.update({key: run.data.tags[key] for key in Lineage.MODEL_TAGS if key in run.data.tags})
    version, created = registry.register(request.model, run_id, model_id, tags)
    if created or registry.alias_holder(request.model, CHALLENGER) is None:
        registry.move_alias(
            request.model, CHALLENGER, version.version, actor=request.actor, reason=f"trained: {request.reason}"
        )
    return version.version


def _logged_model_id(client: MlflowClient, run_id: str) -> str:
    """The id of the model logged by ``train_and_evaluate`` (MLflow 3 logged models live outside the run)."""
    experiment_id = client.get_run(run_id).info.experiment_id
    models = client.search_logged_models(experiment_ids=[experiment_id], filter_string=f"source_run_id = '{run_id}'")
    if not models:
        raise TrainingDataError(f"run {run_id} logged no model")
    return str(models[0].model_id)


# ---------------------------------------------------------------------------------------------------------- step 4


def gate_and_promote(settings: Settings, request: TrainingRequest, version: str) -> GateDecision:
    """Score champion and challenger on the challenger's holdout; move ``champion`` only if the gate passes."""
    spec = find_spec(settings.model_roots, request.model)
    registry = ModelRegistry(settings)
    challenger = registry.client.get_model_version(request.model, version)
    recorded = (challenger.tags or {}).get(Lineage.GATE_TAG)
    if recorded is not None:
        return GateDecision(**json.loads(recorded))
    run_id = str(challenger.run_id)
    challenger_metrics = dict(registry.client.get_run(run_id).data.metrics)
    champion = registry.alias_holder(request.model, CHAMPION)
    champion_metrics = None
    if champion is not None and champion.version != version:
        champion_metrics = _score_on_holdout(settings, spec, champion, run_id)
    decision = decide(
        spec.gates,
        spec.primary_metric,
        challenger_metrics,
        champion_metrics,
        champion.version if champion is not None and champion.version != version else None,
    )
    if champion is not None and champion.version == version:
        decision = GateDecision(passed=True, reasons=[f"v{version} is already the champion"])
    elif decision.passed and request.promote:
        registry.move_alias(request.model, CHAMPION, version, actor=request.actor, reason=decision.summary)
    elif decision.passed:
        kept = "not promoted: the run was asked to leave it challenger (promote=false); a rollout decides"
        decision = replace(decision, reasons=[*decision.reasons, kept])
    registry.set_version_tags(request.model, version, {Lineage.GATE_TAG: json.dumps(asdict(decision))})
    return decision


def _score_on_holdout(settings: Settings, spec: ModelSpec, champion: VersionInfo, run_id: str) -> dict[str, float]:
    """The champion's metrics on the challenger's holdout, using the inputs its own run names.

    The champion is loaded as a model server loads it (skops under the trust policy, never unpickled).  A champion
    that cannot be judged on this holdout (other inputs, another task, a class it never learned) gets no metrics,
    and the gate then refuses to replace it on evidence it does not have.
    """
    from threadpoolctl import threadpool_limits

    from mlplatform.training.evaluate import compute_metrics, model_outputs

    holdout = _read_parquet_artifact(settings, run_id, HOLDOUT_ARTIFACT)
    champion_run = mlflow_client(settings).get_run(str(champion.run_id))
    champion_inputs: list[str] = json.loads(champion_run.data.tags[Lineage.MODEL_INPUTS_TAG])
    if any(name not in holdout.columns for name in champion_inputs):
        return {}
    if Lineage.task_of(champion.tags) != spec.task:
        return {}
    labels = checked_labels(holdout[spec.label.column], spec, "holdout: ").to_numpy()
    model = load_version(settings, spec.name, champion.version)
    classes: list[int] = model.classes_.tolist() if spec.is_classifier else []
    if spec.is_classifier and not set(labels.tolist()) <= set(classes):
        return {}
    with threadpool_limits(limits=settings.training.threads):
        outputs = model_outputs(model, holdout[champion_inputs], spec.task)
    return compute_metrics(spec, labels, outputs, classes)


def load_version(settings: Settings, model: str, version: str) -> Any:
    """A registered version's estimator, downloaded and loaded under the trust policy (as model servers do)."""
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="mlp-model-") as scratch:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=mlflow_client(settings).get_model_version_download_uri(model, version),
            tracking_uri=settings.mlflow.resolved_tracking_uri(),
            dst_path=scratch,
        )
        return estimators.load_estimator(Path(local))


# ---------------------------------------------------------------------------------------------------------- helpers


def run_all(settings: Settings, request: TrainingRequest) -> TrainingOutcome:
    """All four steps in one process (tests, notebooks); the DAG runs the same steps as separate tasks."""
    run_id = prepare_training_set(settings, request)
    metrics = train_and_evaluate(settings, request, run_id)
    version = register_version(settings, request, run_id)
    decision = gate_and_promote(settings, request, version)
    champion = ModelRegistry(settings).alias_holder(request.model, CHAMPION)
    return TrainingOutcome(
        run_id=run_id,
        version=version,
        promoted=champion is not None and champion.version == version,
        decision=decision.summary,
        champion_version=champion.version if champion else None,
        metrics=metrics,
    )


def open_run(client: MlflowClient, spec: ModelSpec, request: TrainingRequest) -> str:
    """The run of this request's run key, created (in the model's experiment) the first time."""
    experiment = client.get_experiment_by_name(spec.name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(spec.name)
    found = client.search_runs([experiment_id], filter_string=f"tags.`{Lineage.RUN_KEY_TAG}` = '{request.run_key}'")
    if found:
        return str(found[0].info.run_id)
    run = client.create_run(
        experiment_id,
        run_name=request.run_key.replace("/", "-")[:200],
        tags={Lineage.RUN_KEY_TAG: request.run_key, Lineage.ACTOR_TAG: request.actor, Lineage.MODEL_TAG: spec.name},
    )
    return str(run.info.run_id)


def _stage(client: MlflowClient, run_id: str) -> str | None:
    return client.get_run(run_id).data.tags.get(Lineage.STAGE_TAG)


def _read_parquet_artifact(settings: Settings, run_id: str, artifact_path: str) -> pd.DataFrame:
    """A parquet file stored with a run, read into memory (the download is removed afterwards)."""
    import mlflow.artifacts
    import pandas as pd

    with tempfile.TemporaryDirectory(prefix="mlp-artifact-") as scratch:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id,
            artifact_path=artifact_path,
            tracking_uri=settings.mlflow.resolved_tracking_uri(),
            dst_path=scratch,
        )
        return pd.read_parquet(local)


def frame_hash(frame: pd.DataFrame) -> str:
    """Content hash of a data frame (row order included), short enough for a tag."""
    import pandas as pd

    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(row_hashes.tobytes()).hexdigest()[:16]


def git_commit() -> str:
    """The commit the code runs from; images set MLP_GIT_COMMIT because they carry no .git."""
    if commit := os.environ.get("MLP_GIT_COMMIT"):
        return commit
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return completed.stdout.strip()
