"""BentoML 1.4 adapter: the service class (``ModelService``) serving ``POST /predict`` over the shared Predictor.

The entry point ``serving/bentoml/service.py`` re-exports ``ModelService`` for ``bentoml serve service:ModelService``
and starts BentoML.  BentoML records where the service class was defined (its import string) and its workers
import it from there, so the class lives at module level here.  Formats and status codes:
``serving/bentoml/README.md``.

Why ``POST /predict`` is answered by one ASGI layer in front of BentoML's app (``predict_route``, installed by
``PlatformService``) and ``/metrics`` and ``/status`` by a Starlette app mounted with ``@bentoml.asgi_app``, rather
than ``@bentoml.api``: the request body is validated by the Predictor (the same checks and messages as the KServe
server), so the status codes are ours (422 naming the field, 413, 503 with the reason) instead of BentoML's generic
400/500, and the handler runs directly on the event loop (the work is a fraction of a millisecond of CPU),
skipping BentoML's IO-descriptor and thread-pool hops and its whole ASGI stack.  BentoML still provides the
process model, ``/livez`` and ``/readyz`` (ready only once a model is loaded, via ``__is_ready__``); its own
metrics are disabled so ``/metrics`` exposes the platform's registry only.
"""

from __future__ import annotations

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
from mlplatform.serving.metrics import RefusalCounter
from mlplatform.serving.process import settle_server_process
from mlplatform.serving.route import PredictRoute

if TYPE_CHECKING:
    from mlplatform.serving.predictor import Predictor

MODEL_ENV = "MLPLATFORM_SERVE_MODEL"
"""Which model the service serves: BentoML imports this module itself, so the name cannot come from argv."""

TRACING_EXCLUDED_PATHS = ("/metrics", "/status", "/livez", "/readyz")
"""Paths BentoML's OpenTelemetry middleware lets through untouched.  It opens a span per request even with no
exporter configured; on a one-entity prediction that was about a seventh of the worker's CPU (py-spy at
200 requests/s), for spans nobody receives.  Request ids and the platform's metrics already trace a request.
(``POST /predict`` never reaches it: ``PlatformService`` answers it in front.)"""

log = logging.getLogger("mlplatform.serving.bentoml")


class _Current:
    """The Predictor of this worker process, set when BentoML creates the service instance."""

    predictor: Predictor | None = None


def _predictor() -> Predictor:
    if _Current.predictor is None:
        raise RuntimeError("the service instance has not been created yet")
    return _Current.predictor


def create_app() -> Starlette:
    """Metrics and status; handlers look the Predictor up per request (it exists once BentoML started the service).

    ``POST /predict`` is not among the routes: ``predict_route`` answers it ahead of BentoML's own stack and of this
    app.  A plain Starlette app: two fixed routes need no FastAPI dependency solving or OpenAPI.  Both are probes
    and scrapes, open without the bearer token (``logs.PROBE_PATHS``), so no token gate sits in front of them."""

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

    return Starlette(
        routes=[
            Route("/metrics", metrics, methods=["GET"]),
            Route("/status", status, methods=["GET"]),
        ],
        middleware=[
            Middleware(logs.RequestLog, sample=_access_log_rate),
        ],
    )


def predict_route(app: Any) -> PredictRoute:
    """``POST /predict`` answered ahead of BentoML's whole app (``PlatformService``); every other request goes on
    to ``app``."""
    return PredictRoute(app, "/predict", lambda: _Current.predictor, "entities", _access_log_rate)


class PlatformService(bentoml.Service[Any]):  # type: ignore[misc]
    """BentoML's service with the prediction route in front of the ASGI app it builds for each worker.

    Why in front rather than among its user middlewares (``add_asgi_middleware``): BentoML places those inside its
    own, and its request timeout wraps every request in a task of its own with a 30 s timer: with the tracing
    middleware's URL check, about 0.05 ms of CPU per prediction, a tenth of the worker's (docs/serving.md, sixth
    pass).  A prediction is bounded without it: scoring off the event loop has ``serving.scoring_timeout_s``, on
    it every store read has ``serving.loop_read_timeout_s``.  ``service_class`` is ``bentoml.service``'s
    parameter for this."""

    def to_asgi(self, is_main: bool = True) -> Any:
        return predict_route(super().to_asgi(is_main))


def _access_log_rate() -> float:
    """``serving.access_log`` once the service exists (the app is built at import, before any settings)."""
    return _Current.predictor.settings.serving.access_log if _Current.predictor is not None else 0.0


def _count_refused(status: int) -> None:
    """Counted once the service exists (BentoML may answer its probes before that)."""
    predictor = _Current.predictor
    if predictor is not None:
        predictor.count_error_response(status)


@bentoml.service(
    name="mlplatform-model",
    service_class=PlatformService,
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
        settle_server_process(settings)

    def __is_ready__(self) -> bool:
        return self.predictor.ready

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def flush(self) -> None:
        """Graceful shutdown (SIGTERM): stop polling and write out the queued prediction log records."""
        self.predictor.close()
        log.info("prediction log flushed")


# Around BentoML's whole app but the prediction route, not only the mounted one: BentoML answers unknown paths and
# its own routes itself.  The decorators made the class a ``bentoml.Service``, which its stubs do not say.
cast(Any, ModelService).add_asgi_middleware(RefusalCounter, refused=_count_refused)
