"""The Predictor both model servers wrap: entity keys in, features from Feast, the champion model, predictions out.

One Predictor per server process composes the jobs, each in its own module: ``wire`` (request bodies and answers,
entity validation), ``loading`` (the alias holder loaded, cached and hot-swapped; the last good model on disk),
``scoring`` (one online-store call per request, the model, per-row errors for unknown entities, the prediction
log, stage timings).  No lock sits on the request path: ``predict`` reads the served model once.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

from mlplatform import logs
from mlplatform.config import Settings
from mlplatform.serving.access import read_token
from mlplatform.serving.errors import ModelUnavailableError, ServingError
from mlplatform.serving.loading import LoadedModel, ModelLoader, ModelSlot
from mlplatform.serving.metrics import ServingMetrics
from mlplatform.serving.offload import OffLoop
from mlplatform.serving.scoring import PredictionResult, Scoring
from mlplatform.serving.wire import parse_request_body, read_capped, validate_entities
from mlplatform.specs import ModelSpec, find_spec

if TYPE_CHECKING:
    from collections.abc import AsyncIterable

    from mlplatform.predictions.writer import PredictionLog


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
        loader: ModelLoader | None = None,
    ) -> None:
        """``loader`` defaults to the registry's (``ModelLoader``); tests hand in one over local model files."""
        self.settings = settings
        self.name = model_name
        self.alias = settings.serving.alias
        self.spec = spec or find_spec(settings.model_roots, model_name)
        self.metrics = metrics or ServingMetrics()
        self._series = self.metrics.model_series(model_name)
        self._use_log = prediction_log and settings.serving.prediction_log != "off"
        self._log: PredictionLog | None = None
        loader = loader or ModelLoader(settings, model_name, self.alias, self.spec)
        self._slot = ModelSlot(settings, loader, self.metrics)
        self._scoring = Scoring(settings, self.spec, self.metrics, lambda: loader.features)
        self.token = read_token(settings.serving.auth_token_file)
        """The bearer token clients must send (``serving.access``); ``None``: none required."""
        serving = settings.serving
        self._off_loop = OffLoop(
            serving.scoring_threads,
            serving.scoring_timeout_s,
            self._scoring.store_health,
            on_timeout=self._timed_out,
            on_refused=self._count_refused,
        )

    def start(self, poll: bool = True) -> None:
        """Load the model (registry, else cache), open the prediction log, start the alias poller.

        Never raises for an unavailable model: the server starts unready and the poller keeps trying.
        """
        if self._use_log:
            from mlplatform.predictions.writer import open_prediction_log

            counter_drop = self.metrics.log_dropped.labels(self.name)
            counter_write = self.metrics.log_written.labels(self.name)
            self._log = open_prediction_log(self.settings, on_drop=counter_drop.inc, on_write=counter_write.inc)
            self._scoring.log = self._log
        self._slot.start(poll)

    def close(self, timeout: float = 10.0) -> None:
        """Stop polling and flush the prediction log (called on graceful shutdown, e.g. SIGTERM)."""
        self._slot.stop(timeout)
        self._off_loop.close()
        if self._log is not None:
            self._scoring.log = None
            self._log.close(timeout)
            self._log = None

    @property
    def ready(self) -> bool:
        return self._slot.model is not None

    @property
    def model(self) -> LoadedModel | None:
        return self._slot.model

    @property
    def reason(self) -> str:
        """Why no model is served (for 503 answers and readiness probes)."""
        return "ready" if self._slot.model is not None else self._slot.reason

    async def predict_stream(
        self, chunks: AsyncIterable[bytes], declared_length: str | None, header_id: str | None, field: str
    ) -> PredictionResult:
        """The entity API of both servers: read the JSON body within ``serving.max_body_kb``, parse it
        (``parse_request_body``) and score it; a body refused before scoring is counted like any other refusal."""
        try:
            raw = await read_capped(chunks, declared_length, self.settings.serving.max_body_kb * 1024)
            entities, request_id = parse_request_body(raw, field, header_id)
        except ServingError as error:
            self._count_refused(error)
            raise
        return await self.predict_off_loop(entities, request_id, field)

    async def predict_off_loop(
        self, entities: object, request_id: str | None = None, field: str = "entities"
    ) -> PredictionResult:
        """``predict`` in a scoring thread, so a stuck online-store read never blocks the server's event loop (its
        other requests, its probes); a 503 past ``serving.scoring_timeout_s`` (``mlplatform.serving.offload``)."""
        return await self._off_loop.run(lambda: self.predict(entities, request_id, field))

    def _timed_out(self) -> None:
        """A scoring call outlived its deadline: if it is inside a store read, the store is what hangs."""
        if self._scoring.reading_store:
            self._scoring.store_health.failed()

    def count_unauthorized(self) -> None:
        """A request refused for want of the bearer token (answered by ``serving.access.BearerGate``)."""
        self._series.requests["unauthorized"].inc()

    def _count_refused(self, error: ServingError) -> None:
        self._series.requests[error.outcome].inc()
        logs.note_error(error.message)  # the reason on the request's log line

    def predict(self, entities: object, request_id: str | None = None, field: str = "entities") -> PredictionResult:
        """Score a batch of entities; raises ``ServingError`` subclasses that map to HTTP statuses.

        ``field`` is the name the request body gives the entity list, used in validation messages.
        """
        began = time.perf_counter()
        model = self._slot.model  # the one read of the served model: a swap mid-request does not affect this request
        request_id = request_id or uuid.uuid4().hex
        # One id for the answer, the prediction log and every log line of this request.
        with logs.bound(request_id, self.name, model.version if model is not None else None):
            try:
                if model is None:
                    raise ModelUnavailableError(f"no model loaded for {self.name}@{self.alias}: {self._slot.reason}")
                rows = validate_entities(
                    entities,
                    self.spec.entity_key,
                    self.spec.label.request_columns,
                    self.settings.serving.max_batch_size,
                    field,
                )
                result = self._scoring.score(model, rows, request_id, began)
            except ServingError as error:
                self._count_refused(error)
                raise
        outcome = "partial" if result.errors else "ok"
        self._series.requests[outcome].inc()
        return result
