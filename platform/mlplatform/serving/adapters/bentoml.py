"""BentoML 1.4 adapter: the service class (``ModelService``) serving ``POST /predict`` over the shared Predictor.

The entry point ``serving/bentoml/service.py`` re-exports ``ModelService`` for ``bentoml serve service:ModelService``
and starts BentoML.  BentoML records where the service class was defined (its import string) and its workers
import it from there, so the class lives at module level here.  Formats and status codes:
``serving/bentoml/README.md``.

Why a Starlette app mounted with ``@bentoml.asgi_app`` rather than ``@bentoml.api``: the request body is validated
by the Predictor (the same checks and messages as the KServe server), so the status codes are ours (422 naming
the field, 413, 503 with the reason) instead of BentoML's generic 400/500, and the handler runs directly on the
event loop (the work is ~1-3 ms of CPU), skipping BentoML's IO-descriptor and thread-pool hops.  BentoML still
provides the process model, ``/livez`` and ``/readyz`` (ready only once a model is loaded, via ``__is_ready__``);
its own metrics are disabled so ``/metrics`` (served by the mounted app) exposes the platform's registry only.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import TYPE_CHECKING, Any, cast

import bentoml
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mlplatform import logs
from mlplatform.serving.access import BearerGate
from mlplatform.serving.metrics import RefusalCounter

if TYPE_CHECKING:
    from mlplatform.serving.predictor import Predictor

MODEL_ENV = "MLPLATFORM_SERVE_MODEL"
"""Which model the service serves: BentoML imports this module itself, so the name cannot come from argv."""

TRACING_EXCLUDED_PATHS = ("/predict", "/metrics", "/status", "/livez", "/readyz")
"""Paths BentoML's OpenTelemetry middleware lets through untouched.  It opens a span per request even with no
exporter configured; on a one-entity prediction that was about a seventh of the worker's CPU (py-spy at
200 requests/s), for spans nobody receives.  Request ids and the platform's metrics already trace a request."""

log = logging.getLogger("mlplatform.serving.bentoml")


class _Current:
    """The Predictor of this worker process, set when BentoML creates the service instance."""

    predictor: Predictor | None = None


def _predictor() -> Predictor:
    if _Current.predictor is None:
        raise RuntimeError("the service instance has not been created yet")
    return _Current.predictor


def create_app() -> Starlette:
    """The HTTP API; handlers look the Predictor up per request (it exists once BentoML started the service).

    A plain Starlette app: three fixed routes need no FastAPI dependency solving or OpenAPI, which cost CPU on
    every request while the Predictor validates the body itself."""

    async def predict(request: Request) -> Response:
        from mlplatform.serving.errors import ServingError
        from mlplatform.serving.wire import response_body

        predictor = _predictor()
        headers = request.headers
        request_id = logs.current_request_id() or headers.get("x-request-id")  # accepted by logs.RequestLog
        try:
            result = await predictor.predict_stream(
                request.stream(), headers.get("content-length"), request_id, "entities"
            )
        except ServingError as error:
            return JSONResponse({"error": error.message}, status_code=error.status)
        return JSONResponse(response_body(result, predictor.spec.entity_key))

    async def metrics(_: Request) -> Response:
        from mlplatform.serving.metrics import render_metrics

        body, content_type = render_metrics(_predictor().metrics)
        return Response(content=body, media_type=content_type)

    async def status(_: Request) -> JSONResponse:
        """Readiness with the reason (BentoML's ``/readyz`` gives only a generic message when unready)."""
        predictor = _predictor()
        model = predictor.model
        if model is None:
            return JSONResponse({"ready": False, "reason": predictor.reason}, status_code=503)
        return JSONResponse(
            {"ready": True, "model": model.name, "version": model.version, "from_cache": model.from_cache}
        )

    def token() -> bytes | None:
        return _predictor().token

    def count_unauthorized() -> None:
        _predictor().count_unauthorized()

    return Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/status", status, methods=["GET"]),
        ],
        middleware=[
            Middleware(logs.RequestLog, sample=_access_log_rate),
            Middleware(BearerGate, token=token, on_refused=count_unauthorized),
        ],
    )


def _access_log_rate() -> float:
    """``serving.access_log`` once the service exists (the app is built at import, before any settings)."""
    return _Current.predictor.settings.serving.access_log if _Current.predictor is not None else 0.0


def _count_refused(status: int) -> None:
    """Counted once the service exists (BentoML may answer its probes before that)."""
    predictor = _Current.predictor
    if predictor is not None:
        predictor.metrics.refused_responses(predictor.name)(status)


@bentoml.service(
    name="mlplatform-model",
    workers=1,
    traffic={"timeout": 30},
    metrics={"enabled": False},
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": list(TRACING_EXCLUDED_PATHS)},
)
@bentoml.asgi_app(create_app(), path="/")
class ModelService:
    """Owns the Predictor: loaded at start (from the registry, else the local cache), closed on shutdown."""

    def __init__(self) -> None:
        from mlplatform.config import get_settings
        from mlplatform.serving.predictor import Predictor

        model = os.environ.get(MODEL_ENV)
        if not model:
            raise RuntimeError(f"set {MODEL_ENV} to the registered model name to serve")
        settings = get_settings()
        # BentoML set up its own text logging in this worker before importing the service: ours replaces it.
        logs.configure(settings.log, fields={"model": model})
        self.predictor = Predictor(settings, model)
        self.predictor.start()
        _Current.predictor = self.predictor
        gc.freeze()  # the model and libraries are long-lived: keep them out of every later GC pass

    def __is_ready__(self) -> bool:
        return self.predictor.ready

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def flush(self) -> None:
        """Graceful shutdown (SIGTERM): stop polling and write out the queued prediction log records."""
        self.predictor.close()
        log.info("prediction log flushed")


# Around BentoML's whole app, not only the mounted one: BentoML answers unknown paths and its own routes itself.
# The decorators made the class a ``bentoml.Service``, which its stubs do not say.
cast(Any, ModelService).add_asgi_middleware(RefusalCounter, refused=_count_refused)
