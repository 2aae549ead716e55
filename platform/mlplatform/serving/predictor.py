"""The Predictor both model servers wrap: entity keys in, features from Feast, the champion model, predictions out.

One Predictor per server process composes the jobs, each in its own module: ``wire`` (request bodies and answers,
entity validation), ``loading`` (the alias holder loaded, cached and hot-swapped; the last good model on disk),
``scoring`` (one online-store call per request, the model, per-row errors for unknown entities, the prediction
log, stage timings).  No lock sits on the request path: ``predict`` reads the served model once.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mlplatform import logs
from mlplatform.config import Settings
from mlplatform.predictions.records import CANDIDATE_ARM, CHAMPION_ARM
from mlplatform.serving.access import read_token
from mlplatform.serving.errors import ModelUnavailableError, ServingError
from mlplatform.serving.loading import LoadedModel, ModelLoader, ModelSlot
from mlplatform.serving.metrics import ServingMetrics
from mlplatform.serving.offload import OffLoop
from mlplatform.serving.rollout import Arms, CandidateSlot, ShadowRunner, split_rows
from mlplatform.serving.scoring import EntityPrediction, PredictionResult, RowError, Scoring
from mlplatform.serving.wire import parse_request_body, read_capped, validate_entities
from mlplatform.specs import ModelSpec, find_spec

if TYPE_CHECKING:
    from collections.abc import AsyncIterable

    from mlplatform.features.online_reader import OnlineFeatureReader
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
        self._error_responses = self.metrics.refused_responses(model_name)
        self._use_log = prediction_log and settings.serving.prediction_log != "off"
        self._log: PredictionLog | None = None
        loader = loader or ModelLoader(settings, model_name, self.alias, self.spec)
        self._slot = ModelSlot(settings, loader, self.metrics)
        self._candidates = CandidateSlot(loader, self.metrics)
        self._slot.followers.append(self._candidates.refresh)
        self._shadow: ShadowRunner | None = None
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
        self._shadow = ShadowRunner(
            self.settings.serving.shadow_queue, self.metrics.shadow_skipped.labels(self.name).inc
        )
        self._slot.start(poll)

    def close(self, timeout: float = 10.0) -> None:
        """Stop polling and flush the prediction log (called on graceful shutdown, e.g. SIGTERM)."""
        self._slot.stop(timeout)
        self._off_loop.close()
        if self._shadow is not None:
            self._shadow.close(timeout)  # shadow scorings queued before the stop are logged too
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
    def arms(self) -> Arms | None:
        """The rollout this server follows now (``None``: the champion answers everything)."""
        return self._candidates.arms

    def refresh(self) -> None:
        """Poll the registry once now (alias and rollout plan), as the poller does every poll interval."""
        self._slot.refresh()
        self._candidates.refresh()

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
        other requests, its probes); a 503 past ``serving.scoring_timeout_s`` (``mlplatform.serving.offload``).

        On the event loop itself where every store read fails within ``serving.loop_read_timeout_s``
        (``serving.score_on_loop``, ``OnlineFeatureReader.loop_safe``): the hand-off to a thread and back costs as
        much CPU as the read.  Where the reader awaits the store on the loop (``reads_async``: a single Redis
        server), the loop scores other requests meanwhile (``_predict_awaiting_store``)."""
        model = self._slot.model
        if self._scores_on_loop(model):
            if model is not None and self._awaits_store(model):
                return await self._predict_awaiting_store(model, entities, request_id, field)
            return self.predict(entities, request_id, field)
        return await self._off_loop.run(lambda: self.predict(entities, request_id, field))

    def _awaits_store(self, model: LoadedModel) -> bool:
        """Whether a request for ``model`` awaits its store read on the loop: its reader can, and no rollout
        routes requests to a candidate (the arms keep ``predict``'s path)."""
        arms = self._candidates.arms
        return model.reader is not None and model.reader.reads_async and (arms is None or not arms.routing)

    async def _predict_awaiting_store(
        self, model: LoadedModel, entities: object, request_id: str | None, field: str
    ) -> PredictionResult:
        """``predict`` for one model whose reader awaits the store: validated, read without holding the loop,
        then scored and logged as ``predict`` would."""
        began = time.perf_counter()
        request_id = request_id or logs.new_request_id()
        with logs.bound(request_id, self.name, model.version):
            try:
                rows = self._validated(entities, field)
                features = await self._scoring.fetch_async(model, rows)
                result = self._scoring.score_read(model, rows, request_id, began, features)
            except ServingError as error:
                self._count_refused(error)
                raise
        return self._answered(result)

    def _scores_on_loop(self, model: LoadedModel | None) -> bool:
        """Whether a request is scored right on the event loop: the reads of ``model`` (and of a rollout's
        candidate, when one answers or shadows) are bounded (``loop_safe``), or there is no model and the answer is
        a 503 at once."""
        if model is None:
            return True
        arms = self._candidates.arms
        candidate_bounded = arms is None or not arms.routing or _reads_bounded(arms.candidate.reader)
        return _reads_bounded(model.reader) and candidate_bounded

    def _timed_out(self) -> None:
        """A scoring call outlived its deadline: if it is inside a store read, the store is what hangs."""
        if self._scoring.reading_store:
            self._scoring.store_health.failed()

    def count_unauthorized(self) -> None:
        """A request refused for want of the bearer token (``serving.access.BearerGate``, ``serving.route``)."""
        self._series.requests["unauthorized"].inc()

    def count_error_response(self, status: int) -> None:
        """An answer of status 400 or more, whichever layer gave it (``metrics.RefusalCounter``, ``serving.route``)."""
        self._error_responses(status)

    def _count_refused(self, error: ServingError) -> None:
        self._series.requests[error.outcome].inc()
        logs.note_error(error.message)  # the reason on the request's log line

    def predict(self, entities: object, request_id: str | None = None, field: str = "entities") -> PredictionResult:
        """Score a batch of entities; raises ``ServingError`` subclasses that map to HTTP statuses.

        ``field`` is the name the request body gives the entity list, used in validation messages.
        """
        began = time.perf_counter()
        model = self._slot.model  # the one read of the served model: a swap mid-request does not affect this request
        arms = self._candidates.arms  # and of the rollout, for the same reason
        request_id = request_id or logs.new_request_id()
        # One id for the answer, the prediction log and every log line of this request.
        with logs.bound(request_id, self.name, model.version if model is not None else None):
            try:
                if model is None:
                    raise ModelUnavailableError(f"no model loaded for {self.name}@{self.alias}: {self._slot.reason}")
                rows = self._validated(entities, field)
                result = self._route(model, arms, rows, request_id, began)
            except ServingError as error:
                self._count_refused(error)
                raise
        return self._answered(result)

    def _validated(self, entities: object, field: str) -> list[dict[str, Any]]:
        return validate_entities(
            entities, self.spec.entity_key, self.spec.label.request_columns, self.settings.serving.max_batch_size, field
        )

    def _answered(self, result: PredictionResult) -> PredictionResult:
        """``result``, counted as answered (``partial`` when some rows got errors)."""
        self._series.requests["partial" if result.errors else "ok"].inc()
        return result

    def _route(
        self, model: LoadedModel, arms: Arms | None, rows: list[dict[str, Any]], request_id: str, began: float
    ) -> PredictionResult:
        if arms is None or not arms.routing:
            return self._scoring.score(model, rows, request_id, began)
        if arms.plan.mode == "shadow":
            return self._shadowed(model, arms.candidate, rows, request_id, began)
        return self._split(model, arms, rows, request_id, began)

    def _shadowed(
        self, model: LoadedModel, candidate: LoadedModel, rows: list[dict[str, Any]], request_id: str, began: float
    ) -> PredictionResult:
        """The champion answers; the candidate scores the same entities on the shadow thread, reusing the features
        when both read the same feature service."""
        features = self._scoring.fetch(model, rows)
        result = self._scoring.score(model, rows, request_id, began, arm=CHAMPION_ARM, features=features)
        shared = features if candidate.feature_service == model.feature_service else None
        if self._shadow is not None:
            self._shadow.submit(lambda: self._score_candidate(candidate, rows, request_id, shared, shadow=True))
        return result

    def _split(
        self, model: LoadedModel, arms: Arms, rows: list[dict[str, Any]], request_id: str, began: float
    ) -> PredictionResult:
        """The candidate answers the entities its plan assigns it; the champion the others, and any the candidate
        could not score."""
        key = self.spec.entity_key
        chosen = split_rows(arms.plan, [row[key] for row in rows])
        if not chosen:
            return versioned(self._scoring.score(model, rows, request_id, began, arm=CHAMPION_ARM), [])
        answered = self._score_candidate(arms.candidate, [rows[index] for index in chosen], request_id, None)
        failed = {item.index for item in answered.errors} if answered is not None else set(range(len(chosen)))
        chosen_set = set(chosen)
        rest = sorted([index for index in range(len(rows)) if index not in chosen_set] + [chosen[i] for i in failed])
        parts: list[tuple[PredictionResult, list[int]]] = []
        if answered is not None:
            parts.append((answered, chosen))
        if rest:
            champion = self._scoring.score(model, [rows[index] for index in rest], request_id, began, arm=CHAMPION_ARM)
            parts.append((champion, rest))
        return merged(parts, failed)

    def _score_candidate(
        self,
        candidate: LoadedModel,
        rows: list[dict[str, Any]],
        request_id: str,
        features: dict[str, list[Any]] | None,
        *,
        shadow: bool = False,
    ) -> PredictionResult | None:
        """The candidate's scoring, or ``None`` (logged as its failure) when it cannot score the batch at all."""
        began = time.perf_counter()
        try:
            return self._scoring.score(
                candidate, rows, request_id, began, arm=CANDIDATE_ARM, shadow=shadow, features=features
            )
        except Exception as error:  # the candidate's failure is evidence for the rollout, never the client's problem
            self._scoring.failed(candidate, rows, request_id, began, error, arm=CANDIDATE_ARM, shadow=shadow)
            return None


def versioned(result: PredictionResult, positions: list[int]) -> PredictionResult:
    """``result`` with each prediction naming its version; ``positions`` map its rows to the request's (empty:
    the same positions)."""
    predictions = [
        replace(item, index=positions[item.index] if positions else item.index, version=result.version)
        for item in result.predictions
    ]
    errors = [replace(row, index=positions[row.index]) if positions else row for row in result.errors]
    return replace(result, predictions=predictions, errors=errors)


def merged(parts: list[tuple[PredictionResult, list[int]]], retried: set[int]) -> PredictionResult:
    """One answer of a split request from each arm's part: predictions and errors back at their request
    positions, each prediction naming its version; the candidate's errors on rows the champion retried are
    dropped (the champion's answer stands)."""
    predictions: list[EntityPrediction] = []
    errors: list[RowError] = []
    for number, (part, positions) in enumerate(parts):
        shifted = versioned(part, positions)
        predictions += shifted.predictions
        if number == 0 and len(parts) > 1:
            errors += [row for row, item in zip(shifted.errors, part.errors, strict=True) if item.index not in retried]
        else:
            errors += shifted.errors
    first = parts[-1][0]  # the champion's part when there is one: its version heads the answer
    return replace(
        first,
        predictions=sorted(predictions, key=lambda item: item.index),
        errors=sorted(errors, key=lambda row: row.index),
    )


def _reads_bounded(reader: OnlineFeatureReader | None) -> bool:
    """A reader whose every read fails within a bounded time (``loop_safe``); a model without one keeps the
    scoring threads."""
    return reader is not None and reader.loop_safe
