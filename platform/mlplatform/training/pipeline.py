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
from dataclasses import asdict, dataclass, field
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
from mlplatform.specs import ModelSpec, find_model_folder, find_spec
from mlplatform.training.gate import GateDecision, decide

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

TRAINING_SET_ARTIFACT = "data/training_set.parquet"
HOLDOUT_ARTIFACT = "data/holdout.parquet"
REFERENCE_ARTIFACT = "reference/features.parquet"
MODEL_NAME_IN_RUN = "model"
REFERENCE_ROWS = 10_000
# skops refuses to load types outside its allow-list. These are types of models this platform trains itself (the
# histogram gradient boosting trees); a type is added here only after reviewing that it comes from scikit-learn.
SKOPS_TRUSTED_TYPES = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
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
    run_id = _find_or_create_run(client, spec, request)
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
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / Path(TRAINING_SET_ARTIFACT).name
        training_set.to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), str(Path(TRAINING_SET_ARTIFACT).parent))
    for key, value in lineage.run_tags().items():
        client.set_tag(run_id, key, value)
    client.set_tag(run_id, Lineage.MODEL_INPUTS_TAG, json.dumps(model_inputs))
    client.log_param(run_id, "window_days", (window.end - window.start).days)
    client.log_param(run_id, "rows", len(training_set))
    client.set_tag(run_id, Lineage.STAGE_TAG, "prepared")
    return run_id


def load_labels(settings: Settings, spec: ModelSpec, request: TrainingRequest) -> tuple[pd.DataFrame, DataWindow]:
    """Labelled events inside the data window, with the columns the spec names (and nothing else)."""
    import pandas as pd

    source = settings.data_dir / spec.label.source
    if not source.is_file():
        raise TrainingDataError(f"label source {source} does not exist (spec {spec.name}: label.source)")
    frame = pd.read_parquet(source)
    wanted = [spec.entity_key, spec.label.timestamp_column, spec.label.column, *spec.label.request_columns]
    missing = [column for column in wanted if column not in frame.columns]
    if missing:
        raise TrainingDataError(
            f"{source}: missing column(s) {', '.join(missing)} named by spec {spec.name}; "
            f"the file has {', '.join(map(str, frame.columns))}"
        )
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
    labels = selected[spec.label.column]
    if labels.isna().any() or not set(labels.unique().tolist()) <= {0, 1}:
        raise TrainingDataError(f"{source}: label column {spec.label.column!r} must hold only 0 and 1")
    selected[spec.label.column] = labels.astype("int64")
    return selected.reset_index(drop=True), DataWindow(start=start, end=end)


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
    # Import the estimator first: threadpoolctl only limits OpenMP/BLAS runtimes that are already loaded.
    estimator_class = spec.estimator.resolve()
    with threadpool_limits(limits=settings.training.threads):
        return _train_and_evaluate(settings, request, spec, estimator_class, run_id)


def _train_and_evaluate(
    settings: Settings, request: TrainingRequest, spec: ModelSpec, estimator_class: type[Any], run_id: str
) -> dict[str, float]:
    import mlflow
    import numpy as np

    from mlplatform.training.evaluate import compute_metrics, permutation_importances, write_plots
    from mlplatform.training.split import time_split

    client = mlflow_client(settings)
    if _stage(client, run_id) == "trained":
        return dict(client.get_run(run_id).data.metrics)
    run = client.get_run(run_id)
    model_inputs: list[str] = json.loads(run.data.tags[Lineage.MODEL_INPUTS_TAG])
    training_set = _read_parquet_artifact(settings, run_id, TRAINING_SET_ARTIFACT)
    split = time_split(training_set, "event_timestamp", spec.label.column, spec.split.holdout_fraction)
    params = {**spec.estimator.params, **request.estimator_params}
    try:
        estimator = estimator_class(**params)
    except TypeError as error:
        raise TrainingDataError(f"estimator {spec.estimator.class_path} rejected its parameters: {error}") from None
    train_inputs, holdout_inputs = split.train[model_inputs], split.holdout[model_inputs]
    train_labels = split.train[spec.label.column].to_numpy(dtype=np.int64)
    holdout_labels = split.holdout[spec.label.column].to_numpy(dtype=np.int64)
    estimator.fit(train_inputs, train_labels)
    scores = estimator.predict_proba(holdout_inputs)[:, 1].astype(np.float64)
    metrics = compute_metrics(holdout_labels, scores, spec.serving.threshold, spec.metrics.precision_target)
    metrics["train_rows"] = float(len(split.train))
    importances = permutation_importances(estimator, holdout_inputs, holdout_labels)

    mlflow.set_tracking_uri(settings.mlflow.resolved_tracking_uri())
    with mlflow.start_run(run_id=run_id), tempfile.TemporaryDirectory() as scratch:
        mlflow.log_params({f"estimator.{key}": value for key, value in params.items()})
        mlflow.log_params({"estimator.class": spec.estimator.class_path, "split.cutoff": split.cutoff.isoformat()})
        mlflow.log_metrics(metrics)
        mlflow.log_dict(importances, "evaluation/feature_importance.json")
        for plot in write_plots(Path(scratch) / "plots", holdout_labels, scores, spec.serving.threshold, importances):
            mlflow.log_artifact(str(plot), "plots")
        holdout_path = Path(scratch) / Path(HOLDOUT_ARTIFACT).name
        split.holdout.to_parquet(holdout_path, index=False)
        mlflow.log_artifact(str(holdout_path), str(Path(HOLDOUT_ARTIFACT).parent))
        reference_path = Path(scratch) / Path(REFERENCE_ARTIFACT).name
        _reference_snapshot(split.train, model_inputs, estimator, spec).to_parquet(reference_path, index=False)
        mlflow.log_artifact(str(reference_path), str(Path(REFERENCE_ARTIFACT).parent))
        _log_model(estimator, train_inputs)
    client.set_tag(run_id, Lineage.STAGE_TAG, "trained")
    return metrics


def _reference_snapshot(train: pd.DataFrame, model_inputs: list[str], estimator: Any, spec: ModelSpec) -> pd.DataFrame:
    """What the model saw in training (bounded sample, with its scores): the baseline drift checks compare to."""
    sample = train.sample(n=min(REFERENCE_ROWS, len(train)), random_state=0).sort_values("event_timestamp")
    snapshot = sample[["event_timestamp", *model_inputs, spec.label.column]].copy()
    snapshot["prediction"] = estimator.predict_proba(sample[model_inputs])[:, 1]
    return snapshot.reset_index(drop=True)


def _log_model(estimator: Any, train_inputs: pd.DataFrame) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    example = train_inputs.head(5)
    signature = infer_signature(example, estimator.predict_proba(example)[:, 1])
    mlflow.sklearn.log_model(
        estimator,
        name=MODEL_NAME_IN_RUN,
        signature=signature,
        input_example=example,
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
        pip_requirements=pinned_requirements(["scikit-learn", "skops", "numpy", "pandas", "scipy"]),
    )


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
    elif decision.passed:
        registry.move_alias(request.model, CHAMPION, version, actor=request.actor, reason=decision.summary)
    registry.set_version_tags(request.model, version, {Lineage.GATE_TAG: json.dumps(asdict(decision))})
    return decision


def _score_on_holdout(settings: Settings, spec: ModelSpec, champion: VersionInfo, run_id: str) -> dict[str, float]:
    """The champion's metrics on the challenger's holdout, using the inputs its own signature names."""
    import mlflow.sklearn
    import numpy as np

    from mlplatform.training.evaluate import compute_metrics

    mlflow.set_tracking_uri(settings.mlflow.resolved_tracking_uri())
    holdout = _read_parquet_artifact(settings, run_id, HOLDOUT_ARTIFACT)
    champion_run = mlflow_client(settings).get_run(str(champion.run_id))
    champion_inputs: list[str] = json.loads(champion_run.data.tags[Lineage.MODEL_INPUTS_TAG])
    missing = [name for name in champion_inputs if name not in holdout.columns]
    if missing:
        # A champion built on other features cannot be judged on this holdout; the gate then refuses.
        return {}
    from threadpoolctl import threadpool_limits

    model = mlflow.sklearn.load_model(f"models:/{spec.name}/{champion.version}")
    with threadpool_limits(limits=settings.training.threads):
        scores = model.predict_proba(holdout[champion_inputs])[:, 1].astype(np.float64)
    labels = holdout[spec.label.column].to_numpy(dtype=np.int64)
    return compute_metrics(labels, scores, spec.serving.threshold, spec.metrics.precision_target)


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


def _find_or_create_run(client: MlflowClient, spec: ModelSpec, request: TrainingRequest) -> str:
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
