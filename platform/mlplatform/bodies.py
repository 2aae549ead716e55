"""Request bodies read with a bound and parsed without surprises, for every HTTP boundary: the model servers and the
alert webhook read through ``read_capped`` and ``load_json`` (turning their errors into their own 413 and 4xx
answers), and the web app puts ``BodyLimit`` in front of every other route.

Why one place: the model servers and the API must refuse the same hostile bodies the same way, and neither may
hold more of a body than its limit or let Python's JSON parser raise anything but a clear refusal.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import AsyncIterable, Collection
from typing import Any

import orjson

_LONG_DIGIT_RUN = re.compile(rb"[0-9]{19}")


class OversizedBodyError(ValueError):
    """The body's declared length or its bytes received so far passed the limit; the message says which."""


class UnparsableJsonError(ValueError):
    """The body is not a JSON document Python can hold; the message says why, never echoing the body."""


async def read_capped(chunks: AsyncIterable[bytes], declared_length: str | None, limit: int) -> bytes:
    """The whole body, refused once its declared length or the bytes received so far pass ``limit``.

    Both checks: a client may send no Content-Length (chunked) or a false one; counting while receiving bounds the
    memory either way, and checking the header first spares reading anything of an honest oversized request.
    """
    declared = _declared_length(declared_length)
    if declared is not None and declared > limit:
        raise OversizedBodyError(f"body: {declared} bytes exceed the limit of {limit}")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise OversizedBodyError(f"body: more than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _declared_length(value: str | None) -> int | None:
    """A Content-Length header's byte count, or None when there is none (or it is not a number)."""
    return int(value) if value is not None and value.strip().isdigit() else None


def load_json(raw: bytes) -> Any:
    """The parsed document; everything Python's parser refuses is an ``UnparsableJsonError`` naming why.

    ``json.loads`` raises more than ``JSONDecodeError``: ``UnicodeDecodeError`` for bytes that are not UTF-8,
    ``ValueError`` for integers beyond Python's 4300-digit conversion limit, ``RecursionError`` for arrays or objects
    nested about a thousand deep.

    orjson parses first, about 2 us quicker on a model server's one-entity body.  What it refuses (NaN literals,
    text that is not UTF-8, nesting past 1024) and bodies with a run of 19 digits (orjson reads an integer past 64
    bits as a float, where the entity checks must see the integer) go to ``json.loads``, so every body parses to
    what it did and every refusal keeps its message.
    """
    if _LONG_DIGIT_RUN.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise UnparsableJsonError(json_refusal(error)) from None


def json_refusal(error: ValueError | RecursionError) -> str:
    """Why ``json.loads`` refused a body, as a message that never echoes it (also for FastAPI's own parsing, which
    answers everything but ``JSONDecodeError`` with a generic 400)."""
    if isinstance(error, UnicodeDecodeError):
        return f"body: not UTF-8 text ({error.reason} at byte {error.start})"
    if isinstance(error, json.JSONDecodeError):
        return f"body: not valid JSON ({error})"
    if isinstance(error, RecursionError):
        return "body: nested too deeply"
    return f"body: a number in it is out of range ({error})"  # the integer digit limit


class BodyLimit:
    """ASGI middleware: a request body longer than its route's limit is answered 413 (a problem document) before
    the application reads it, so no route buffers or parses it and no authentication work is spent on it.

    ``exempt`` lists the ``(method, path)`` of routes that bound their bodies themselves (the uploads and the alert
    webhook answer in their own words). The declared Content-Length is checked first; a body without one
    (chunked) is counted as it arrives and cut off at the limit.
    """

    def __init__(self, app: Any, limit: int, exempt: Collection[tuple[str, str]]) -> None:
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = _declared_length(header(scope, b"content-length"))
        if declared is not None and declared > self.limit:
            await _too_large(send, scope["path"], f"the body's {declared} bytes exceed the limit of {self.limit}")
            return
        exchange = _BoundedExchange(scope["path"], receive, send, self.limit)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception:
            if not exchange.answered:
                raise
            # The 413 is sent; what the application raised on finding the client gone changes nothing.


class _BoundedExchange:
    """``receive`` and ``send`` for the application: once the body passes ``limit``, the 413 is sent, the
    application is told the client left (so it stops reading) and whatever it answers after that is dropped."""

    def __init__(self, path: str, receive: Any, send: Any, limit: int) -> None:
        self.path, self._receive, self._send, self.limit = path, receive, send, limit
        self.received = 0
        self.started = self.answered = False

    async def receive(self) -> Any:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                if not self.started and not self.answered:
                    self.answered = True
                    await _too_large(self._send, self.path, f"the body exceeds the limit of {self.limit} bytes")
                return {"type": "http.disconnect"}
        return message

    async def send(self, message: Any) -> None:
        if self.answered:
            return
        self.started = self.started or message["type"] == "http.response.start"
        await self._send(message)


def bearer_matches(authorization: str | None, expected: bytes) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <expected>``, compared in constant time (the model
    servers' token and the alert webhook's)."""
    scheme, _, presented = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), expected)


def header(scope: Any, name: bytes) -> str | None:
    """The value of an ASGI request's header ``name`` (lower-case bytes), or None."""
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _too_large(send: Any, path: str, detail: str) -> None:
    body = json.dumps(
        {"type": "/problems/too-large", "title": "Content Too Large", "status": 413, "detail": detail, "instance": path}
    ).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
