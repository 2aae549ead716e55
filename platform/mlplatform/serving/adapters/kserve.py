"""KServe 0.21 adapter: a ``kserve.Model`` and ``ModelServer`` around the Predictor, and the v1 fast path.

The entry point ``serving/kserve/server.py`` parses arguments, builds the Predictor and calls ``serve``.  Request
formats and status codes are documented in ``serving/kserve/README.md``.

Why a small ``ModelServer`` subclass: stock KServe binds HTTP to ``0.0.0.0``, always starts gRPC, refuses to
start without a ready model and serves the global Prometheus registry on ``/metrics``.  The platform binds to
``settings.serving.host``, starts gRPC only when ``settings.serving.grpc_port`` is set, starts unready (503 with
the reason) when no model can be loaded yet, and serves its own ``ServingMetrics`` registry.  It also writes no
line per request: stock KServe logs an access line and two timing lines for every call (a third of a millisecond
of CPU each time, and a full disk at a few hundred requests/s); the platform's metrics and prediction log say
more, at a fraction of the cost (``serving.access_log`` turns sampled access lines on; refusals and errors
always log, through ``mlplatform.logs``).  v1 predictions are answered by ``v1_route`` ahead of KServe's FastAPI
routing and data plane, which cost as much CPU as the prediction itself (figures in docs/serving.md).

KServe's private hooks overridden here (``RESTServer._add_middlewares``, ``RESTServer._add_exception_handlers``,
``ModelServer._rest_server``/``_grpc_server``/``servers``/``setup_event_loop``/``_serve``) are checked against the
pinned version by ``tests/unit/test_private_hooks.py``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlplatform import bodies, logs
from mlplatform.serving.access import BearerGate
from mlplatform.serving.route import PredictRoute

if TYPE_CHECKING:
    from fastapi import FastAPI

    from mlplatform.serving.predictor import Predictor

log = logging.getLogger("mlplatform.serving.kserve")


def build_model(predictor: Predictor) -> Any:
    """A ``kserve.Model`` named after the platform model, answering v2 requests through ``predictor`` (v1 requests
    are ``v1_route``'s)."""
    import kserve
    from kserve import InferOutput, InferRequest, InferResponse
    from kserve.model import InferenceVerb

    from mlplatform.serving.errors import InvalidRequestError
    from mlplatform.serving.wire import checked_request_id, v2_entities, v2_output_types, v2_response

    class PlatformModel(kserve.Model):  # type: ignore[misc]
        """Readiness is the Predictor's (a model is loaded); ``load`` never blocks (the poller loads)."""

        def __init__(self) -> None:
            super().__init__(predictor.name)

        @property
        def ready(self) -> bool:
            return predictor.ready

        @ready.setter
        def ready(self, _value: bool) -> None:
            """KServe sets ``ready`` on start/stop; the Predictor alone decides it."""

        def load(self) -> bool:
            return predictor.ready

        def validate(self, payload: Any) -> Any:
            """The Predictor validates (422 naming the field); KServe's own check would answer 400."""
            return payload

        async def __call__(
            self, body: Any, headers: dict[str, str] | None = None, verb: Any = InferenceVerb.PREDICT
        ) -> tuple[Any, dict[str, str]]:
            """Straight to the Predictor, off the event loop (v2 over REST and gRPC come through here).  KServe's
            own ``__call__`` times pre-processing, predict and post-processing into histograms of the global
            registry, which ``/metrics`` does not serve (the Predictor's stage histograms are the platform's): three
            timers and three label lookups per request for series nobody reads.  Pre- and post-processing are
            identities."""
            if verb != InferenceVerb.PREDICT:
                raise NotImplementedError(f"{predictor.name}: only predict is served, not {verb}")
            if not isinstance(body, InferRequest):
                raise InvalidRequestError("body: this model answers v2 inference requests here (v1: :predict)")
            entities = v2_entities(body, predictor.spec.entity_key, predictor.spec.label.request_columns)
            header_id = logs.current_request_id() or (headers or {}).get("x-request-id")  # REST: the checked one
            request_id = checked_request_id(body.id or header_id, "id" if body.id else "x-request-id header")
            result = await predictor.predict_off_loop(entities, request_id)
            return v2_response(result, InferOutput, InferResponse), {}

        def get_input_types(self) -> list[dict[str, Any]]:
            spec = predictor.spec
            return [
                {"name": spec.entity_key, "datatype": "INT64", "shape": [-1]},
                *({"name": column, "datatype": "FP64", "shape": [-1]} for column in spec.label.request_columns),
            ]

        def get_output_types(self) -> list[dict[str, Any]]:
            return v2_output_types(predictor.spec.task)

    return PlatformModel()


def v1_route(app: Any, predictor: Predictor) -> PredictRoute:
    """``POST /v1/models/<name>:predict`` answered ahead of FastAPI's routing and KServe's data plane (and of the
    platform's own middlewares, which the route does the work of); every other request goes on to ``app``.

    Why: for a one-entity request the route, dependency solving, exception and exit-stack middlewares, the data
    plane's readiness check, decode and encode, and the response class cost about as much CPU as the whole
    Predictor.  The v1 body is the platform's own JSON, parsed and answered as BentoML's server does (the same
    statuses and messages); v2 keeps KServe's codec, which the Open Inference Protocol needs."""
    settings = predictor.settings.serving
    path = f"/v1/models/{predictor.name}:predict"
    return PredictRoute(app, path, lambda: predictor, "instances", lambda: settings.access_log)


def install_platform_routes(app: FastAPI, predictor: Predictor) -> None:
    """Routes registered before KServe's own so they win: our metrics registry, readiness that means "model loaded".

    The error handlers are added by ``install_error_handlers`` after KServe's (the last registration wins).
    """
    from fastapi import Response
    from fastapi.responses import JSONResponse

    from mlplatform.serving.metrics import render_metrics

    async def metrics() -> Response:
        body, content_type = render_metrics(predictor.metrics)
        return Response(content=body, media_type=content_type)

    async def live() -> JSONResponse:
        return JSONResponse({"live": True})

    async def ready() -> JSONResponse:
        if predictor.ready and predictor.model is not None:
            model = predictor.model
            return JSONResponse(
                {"ready": True, "model": model.name, "version": model.version, "from_cache": model.from_cache}
            )
        return JSONResponse({"ready": False, "reason": predictor.reason}, status_code=503)

    async def no_repository(model_name: str) -> JSONResponse:
        """KServe's model repository would load or unload models on request, unauthenticated: here the platform
        alone decides what is served (the alias), so these routes answer as routes that do not exist."""
        message = f"model repository: not served here; {predictor.name}@{predictor.alias} is loaded by the platform"
        return JSONResponse({"error": message}, status_code=404)

    # response_model=None: FastAPI would otherwise resolve each handler's return annotation, a name imported in
    # this function that it cannot find, and fail every /openapi.json request with a 500.
    for verb in ("load", "unload"):
        path = f"/v2/repository/models/{{model_name}}/{verb}"
        app.add_api_route(path, no_repository, methods=["POST"], response_model=None)
    app.add_api_route("/metrics", metrics, methods=["GET"], response_model=None)
    app.add_api_route("/livez", live, methods=["GET"], response_model=None)
    app.add_api_route("/readyz", ready, methods=["GET"], response_model=None)
    app.add_api_route("/v2/health/ready", ready, methods=["GET"], response_model=None)


def install_error_handlers(app: FastAPI, predictor: Predictor) -> None:
    """``ServingError`` -> its status with ``{"error": message}`` (KServe's body shape), never a traceback; and
    KServe's own "model not ready" (raised before our code runs) -> 503 carrying the Predictor's reason."""
    from fastapi.exception_handlers import http_exception_handler
    from fastapi.responses import JSONResponse
    from kserve.errors import ModelNotFound, ModelNotReady
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from mlplatform.serving.errors import ServingError

    async def serving_error(_: Any, error: Exception) -> JSONResponse:
        assert isinstance(error, ServingError)
        return JSONResponse({"error": error.message}, status_code=error.status)

    async def not_ready(_: Any, _error: Exception) -> JSONResponse:
        message = f"no model loaded for {predictor.name}@{predictor.alias}: {predictor.reason}"
        return JSONResponse({"error": message}, status_code=503)

    async def not_found(_: Any, _error: Exception) -> JSONResponse:
        """An unknown model name (never echoed: it may be kilobytes) and the verbs and versioned routes the
        platform model does not serve (KServe answers those 501, a server error for a client's request)."""
        message = f"not served here: this server answers {predictor.name} (v1 :predict, v2 /infer)"
        return JSONResponse({"error": message}, status_code=404)

    async def http_error(request: Any, error: Exception) -> Any:
        """FastAPI's generic 400 for a body its JSON parser raised on, as the 422 saying why that v1 gives."""
        assert isinstance(error, StarletteHTTPException)
        cause = error.__cause__
        if error.status_code == 400 and isinstance(cause, ValueError | RecursionError):
            return JSONResponse({"error": bodies.json_refusal(cause)}, status_code=422)
        return await http_exception_handler(request, error)

    app.add_exception_handler(ServingError, serving_error)
    app.add_exception_handler(ModelNotReady, not_ready)
    app.add_exception_handler(ModelNotFound, not_found)
    app.add_exception_handler(NotImplementedError, not_found)
    app.add_exception_handler(StarletteHTTPException, http_error)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop where it is installed (as uvicorn's ``loop="auto"`` picks), else asyncio's.

    Why: KServe starts its servers inside ``asyncio.run``, so uvicorn's own choice never applies and the server ran
    on asyncio's pure-Python loop; uvloop's handles the same sockets, timers and thread wake-ups with a fraction
    of the CPU per request (figures in docs/serving.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def serve(predictor: Predictor) -> None:
    """Run the HTTP (and optional gRPC) server until SIGTERM/SIGINT, then flush the prediction log."""
    from kserve import model_server
    from kserve.model_server import ModelServer
    from kserve.protocol.grpc.server import GRPCServer
    from kserve.protocol.rest.server import RESTServer

    from mlplatform.serving.metrics import RefusalCounter

    settings = predictor.settings.serving

    class PlatformRESTServer(RESTServer):  # type: ignore[misc]
        def _add_middlewares(self, app: FastAPI) -> None:
            """From the outside in: the v1 prediction route (which does the next three's work itself); the
            request id and access lines (``serving.access_log``), the refusal counter, the bearer-token gate (no
            body is read before it), the body limit; not stock KServe's per-request timing log lines, which are
            what our histograms already measure."""
            app.add_middleware(bodies.BodyLimit, limit=settings.max_body_kb * 1024, exempt=[])
            app.add_middleware(BearerGate, token=lambda: predictor.token, on_refused=predictor.count_unauthorized)
            app.add_middleware(RefusalCounter, refused=predictor.count_error_response)
            app.add_middleware(logs.RequestLog, sample=lambda: settings.access_log)
            app.add_middleware(v1_route, predictor=predictor)

        def _add_exception_handlers(self, app: FastAPI) -> None:
            super()._add_exception_handlers(app)
            install_error_handlers(app, predictor)

    class PlatformModelServer(ModelServer):  # type: ignore[misc]
        def start(self, models: list[Any]) -> None:
            for model in models:
                self.register_model(model)
            rest = PlatformRESTServer(
                "kserve.model_server:app",
                self.dataplane,
                self.model_repository_extension,
                self.http_port,
                grace_period=self.grace_period,
                timeout_keep_alive=self.timeout_keep_alive,
            )
            rest.config.host = settings.host
            logs.adopt_server_loggers()  # KServe configured its own handlers when the server was built
            self._rest_server = rest
            self.servers.append(rest.start())
            if self.enable_grpc:
                self._grpc_server = GRPCServer(
                    self.grpc_port,
                    self.dataplane,
                    self.model_repository_extension,
                    kwargs=vars(model_server.args),
                    grace_period=self.grace_period,
                )
                self.servers.append(self._grpc_server.start(self.max_threads))
            # uvicorn handles SIGTERM/SIGINT while it runs and re-raises them afterwards: this handler then stops
            # gRPC (if any) instead of killing the process before the prediction log is flushed.
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._after_http_stopped)
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                asyncio.set_event_loop(runner.get_loop())  # KServe's set-up configures the loop that serves
                self.setup_event_loop()
                runner.run(self._serve())

        def _after_http_stopped(self, sig: int, _frame: Any) -> None:
            if self._grpc_server is not None:
                asyncio.get_running_loop().create_task(self._grpc_server.stop(sig))

    if predictor.token is not None and settings.grpc_port is not None:
        raise SystemExit("serving.auth_token_file guards HTTP only: unset serving.grpc_port, or the token")
    install_platform_routes(model_server.app, predictor)
    server = PlatformModelServer(
        http_port=settings.port,
        grpc_port=settings.grpc_port or 8081,
        enable_grpc=settings.grpc_port is not None,
        enable_latency_logging=False,
        grace_period=10,
    )
    try:
        server.start([build_model(predictor)])
    finally:
        predictor.close()
        log.info("prediction log flushed; server stopped")
