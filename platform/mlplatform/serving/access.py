"""Who may ask a model server for predictions: anyone who reaches it locally, or holders of one bearer token.

Locally the servers bind to loopback and need no token.  In a cluster, NetworkPolicies name the clients that may
reach a server, and ``serving.auth_token_file`` (a Secret mounted as a file) adds a token on top: a pod that gets
past the policy still cannot score (or flood the prediction log) without it.  Health, readiness and metrics stay
open, since the kubelet and Prometheus carry no token.

The check runs as ASGI middleware in front of every route of both servers, so a refused request is answered
before a byte of its body is read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from mlplatform import bodies, logs

MIN_TOKEN_CHARS = 16
"""A shorter token could be guessed; the same floor as the alert webhook's."""

UNAUTHORIZED_BODY = orjson.dumps({"error": "authorization: a bearer token is required (serving.auth_token_file)"})
UNAUTHORIZED_CHALLENGE = (b"www-authenticate", b"Bearer")
"""The 401's body and challenge header, whichever layer refuses (``BearerGate``, ``serving.route.PredictRoute``)."""


class ServingTokenError(ValueError):
    """The configured token file cannot be used; the server refuses to start rather than run open."""


def read_token(path: Path | None) -> bytes | None:
    """The bearer token in ``path`` (surrounding whitespace dropped), or ``None`` when no file is configured.

    A missing, unreadable, empty or short file is an error: a server told to require a token must not start
    without one."""
    if path is None:
        return None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise ServingTokenError(f"serving.auth_token_file {path} cannot be read: {type(error).__name__}") from None
    if len(token) < MIN_TOKEN_CHARS:
        raise ServingTokenError(
            f"serving.auth_token_file {path} holds {len(token)} characters; a token needs at least {MIN_TOKEN_CHARS}"
        )
    return token.encode()


class BearerGate:
    """ASGI middleware: a request without the token gets a 401, body unread; probes and scrapes
    (``logs.PROBE_PATHS``) stay open.

    ``token`` is looked up per request (``None``: no token required), because BentoML builds the app before the
    service that reads the settings exists; ``on_refused`` counts the refusal in the server's metrics."""

    def __init__(self, app: Any, token: Callable[[], bytes | None], on_refused: Callable[[], None]) -> None:
        self.app = app
        self.token = token
        self.on_refused = on_refused

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        token = self.token() if scope["type"] == "http" else None
        # The kubelet and Prometheus carry no token.
        if scope["type"] != "http" or scope["path"] in logs.PROBE_PATHS or authorized(scope, token):
            await self.app(scope, receive, send)
            return
        self.on_refused()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(UNAUTHORIZED_BODY)).encode()),
            UNAUTHORIZED_CHALLENGE,
        ]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": UNAUTHORIZED_BODY})


def authorized(scope: Any, token: bytes | None) -> bool:
    """Whether the request ``scope`` may be answered: no token is required, or its ``Authorization`` header carries
    it."""
    return token is None or bodies.bearer_matches(bodies.header(scope, b"authorization"), token)
