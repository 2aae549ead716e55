"""Logging in and out: the password check under the rate limit, the session cookie, and the audit of each attempt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Request, Response

from mlplatform.operations.access import Principal, client_address, record
from mlplatform.operations.problems import Problem
from mlplatform.operations.services import ApiServices
from mlplatform.store.audit import RESULT_DENIED, RESULT_FAILED, RESULT_OK
from mlplatform.store.auth import User

if TYPE_CHECKING:
    from mlplatform.operations.security import SessionData


def login(
    request: Request, response: Response, services: ApiServices, username: str, password: str
) -> tuple[User, SessionData]:
    """Check a password under the rate limit and start a session on ``response``; every attempt is audited."""
    client = client_address(request) or "unknown"
    wait = services.limiter.retry_after(username, client)
    if wait:
        services.metrics.login_failures.labels("rate_limited").inc()
        record(request, username, "session.login", username, RESULT_DENIED, reason="rate limited")
        raise Problem(
            429, "too many failed logins; try again later", slug="rate-limited", headers={"Retry-After": str(wait)}
        )
    user = services.auth.verify_password(username, password)
    if user is None:
        services.limiter.failed(username, client)
        services.metrics.login_failures.labels("bad_credentials").inc()
        record(request, username, "session.login", username, RESULT_FAILED, reason="bad credentials")
        raise Problem(401, "unknown user or wrong password", slug="unauthenticated")
    services.limiter.succeeded(username, client)
    session = services.sessions.start(response, user.id)
    record(request, user.username, "session.login", user.username, RESULT_OK)
    return user, session


def logout(request: Request, response: Response, services: ApiServices, principal: Principal) -> None:
    """End the caller's session on the server (copies of its cookie stop working too) and drop the cookie."""
    services.sessions.end(response, principal.session_key)
    record(request, principal.username, "session.logout", principal.username, RESULT_OK)
