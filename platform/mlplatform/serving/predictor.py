"""The Predictor both model servers wrap: entity keys in, features from Feast, the champion model, predictions out.

Architecture (one Predictor per server process):

* **The served model is one immutable ``LoadedModel``** (estimator + version + lineage + the Feast feature service
  object), held in a single attribute.  ``predict`` reads that attribute once at its start and uses only that
  object, so a request in flight finishes on the model it started with.  No lock sits on the request path.
* **A background poller thread** asks the registry every ``settings.serving.poll_interval_s`` which version holds
  the alias.  When it changes, the new version is downloaded, loaded, checked against its feature service and
  cached *completely* before the attribute is replaced in one assignment (atomic in CPython): the hot swap.
* **Lineage decides the features**: the feature service comes from the version's ``mlplatform.feature_service``
  tag and the exact input column order from its run's ``mlplatform.model_inputs`` tag, so a model is always fed
  the features it was trained on, even if the spec has since moved to another service.
* **Last good model on disk** (``settings.serving_dir/models/<name>``: the MLflow model directory plus
  ``current.json`` with version and lineage).  A server (re)started while MLflow is down serves the cached model,
  logs a warning and sets ``mlplatform_serving_model_from_cache`` to 1 until the registry answers again.
* **One online-store call per request** for the whole batch; request-time values (``spec.label.request_columns``)
  come from each entity and go to Feast too (on-demand features use them).
* **Unknown entities are rejected** per row: a row for which *every* feature of the service's stored (batch)
  feature views is missing gets a per-row error and no prediction (the rest of the batch is still scored).
  Scoring such a row would only score the request-time values against a model trained on customers with
  history, which is silently wrong; the caller is better placed to decide (e.g. a rules fallback).
* **Every scored entity becomes a ``PredictionRecord``** handed to the prediction log, which queues and never
  blocks (a full queue drops records and counts them).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplatform.config import Settings
from mlplatform.registry.lineage import Lineage
from mlplatform.serving.compiled_trees import Scorer, positive_scorer
from mlplatform.serving.metrics import ServingMetrics
from mlplatform.specs import ModelSpec, find_spec

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlplatform.features.online_reader import OnlineFeatureReader
    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.predictions.writer import PredictionLog

log = logging.getLogger(__name__)

CACHE_MANIFEST = "current.json"
REGISTRY_CHECK_TIMEOUT_S = 3.0


# ------------------------------------------------------------------------------------------------------- errors


class ServingError(Exception):
    """A request that cannot be answered; ``status`` is the HTTP status both servers return."""

    status = 500
    outcome = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequestError(ServingError):
    """The request body is malformed; the message names the field (``entities[2].amount``)."""

    status = 422
    outcome = "invalid"


class BatchTooLargeError(ServingError):
    """More entities than ``settings.serving.max_batch_size``."""

    status = 413
    outcome = "too_large"


class ModelUnavailableError(ServingError):
    """No model is loaded (yet); the message says why (registry down, no alias, load failure)."""

    status = 503
    outcome = "unavailable"


class FeatureStoreUnavailableError(ServingError):
    """The online store could not be read; retrying later may work."""

    status = 503
    outcome = "unavailable"


# ------------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class EntityPrediction:
    """The score of one entity; ``index`` is its position in the request."""

    index: int
    entity: dict[str, Any]
    probability: float
    label: int


@dataclass(frozen=True)
class RowError:
    """Why one entity got no prediction."""

    index: int
    entity: dict[str, Any]
    error: str


@dataclass(frozen=True)
class PredictionResult:
    """What one request returns: predictions and per-row errors, both indexed by request position."""

    model: str
    version: str
    request_id: str
    predictions: list[EntityPrediction]
    errors: list[RowError]
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.predictions) + len(self.errors)


@dataclass(frozen=True)
class LoadedModel:
    """One servable model version: immutable, swapped as a whole."""

    name: str
    version: str
    run_id: str | None
    estimator: Any
    feature_service: str
    model_inputs: list[str]
    service: Any
    """The Feast ``FeatureService`` object, resolved once so requests skip the registry lookup."""
    stored_features: frozenset[str]
    """Features of batch (materialised) views: all missing means the online store does not know the entity."""
    from_cache: bool = False
    array_inputs: bool = False
    """Whether the estimator takes a plain array (column names checked once at load, see ``accept_arrays``)."""
    scorer: Scorer | None = None
    """Positive-class probabilities of array rows (compiled trees where exact, see ``compiled_trees``)."""
    reader: OnlineFeatureReader | None = None
    """The service's online lookup planned once (``None``: the service needs Feast's general path)."""


# ------------------------------------------------------------------------------------------------------- validation


def parse_request_body(raw: bytes, field: str, header_id: str | None) -> tuple[Any, str | None]:
    """The entity list and request id of a JSON body ``{field: [...], "request_id": "optional"}``, as both
    servers take it (``instances`` on KServe v1, ``entities`` on BentoML); the id falls back to the
    ``x-request-id`` header.  The entities themselves are checked by ``validate_entities``."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidRequestError(f"body: not valid JSON ({error})") from None
    if not isinstance(body, dict):
        raise InvalidRequestError(f"body: must be a JSON object with an {field!r} list, got {type(body).__name__}")
    if field not in body:
        raise InvalidRequestError(f"{field}: required (a list of entity objects)")
    request_id = body.get("request_id") or header_id
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequestError(f"request_id: must be a string, got {type(request_id).__name__}")
    return body[field], request_id


def response_body(result: PredictionResult, entity_key: str) -> dict[str, Any]:
    """The JSON answer of both servers' entity API (KServe v1, BentoML): the counterpart of
    ``parse_request_body``."""
    return {
        "model": result.model,
        "version": result.version,
        "request_id": result.request_id,
        "predictions": [
            {entity_key: item.entity[entity_key], "probability": item.probability, "label": item.label}
            for item in result.predictions
        ],
        "errors": [
            {"index": row.index, entity_key: row.entity[entity_key], "error": row.error} for row in result.errors
        ],
    }


def validate_entities(
    entities: object, entity_key: str, request_columns: Sequence[str], max_batch_size: int, field: str = "entities"
) -> list[dict[str, Any]]:
    """Check the request's entities and return normalised rows (``{key: int, column: float}``).

    Whole-request checks (rather than per-row errors) because a malformed row is a client bug, not data the
    platform lacks: the client gets a 422 naming the first bad field and fixes its code.
    """
    if not isinstance(entities, list):
        raise InvalidRequestError(f"{field}: must be a list of objects, got {type(entities).__name__}")
    if not entities:
        raise InvalidRequestError(f"{field}: must contain at least one entity")
    if len(entities) > max_batch_size:
        raise BatchTooLargeError(
            f"{field}: {len(entities)} entities exceed the limit of {max_batch_size} per request "
            "(settings: serving.max_batch_size); split the batch"
        )
    return [
        _validate_entity(f"{field}[{index}]", entity, entity_key, request_columns)
        for index, entity in enumerate(entities)
    ]


def _validate_entity(where: str, entity: object, entity_key: str, request_columns: Sequence[str]) -> dict[str, Any]:
    if not isinstance(entity, dict):
        raise InvalidRequestError(f"{where}: must be an object, got {type(entity).__name__}")
    key = entity.get(entity_key)
    if key is None:
        raise InvalidRequestError(f"{where}.{entity_key}: required (the entity key)")
    if isinstance(key, bool) or not isinstance(key, int):
        raise InvalidRequestError(f"{where}.{entity_key}: must be an integer, got {type(key).__name__} {key!r}")
    row: dict[str, Any] = {entity_key: key}
    for column in request_columns:
        value = entity.get(column)
        if value is None:
            raise InvalidRequestError(f"{where}.{column}: required (a request-time value the model needs)")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequestError(f"{where}.{column}: must be a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(value):
            raise InvalidRequestError(f"{where}.{column}: must be a finite number, got {value!r}")
        row[column] = float(value)
    return row


def unknown_rows(features: dict[str, list[Any]], stored_features: frozenset[str], size: int) -> list[int]:
    """Indexes of rows for which every stored feature is missing (``None`` or NaN): entities Feast does not know."""
    columns = [features[name] for name in stored_features if name in features]
    if not columns:
        return []
    return [index for index in range(size) if all(_missing(column[index]) for column in columns)]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def input_matrix(
    model_inputs: Sequence[str], features: dict[str, list[Any]], rows: Sequence[dict[str, Any]], indexes: list[int]
) -> list[list[float]]:
    """Model input rows in the trained column order: Feast features first, request values from the entity."""
    matrix: list[list[float]] = []
    for index in indexes:
        values: list[float] = []
        for name in model_inputs:
            value = features[name][index] if name in features else rows[index].get(name)
            values.append(math.nan if value is None else float(value))
        matrix.append(values)
    return matrix


# ------------------------------------------------------------------------------------------------------- the cache


class ModelCache:
    """The last good model of one name on local disk: ``<dir>/v<version>/`` (MLflow model) + ``current.json``."""

    def __init__(self, root: Path, name: str) -> None:
        self.dir = root / "models" / name

    def store(self, source: Path, manifest: dict[str, Any]) -> Path:
        """Copy a downloaded model in and point the manifest at it; older versions are removed afterwards."""
        self.dir.mkdir(parents=True, exist_ok=True)
        target = self.dir / f"v{manifest['version']}"
        if not target.exists():
            staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.dir))
            shutil.copytree(source, staging, dirs_exist_ok=True)
            staging.replace(target)
        manifest_tmp = self.dir / f".{CACHE_MANIFEST}.tmp"
        manifest_tmp.write_text(json.dumps({**manifest, "dir": target.name}, indent=2))
        manifest_tmp.replace(self.dir / CACHE_MANIFEST)
        for stale in self.dir.iterdir():
            if stale.is_dir() and stale != target:
                shutil.rmtree(stale, ignore_errors=True)
        return target

    def load_manifest(self) -> tuple[dict[str, Any], Path] | None:
        """The cached manifest and model directory, or ``None`` when nothing (complete) is cached."""
        path = self.dir / CACHE_MANIFEST
        if not path.is_file():
            return None
        manifest: dict[str, Any] = json.loads(path.read_text())
        model_dir = self.dir / str(manifest.get("dir", ""))
        return (manifest, model_dir) if model_dir.is_dir() else None


# ------------------------------------------------------------------------------------------------------- predictor


@dataclass(frozen=True)
class _AliasTarget:
    version: str
    run_id: str | None
    tags: dict[str, str]


class Predictor:
    """Serves ``models:/<name>@<settings.serving.alias>``; see the module docstring for the design."""

    def __init__(
        self,
        settings: Settings,
        model_name: str,
        metrics: ServingMetrics | None = None,
        *,
        prediction_log: bool = True,
        spec: ModelSpec | None = None,
    ) -> None:
        self.settings = settings
        self.name = model_name
        self.alias = settings.serving.alias
        self.spec = spec or find_spec(settings.specs_dir, model_name)
        self.metrics = metrics or ServingMetrics()
        self._series = self.metrics.model_series(model_name)
        self.cache = ModelCache(settings.serving_dir, model_name)
        self._use_log = prediction_log and settings.serving.prediction_log != "off"
        self._log: PredictionLog | None = None
        self._model: LoadedModel | None = None
        self._reason = "the model has not been loaded yet"
        self._client: MlflowClient | None = None
        self._features: FeatureStoreAdapter | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._registry_down_logged = False

    # ------------------------------------------------------------------ lifecycle

    def start(self, poll: bool = True) -> None:
        """Load the model (registry, else cache), open the prediction log, start the alias poller.

        Never raises for an unavailable model: the server starts unready and the poller keeps trying.
        """
        if self._use_log:
            from mlplatform.predictions.writer import open_prediction_log

            counter_drop = self.metrics.log_dropped.labels(self.name)
            counter_write = self.metrics.log_written.labels(self.name)
            self._log = open_prediction_log(self.settings, on_drop=counter_drop.inc, on_write=counter_write.inc)
        self.refresh()
        if self._model is None:
            self._load_from_cache()
        if poll:
            self._poller = threading.Thread(target=self._poll_loop, name=f"alias-poller-{self.name}", daemon=True)
            self._poller.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop polling and flush the prediction log (called on graceful shutdown, e.g. SIGTERM)."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout)
        if self._log is not None:
            self._log.close(timeout)
            self._log = None

    @property
    def ready(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> LoadedModel | None:
        return self._model

    @property
    def reason(self) -> str:
        """Why no model is served (for 503 answers and readiness probes)."""
        return "ready" if self._model is not None else self._reason

    # ------------------------------------------------------------------ predict

    def predict(self, entities: object, request_id: str | None = None, field: str = "entities") -> PredictionResult:
        """Score a batch of entities; raises ``ServingError`` subclasses that map to HTTP statuses.

        ``field`` is the name the request body gives the entity list, used in validation messages.
        """
        began = time.perf_counter()
        model = self._model  # the one read of the served model: a swap mid-request does not affect this request
        try:
            if model is None:
                raise ModelUnavailableError(f"no model loaded for {self.name}@{self.alias}: {self._reason}")
            rows = validate_entities(
                entities,
                self.spec.entity_key,
                self.spec.label.request_columns,
                self.settings.serving.max_batch_size,
                field,
            )
            result = self._score(model, rows, request_id or uuid.uuid4().hex, began)
        except ServingError as error:
            self._series.requests[error.outcome].inc()
            raise
        outcome = "partial" if result.errors else "ok"
        self._series.requests[outcome].inc()
        return result

    def _score(self, model: LoadedModel, rows: list[dict[str, Any]], request_id: str, began: float) -> PredictionResult:
        features = self._fetch(model, rows)
        fetched = time.perf_counter()
        rejected = set(unknown_rows(features, model.stored_features, len(rows)))
        accepted = [index for index in range(len(rows)) if index not in rejected]
        probabilities = self._predict_proba(model, features, rows, accepted)
        predicted = time.perf_counter()
        threshold = self.spec.serving.threshold
        predictions = [
            EntityPrediction(index, rows[index], probability, int(probability >= threshold))
            for index, probability in zip(accepted, probabilities, strict=True)
        ]
        key = self.spec.entity_key
        errors = [
            RowError(
                index,
                rows[index],
                f"unknown entity {key}={rows[index][key]}: the online store has no features for it in feature "
                f"service {model.feature_service!r} (policy: reject)",
            )
            for index in sorted(rejected)
        ]
        timings = {"feature_fetch": fetched - began, "predict": predicted - fetched}
        self._log_predictions(model, request_id, predictions, features)
        timings["total"] = time.perf_counter() - began
        self._observe(timings, predictions, len(errors))
        return PredictionResult(model.name, model.version, request_id, predictions, errors, timings)

    def _fetch(self, model: LoadedModel, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """One online-store read per feature view for the whole batch."""
        try:
            if model.reader is not None:
                return model.reader.read(rows)
            response = self.features.store.get_online_features(features=model.service, entity_rows=rows)
            return dict(response.to_dict())
        except Exception as error:  # any store failure is the same 503 for the client
            raise FeatureStoreUnavailableError(
                f"the Feast online store ({self._online_store_description()}) could not be read: "
                f"{type(error).__name__}: {error}"
            ) from None

    def _online_store_description(self) -> str:
        feast = self.settings.feast
        if feast.online_store == "redis":
            return f"redis at {feast.redis_connection_string.split(',')[0]}"
        return f"sqlite at {self.settings.feast_online_path}"

    @staticmethod
    def _predict_proba(
        model: LoadedModel, features: dict[str, list[Any]], rows: list[dict[str, Any]], accepted: list[int]
    ) -> list[float]:
        if not accepted:
            return []
        matrix = input_matrix(model.model_inputs, features, rows, accepted)
        if model.scorer is not None:
            import numpy as np

            return [float(value) for value in model.scorer(np.asarray(matrix, dtype=np.float64))]
        import pandas as pd

        frame = pd.DataFrame(matrix, columns=model.model_inputs)
        return [float(value) for value in model.estimator.predict_proba(frame)[:, 1]]

    def _log_predictions(
        self, model: LoadedModel, request_id: str, predictions: list[EntityPrediction], features: dict[str, list[Any]]
    ) -> None:
        if self._log is None or not predictions:
            return
        from mlplatform.predictions.records import PredictionRecord

        now = datetime.now(UTC)
        key = self.spec.entity_key
        records = [
            PredictionRecord(
                request_id=request_id,
                timestamp=now,
                model_name=model.name,
                model_version=model.version,
                entity={key: item.entity[key]},
                features={
                    name: _as_float(features[name][item.index] if name in features else item.entity.get(name))
                    for name in model.model_inputs
                },
                score=item.probability,
                label=item.label,
            )
            for item in predictions
        ]
        try:
            self._log.submit(records)
        except Exception:  # the log must never fail a prediction
            log.exception("prediction log rejected %d records", len(records))
            self.metrics.log_dropped.labels(self.name).inc(len(records))

    def _observe(self, timings: dict[str, float], predictions: list[EntityPrediction], rejected: int) -> None:
        series = self._series
        for stage, seconds in timings.items():
            series.stages[stage].observe(seconds)
        for item in predictions:
            series.scores.observe(item.probability)
        series.scored.inc(len(predictions))
        if rejected:
            series.rejected.inc(rejected)

    # ------------------------------------------------------------------ loading and swapping

    @property
    def features(self) -> FeatureStoreAdapter:
        if self._features is None:
            from mlplatform.features.store import FeatureStoreAdapter

            self._features = FeatureStoreAdapter(self.settings)
        return self._features

    def refresh(self) -> bool:
        """One poll: swap in the alias holder if it changed; returns whether the served model changed.

        Failures keep the current model and are remembered as the reason shown while nothing is served.
        """
        try:
            target = self._alias_target()
        except Exception as error:  # registry down or misbehaving: keep serving what we have
            self._note_registry_problem(f"{type(error).__name__}: {error}")
            return False
        if self._registry_down_logged:
            log.info("model registry reachable again")
            self._registry_down_logged = False
        current = self._model
        if target is None:
            self._reason = f"no version of {self.name!r} holds the alias {self.alias!r} in the registry"
            return False
        if current is not None and current.version == target.version:
            if current.from_cache:
                self._install(replace(current, from_cache=False), swapped=False)
            return False
        try:
            loaded = self._load_from_registry(target)
        except Exception as error:  # a broken version must not take down the served one
            self._reason = f"loading {self.name} version {target.version} failed: {type(error).__name__}: {error}"
            log.exception(
                "cannot load %s version %s; still serving %s",
                self.name,
                target.version,
                current.version if current else "nothing",
            )
            return False
        self._install(loaded, swapped=current is not None)
        return True

    def _note_registry_problem(self, problem: str) -> None:
        uri = self.settings.mlflow.resolved_tracking_uri()
        self._reason = f"the model registry (MLflow at {uri}) is unavailable: {problem}"
        if not self._registry_down_logged:
            log.warning("%s; keeping %s", self._reason, f"version {self._model.version}" if self._model else "no model")
            self._registry_down_logged = True

    def _install(self, loaded: LoadedModel, swapped: bool) -> None:
        """Make ``loaded`` the served model: one reference assignment, then bookkeeping."""
        previous = self._model
        self._model = loaded
        self.metrics.set_model_version(self.name, loaded.version, loaded.from_cache)
        if swapped:
            self.metrics.swaps.labels(self.name).inc()
        log.info(
            "serving %s version %s%s (was %s)",
            self.name,
            loaded.version,
            " from the local cache" if loaded.from_cache else "",
            previous.version if previous else "nothing",
        )

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.settings.serving.poll_interval_s):
            self.refresh()

    def _mlflow(self) -> MlflowClient:
        from mlplatform.registry.mlflow_registry import check_reachable, mlflow_client

        check_reachable(self.settings.mlflow.resolved_tracking_uri(), timeout_s=REGISTRY_CHECK_TIMEOUT_S)
        if self._client is None:
            self._client = mlflow_client(self.settings)
        return self._client

    def _alias_target(self) -> _AliasTarget | None:
        from mlflow.exceptions import MlflowException

        client = self._mlflow()
        try:
            version = client.get_model_version_by_alias(self.name, self.alias)
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise
        return _AliasTarget(str(version.version), version.run_id, dict(version.tags or {}))

    def _load_from_registry(self, target: _AliasTarget) -> LoadedModel:
        """Download, load and validate one version, then cache it: all before it can be swapped in."""
        import mlflow.artifacts

        client = self._mlflow()
        feature_service = target.tags.get(Lineage.FEATURE_SERVICE_TAG) or self.spec.features.service
        model_inputs = self._model_inputs(client, target)
        with tempfile.TemporaryDirectory(prefix="mlp-model-") as scratch:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=client.get_model_version_download_uri(self.name, target.version),
                dst_path=scratch,
                tracking_uri=self.settings.mlflow.resolved_tracking_uri(),
            )
            loaded = self._build(target.version, target.run_id, Path(local), feature_service, model_inputs, False)
            self.cache.store(
                Path(local),
                {
                    "name": self.name,
                    "version": target.version,
                    "run_id": target.run_id,
                    "feature_service": feature_service,
                    "model_inputs": model_inputs,
                    "cached_at": datetime.now(UTC).isoformat(),
                },
            )
        return loaded

    def _model_inputs(self, client: MlflowClient, target: _AliasTarget) -> list[str]:
        raw = target.tags.get(Lineage.MODEL_INPUTS_TAG)
        if raw is None and target.run_id:
            raw = client.get_run(target.run_id).data.tags.get(Lineage.MODEL_INPUTS_TAG)
        if raw is None:
            raise ValueError(
                f"version {target.version} has no {Lineage.MODEL_INPUTS_TAG} tag on its run: cannot order inputs"
            )
        inputs = json.loads(raw)
        if not isinstance(inputs, list) or not all(isinstance(item, str) for item in inputs):
            raise ValueError(
                f"{Lineage.MODEL_INPUTS_TAG} of version {target.version} is not a JSON list of column names"
            )
        return inputs

    def _load_from_cache(self) -> None:
        """Serve the last good model when the registry could not provide one at start."""
        cached = self.cache.load_manifest()
        if cached is None:
            log.warning(
                "no model for %s@%s and none cached under %s: %s", self.name, self.alias, self.cache.dir, self._reason
            )
            self._reason += f"; no cached model under {self.cache.dir}"
            return
        manifest, model_dir = cached
        try:
            loaded = self._build(
                str(manifest["version"]),
                manifest.get("run_id"),
                model_dir,
                str(manifest["feature_service"]),
                list(manifest["model_inputs"]),
                True,
            )
        except Exception as error:  # a corrupt cache is reported, never fatal
            self._reason += f"; the cached model under {model_dir} failed to load: {type(error).__name__}: {error}"
            log.exception("cannot load the cached model under %s", model_dir)
            return
        log.warning(
            "serving %s version %s from the local cache (%s): %s", self.name, loaded.version, model_dir, self._reason
        )
        self._install(loaded, swapped=False)

    def _build(
        self,
        version: str,
        run_id: str | None,
        model_dir: Path,
        feature_service: str,
        model_inputs: list[str],
        from_cache: bool,
    ) -> LoadedModel:
        """Load the estimator and resolve its feature service; fails if the inputs cannot all be supplied."""
        import mlflow.sklearn

        estimator = mlflow.sklearn.load_model(str(model_dir))
        array_inputs = accept_arrays(estimator, model_inputs, version)
        scorer = self._scorer(estimator, version) if array_inputs else None
        service = self.features.feature_service(feature_service)
        names = self.features.feature_names(feature_service)
        supplied = {*names, *self.spec.label.request_columns}
        missing = [name for name in model_inputs if name not in supplied]
        if missing:
            raise ValueError(
                f"version {version} needs inputs {missing} that neither feature service {feature_service!r} nor the "
                f"spec's request columns {list(self.spec.label.request_columns)} provide"
            )
        return LoadedModel(
            name=self.name,
            version=version,
            run_id=run_id,
            estimator=estimator,
            feature_service=feature_service,
            model_inputs=model_inputs,
            service=service,
            stored_features=frozenset(names) & self._stored_feature_names(),
            from_cache=from_cache,
            array_inputs=array_inputs,
            scorer=scorer,
            reader=self._reader(feature_service),
        )

    def _reader(self, feature_service: str) -> OnlineFeatureReader | None:
        from mlplatform.features.online_reader import UnsupportedServiceError

        try:
            return self.features.online_reader(feature_service)
        except UnsupportedServiceError as reason:
            log.info("feature service %s is read through Feast's general path: %s", feature_service, reason)
            return None

    @staticmethod
    def _scorer(estimator: Any, version: str) -> Scorer:
        """One thread for scikit-learn's own scoring: a request is a few rows, parallelism comes from requests."""
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # only libraries already loaded are limited, so after the estimator has loaded
        scorer, compiled = positive_scorer(estimator, version)
        how = "compiled trees" if compiled else "the estimator's predict_proba"
        log.info("version %s scores with %s", version, how)
        return scorer

    def _stored_feature_names(self) -> frozenset[str]:
        """Features of batch views (not on-demand ones, which are computed and never 'missing' per se)."""
        views = self.features.store.list_feature_views(allow_cache=False)
        return frozenset(feature.name for view in views for feature in view.features)


def accept_arrays(estimator: Any, model_inputs: list[str], version: str) -> bool:
    """Check the estimator's fitted column names against the lineage once, then let it take plain arrays.

    Why: scikit-learn checks a DataFrame's column names on every call; building the frame and that check cost
    about two thirds of a one-row predict (7 ms against 3 ms here).  The names are verified equal to the
    ``model_inputs`` order (a mismatch fails the load), then ``feature_names_in_`` is dropped so arrays in that
    order are accepted without a warning.  Estimators whose names cannot be dropped (e.g. pipelines) keep frames.
    """
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return False
    if [str(name) for name in names] != list(model_inputs):
        raise ValueError(
            f"version {version}: the model was fitted on columns {list(names)} but its lineage says {model_inputs}"
        )
    try:
        del estimator.feature_names_in_
    except AttributeError:
        return False
    return True


def _as_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number
