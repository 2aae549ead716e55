"""Scoring: features from the online store, the model's outputs for the spec's task, row errors for unknown
entities, the prediction log and the stage timings; and the results both servers turn into answers.

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

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlplatform.predictions.records import CHAMPION_ARM, PredictionRecord
from mlplatform.serving.errors import FeatureStoreUnavailableError
from mlplatform.serving.offload import StoreHealth

if TYPE_CHECKING:
    from mlplatform.config import Settings
    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.predictions.writer import PredictionLog
    from mlplatform.serving.loading import LoadedModel
    from mlplatform.serving.metrics import ServingMetrics
    from mlplatform.serving.task_outputs import Outputs
    from mlplatform.specs import ModelSpec, Task

log = logging.getLogger(__name__)

UNSCORABLE_REASON_CHARS = 200
"""How much of an estimator's refusal an answer carries (row errors are read by clients, not debuggers)."""


@dataclass(frozen=True)
class EntityPrediction:
    """The prediction of one entity; ``index`` is its position in the request."""

    index: int
    entity: dict[str, Any]
    score: float
    """binary: P(positive class); multiclass: the predicted class's probability; regression: the predicted value.
    The prediction log's ``score`` and the drift check's ``prediction`` are this quantity."""
    label: int | None
    """The predicted class (classifiers); ``None`` for regression."""
    probabilities: tuple[float, ...] = ()
    """multiclass: one probability per class, in ``PredictionResult.classes`` order."""
    version: str | None = None
    """The version that answered, when a rollout splits the request's entities between two versions."""


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
    task: Task = "binary"
    """Which answer shape the servers give (``wire``)."""
    classes: tuple[int, ...] = ()
    """The classifier's class codes; ``EntityPrediction.probabilities`` follow this order."""

    @property
    def size(self) -> int:
        return len(self.predictions) + len(self.errors)


@dataclass(frozen=True)
class LoggedBatch:
    """What the prediction log records of one arm's scoring besides the predictions: which arm, whether it was
    answered, how long it took, and the entities it could not score (logged as failures)."""

    arm: str
    shadow: bool
    latency_s: float
    failures: list[RowError]


class Scoring:
    """Scores validated rows of one model: one online-store read for the batch, the model, the prediction log and
    the stage histograms.  Holds no request state; the model comes in with each call."""

    def __init__(
        self,
        settings: Settings,
        spec: ModelSpec,
        metrics: ServingMetrics,
        features: Callable[[], FeatureStoreAdapter],
    ) -> None:
        self.settings = settings
        self.spec = spec
        self.name = spec.name
        self.metrics = metrics
        self._series = metrics.model_series(spec.name)
        self._features = features
        self.log: PredictionLog | None = None
        """The prediction log scored entities go to (``None``: not logged)."""
        self.store_health = StoreHealth(settings.serving.feature_store_retry_s)
        self.reading_store = 0
        """Scoring calls now inside an online-store read: a call that outlives its deadline while one is running
        is stuck on the store, not on the model."""
        self._reading_lock = threading.Lock()  # scoring threads count in and out concurrently

    def score(
        self,
        model: LoadedModel,
        rows: list[dict[str, Any]],
        request_id: str,
        began: float,
        *,
        arm: str | None = None,
        shadow: bool = False,
        features: dict[str, list[Any]] | None = None,
    ) -> PredictionResult:
        """Features and the model's outputs for validated rows; unknown entities become row errors; logged and
        timed.

        ``arm`` names the rollout arm scoring (``None``: no rollout runs); ``shadow`` scores for the log only (the
        answered series are left alone); ``features`` already read for the same feature service are reused.
        """
        # The arm's own time: with features read for both arms (shadow), only its scoring; else its read too.
        arm_began = began if features is None else time.perf_counter()
        features = self.fetch(model, rows) if features is None else features
        return self._scored(model, rows, request_id, began, arm_began, features, arm, shadow)

    def score_read(
        self, model: LoadedModel, rows: list[dict[str, Any]], request_id: str, began: float, features: dict[str, Any]
    ) -> PredictionResult:
        """``score`` with the features this request read itself (``fetch_async``), its read counted in its time."""
        return self._scored(model, rows, request_id, began, began, features, None, False)

    def _scored(
        self,
        model: LoadedModel,
        rows: list[dict[str, Any]],
        request_id: str,
        began: float,
        arm_began: float,
        features: dict[str, list[Any]],
        arm: str | None,
        shadow: bool,
    ) -> PredictionResult:
        fetched = time.perf_counter()
        rejected = set(unknown_rows(features, model.stored_features, len(rows)))
        accepted = [index for index in range(len(rows)) if index not in rejected]
        predictions, unscorable, inputs = self._predict(model, features, rows, accepted)
        predicted = time.perf_counter()
        key = self.spec.entity_key
        unknown = [
            RowError(
                index,
                rows[index],
                f"unknown entity {key}={rows[index][key]}: the online store has no features for it in feature "
                f"service {model.feature_service!r} (policy: reject)",
            )
            for index in rejected
        ]
        errors = sorted([*unknown, *unscorable], key=lambda row: row.index)
        timings = {"feature_fetch": fetched - began, "predict": predicted - fetched}
        logged = LoggedBatch(arm or CHAMPION_ARM, shadow, predicted - arm_began, unscorable)
        self._log_predictions(model, request_id, predictions, inputs, logged)
        timings["total"] = time.perf_counter() - began
        if arm is not None:
            self._count_arm(logged, len(predictions))
        if not shadow:
            self._observe(timings, predictions, len(errors))
        scorer = model.scorer
        return PredictionResult(
            model.name, model.version, request_id, predictions, errors, timings, scorer.task, scorer.classes
        )

    def fetch(self, model: LoadedModel, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """One online-store read per feature view for the whole batch; none while the store's fail-fast window
        after a failure lasts."""
        self.store_health.check()
        with self._reading_lock:
            self.reading_store += 1
        try:
            if model.reader is not None:
                return model.reader.read(rows)
            response = self._features().store.get_online_features(features=model.service, entity_rows=rows)
            return dict(response.to_dict())
        except Exception as error:  # any store failure is the same 503 for the client
            raise self._unreadable(error) from None
        finally:
            with self._reading_lock:
                self.reading_store -= 1

    async def fetch_async(self, model: LoadedModel, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """``fetch`` for a reader that ``reads_async``: the event loop scores other requests while this one
        waits for the store."""
        self.store_health.check()
        assert model.reader is not None
        try:
            return await model.reader.read_async(rows)
        except Exception as error:  # any store failure is the same 503 for the client
            raise self._unreadable(error) from None

    def _unreadable(self, error: Exception) -> FeatureStoreUnavailableError:
        """The 503 of a failed store read, after opening the fail-fast window; where the store is and what it
        said are for the operator's log, never for the client."""
        self.store_health.failed()
        log.warning(
            "the Feast online store (%s) could not be read: %s: %s",
            self._online_store_description(),
            type(error).__name__,
            error,
        )
        return FeatureStoreUnavailableError(
            f"the online feature store ({self.settings.feast.online_store}) could not be read; retry later "
            "(the model server's log has the cause)"
        )

    def _online_store_description(self) -> str:
        feast = self.settings.feast
        if feast.online_store == "redis":
            return f"redis at {feast.redis_connection_string.split(',')[0]}"
        return f"sqlite at {self.settings.feast_online_path}"

    def _predict(
        self, model: LoadedModel, features: dict[str, list[Any]], rows: list[dict[str, Any]], accepted: list[int]
    ) -> tuple[list[EntityPrediction], list[RowError], dict[int, list[float]]]:
        """Predictions of the accepted rows in one call; if the estimator refuses the batch (e.g. a missing value
        it cannot take), row by row, so only the entities it cannot score get an error naming their missing
        inputs.  Also each accepted row's model inputs by row index, which the prediction log records."""
        if not accepted:
            return [], [], {}
        import numpy as np

        values = input_matrix(model.model_inputs, features, rows, accepted)
        inputs = dict(zip(accepted, values, strict=True))
        matrix = np.asarray(values, dtype=np.float64)
        try:
            return _entity_predictions(model.scorer(matrix), accepted, rows), [], inputs
        except ValueError as error:
            if len(accepted) == 1:
                return [], [self._unscorable(model, rows, accepted[0], matrix[0], error)], inputs
        predictions: list[EntityPrediction] = []
        failed: list[RowError] = []
        for position, index in enumerate(accepted):
            try:
                predictions.extend(_entity_predictions(model.scorer(matrix[position : position + 1]), [index], rows))
            except ValueError as error:
                failed.append(self._unscorable(model, rows, index, matrix[position], error))
        return predictions, failed, inputs

    def _unscorable(
        self, model: LoadedModel, rows: list[dict[str, Any]], index: int, inputs: Any, error: ValueError
    ) -> RowError:
        """The row error of an entity the estimator refused: its missing inputs if any, else the estimator's
        reason (shortened; the log has it whole)."""
        key = self.spec.entity_key
        missing = [name for name, value in zip(model.model_inputs, inputs, strict=True) if math.isnan(value)]
        log.warning("version %s cannot score %s=%s: %s", model.version, key, rows[index][key], error)
        why = (
            f"its inputs {missing} are missing and the model does not accept missing values"
            if missing
            else f"ValueError: {str(error)[:UNSCORABLE_REASON_CHARS]}"
        )
        return RowError(index, rows[index], f"version {model.version} cannot score {key}={rows[index][key]}: {why}")

    def _log_predictions(
        self,
        model: LoadedModel,
        request_id: str,
        predictions: list[EntityPrediction],
        inputs: dict[int, list[float]],
        batch: LoggedBatch,
    ) -> None:
        """A record per entity, its features the model inputs it was scored on (``inputs``, by row index: the
        matrix's rows, not a second pass over the features read; NaN, a missing value there, is ``None`` here), or
        for an arm that failed before reading any, the request's own values."""
        if self.log is None or not (predictions or batch.failures):
            return
        now = datetime.now(UTC)
        key = self.spec.entity_key
        names = model.model_inputs

        def features_of(index: int, entity: dict[str, Any]) -> dict[str, float | None]:
            values = inputs.get(index)
            if values is None:
                return {name: _as_float(entity.get(name)) for name in names}
            total = sum(values)
            if total == total:  # no NaN among them (a sum is NaN if one is): nothing to turn into None
                return dict(zip(names, values, strict=True))
            return {name: value if value == value else None for name, value in zip(names, values, strict=True)}

        def record(
            index: int, entity: dict[str, Any], score: float | None, label: int | None, error: str | None
        ) -> Any:
            return PredictionRecord(
                request_id=request_id,
                timestamp=now,
                model_name=model.name,
                model_version=model.version,
                entity={key: entity[key]},
                features=features_of(index, entity),
                score=score,
                label=label,
                arm=batch.arm,
                shadow=batch.shadow,
                latency_s=batch.latency_s,
                error=error,
            )

        records = [record(item.index, item.entity, item.score, item.label, None) for item in predictions]
        records += [record(row.index, row.entity, None, None, row.error) for row in batch.failures]
        try:
            self.log.submit(records)
        except Exception:  # the log must never fail a prediction
            log.exception("prediction log rejected %d records", len(records))
            self.metrics.log_dropped.labels(self.name).inc(len(records))

    def failed(
        self,
        model: LoadedModel,
        rows: list[dict[str, Any]],
        request_id: str,
        began: float,
        error: Exception,
        *,
        arm: str,
        shadow: bool,
    ) -> None:
        """Log and count a rollout arm that could not score a batch at all (the other arm answers it)."""
        key = self.spec.entity_key
        why = f"version {model.version} failed: {type(error).__name__}: {error}"[:UNSCORABLE_REASON_CHARS]
        failures = [RowError(index, row, why) for index, row in enumerate(rows)]
        log.warning(
            "%s arm %s of %s could not score a batch of %d (%s=%s, ...): %s",
            arm,
            model.version,
            self.name,
            len(rows),
            key,
            rows[0][key] if rows else "-",
            error,
        )
        batch = LoggedBatch(arm, shadow, time.perf_counter() - began, failures)
        self._log_predictions(model, request_id, [], {}, batch)
        self._count_arm(batch, 0)

    def _count_arm(self, batch: LoggedBatch, scored: int) -> None:
        """The rollout's per-arm series (only while a rollout runs: a server without one pays nothing)."""
        metrics = self.metrics
        metrics.arm_seconds.labels(self.name, batch.arm).observe(batch.latency_s)
        if scored:
            result = "shadow" if batch.shadow else "answered"
            metrics.arm_entities.labels(self.name, batch.arm, result).inc(scored)
        if batch.failures:
            metrics.arm_entities.labels(self.name, batch.arm, "failed").inc(len(batch.failures))

    def _observe(self, timings: dict[str, float], predictions: list[EntityPrediction], rejected: int) -> None:
        series = self._series
        for stage, seconds in timings.items():
            series.stages[stage].observe(seconds)
        outputs = series.values if self.spec.task == "regression" else series.scores
        for item in predictions:
            outputs.observe(item.score)
        series.scored.inc(len(predictions))
        if rejected:
            series.rejected.inc(rejected)


def _entity_predictions(outputs: Outputs, indexes: list[int], rows: list[dict[str, Any]]) -> list[EntityPrediction]:
    labels: list[int | None] = list(outputs.labels) if outputs.labels is not None else [None] * len(indexes)
    probabilities = outputs.probabilities or [()] * len(indexes)
    return [
        EntityPrediction(index, rows[index], score, label, per_class)
        for index, score, label, per_class in zip(indexes, outputs.scores, labels, probabilities, strict=True)
    ]


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


def _as_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number
