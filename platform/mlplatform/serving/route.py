"""The prediction route of both model servers, answered in one ASGI layer ahead of each framework's stack.

Why one layer: the request-id, refusal-counting and token middlewares each wrapped the answer's ``send`` in a
closure of its own, and BentoML's stack adds its tracing, timeout and context middlewares, its routing, a mount
and a second Starlette app with ``Request`` and ``JSONResponse`` objects: tens of microseconds per prediction on
a path whose floor is a few hundred (docs/serving.md, sixth pass).  ``PredictRoute`` does for ``POST <path>``
exactly what those layers did, in one pass: the same ``X-Request-ID`` and access line as ``logs.RequestLog``, the
same 401 as ``access.BearerGate``, the same counts as ``metrics.RefusalCounter``, the Predictor's statuses and
messages.  Every other request (probes, metrics, v2, unknown paths) goes on to the framework's stack, where those
middlewares still run.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import orjson

from mlplatform import bodies, logs
from mlplatform.serving.access import UNAUTHORIZED_BODY, UNAUTHORIZED_CHALLENGE, authorized

if TYPE_CHECKING:
    from mlplatform.serving.predictor import Predictor

JSON = (b"content-type", b"application/json")
METHOD_NOT_ALLOWED_BODY = orjson.dumps({"error": "Method Not Allowed: predictions are POST requests"})
STARTING_BODY = orjson.dumps({"error": "the model server is starting: try again shortly"})


class PredictRoute:
    """ASGI middleware answering requests to ``path`` itself (a 405 for any method but POST) and passing every other
    request to ``app``.

    ``predictor`` is looked up per request (``None`` until the server has built it: BentoML builds its app before
    the service instance, and a request then gets a 503); ``field`` names the request's entity list
    (``instances`` for KServe's v1, ``entities`` for BentoML); ``sample`` is the share of successes that write an
    access line (``serving.access_log``)."""

    def __init__(
        self,
        app: Any,
        path: str,
        predictor: Callable[[], Predictor | None],
        field: str,
        sample: Callable[[], float],
    ) -> None:
        self.app = app
        self.path = path
        self.predictor = predictor
        self.field = field
        self.sample = sample

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        context = logs.begin_request(scope)
        accepted = context.request_id
        began = time.perf_counter()
        status = 500
        started = False
        predictor = self.predictor()
        try:
            status, payload, extra = await self._answer(predictor, scope, receive, accepted)
            if status >= 400 and predictor is not None:
                predictor.count_error_response(status)
            headers = [JSON, (b"content-length", str(len(payload)).encode()), *extra]
            headers.append(logs.answered_request_id(context, accepted))
            started = True
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
        except Exception:
            # Counted as the server's own handler answers it (500, outside this layer), like RefusalCounter does:
            # only when no answer had begun (a client gone mid-answer already had its status counted).
            if predictor is not None and not started:
                predictor.count_error_response(500)
            raise
        finally:
            logs.write_access_line(scope, status, began, context, self.sample())

    async def _answer(
        self, predictor: Predictor | None, scope: Any, receive: Any, request_id: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """Status, JSON body and extra headers; a ``ServingError`` is its status with ``{"error": message}``."""
        from mlplatform.serving.errors import ServingError
        from mlplatform.serving.wire import response_body

        if scope["method"] != "POST":
            return 405, METHOD_NOT_ALLOWED_BODY, [(b"allow", b"POST")]
        if predictor is None:
            return 503, STARTING_BODY, []
        if not authorized(scope, predictor.token):
            predictor.count_unauthorized()
            return 401, UNAUTHORIZED_BODY, [UNAUTHORIZED_CHALLENGE]
        declared = bodies.header(scope, b"content-length")
        try:
            result = await predictor.predict_stream(_body_chunks(receive), declared, request_id, self.field)
        except ServingError as error:
            return error.status, orjson.dumps({"error": error.message}), []
        return 200, orjson.dumps(response_body(result, predictor.spec.entity_key)), []


async def _body_chunks(receive: Any) -> AsyncIterator[bytes]:
    """The request body's chunks as the ASGI server delivers them (the caller decides when to stop reading)."""
    while True:
        message = await receive()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return
