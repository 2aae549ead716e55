"""Request dependencies: who is calling, may they do this, and the audit record of the answer.

Reads need ``require(role)``.  Mutating routes use ``permit(action, role)``, which also writes an audit event when
it refuses (unauthenticated, wrong role, missing CSRF token) and checks the CSRF token of cookie sessions; the
route itself records the outcome of an allowed action with ``record``.

The REST routers and the UI's pages and forms share these FastAPI dependencies, so they sit here, below both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import Depends, Request

from mlplatform.operations.problems import Problem
from mlplatform.operations.security import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, csrf_matches
from mlplatform.operations.services import ApiServices
from mlplatform.store.audit import RESULT_DENIED, RESULT_UNAUTHENTICATED, AuditEvent
from mlplatform.store.auth import User, role_allows

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
TARGET_PARAMS = ("name", "model", "username", "token_id")
# Set on the dependencies ``require``/``permit`` return, so the API reference can say which role each route needs.
ROLE_ATTRIBUTE = "mlplatform_required_role"
# Set on the dependencies ``permit`` returns: the audited action, so a request can be authenticated for it before
# its body is read (``mlplatform.api.early_auth``), which then leaves the caller in the request's scope.
ACTION_ATTRIBUTE = "mlplatform_audited_action"
PRINCIPAL_SCOPE_KEY = "mlplatform.principal"


def required_role(dependency: Callable[..., Any]) -> str | None:
    """The role a ``require``/``permit`` dependency checks for; None for any other callable."""
    role = getattr(dependency, ROLE_ATTRIBUTE, None)
    return role if isinstance(role, str) else None


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and the role in force for this request (a token may hold less than its user)."""

    user: User
    role: str
    via: Literal["token", "session"]
    csrf: str | None = None
    token_id: int | None = None  # the API token the request came with (via "token")
    session_key: str | None = None  # the browser session it came with (via "session"): logout revokes it

    @property
    def username(self) -> str:
        return self.user.username


def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _unauthenticated(detail: str) -> Problem:
    return Problem(401, detail, slug="unauthenticated", headers={"WWW-Authenticate": 'Bearer realm="mlplatform"'})


def authenticate(request: Request, services: ApiServices) -> Principal | None:
    """The caller from a Bearer token or a session cookie; a presented but bad token is a 401, never anonymous."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise _unauthenticated("use 'Authorization: Bearer <token>'")
        identity = services.auth.authenticate_token(credential.strip())
        if identity is None:
            raise _unauthenticated("the token is unknown, expired or revoked")
        return Principal(user=identity.user, role=identity.role, via="token", token_id=identity.token.id)
    session = services.sessions.read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    user = services.auth.get_user_by_id(session.user_id)
    if user is None or not user.active:
        return None
    return Principal(user=user, role=user.role, via="session", csrf=session.csrf, session_key=session.key)


def audit_target(request: Request) -> str:
    """What a refused request aimed at: the model, user or token in its path, else the path itself."""
    params = request.path_params
    parts = [str(params[key]) for key in TARGET_PARAMS if key in params]
    if "version" in params:
        parts.append(f"v{params['version']}")
    return "/".join(parts) or request.url.path


def record(
    request: Request,
    actor: str,
    action: str,
    target: str,
    result: str,
    **fields: Any,
) -> AuditEvent:
    """Write one audit event for this request (client address included) and count it."""
    services = get_services(request)
    event = services.audit.record(
        actor=actor, action=action, target=target, result=result, client=client_address(request), **fields
    )
    services.metrics.audit_events.labels(result).inc()
    return event


def require(role: str) -> Callable[[Request], Principal]:
    """A read dependency: any authenticated caller holding ``role``."""

    def dependency(request: Request) -> Principal:
        principal = authenticate(request, get_services(request))
        if principal is None:
            raise _unauthenticated("authentication required: a Bearer token or a session")
        if not role_allows(principal.role, role):
            raise Problem(403, f"this needs the {role} role; you have {principal.role}", slug="forbidden")
        return principal

    setattr(dependency, ROLE_ATTRIBUTE, role)
    return dependency


async def submitted_csrf(request: Request) -> str | None:
    """The CSRF token sent with the request: header first, else the form field of a posted form."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.headers.get("content-type", "").startswith(FORM_TYPES):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def authenticate_to_act(request: Request, action: str) -> Principal:
    """The caller of a mutating route, else a 401 written to the audit log as a refusal of ``action``."""
    services = get_services(request)
    target = audit_target(request)
    try:
        principal = authenticate(request, services)
    except Problem:
        record(request, "anonymous", action, target, RESULT_UNAUTHENTICATED, reason="invalid credentials")
        raise
    if principal is None:
        record(request, "anonymous", action, target, RESULT_UNAUTHENTICATED, reason="no credentials")
        raise _unauthenticated("authentication required: a Bearer token or a session")
    return principal


def signed_in(action: str) -> Callable[[Request], Principal]:
    """A dependency that authenticates the caller of ``action`` (a 401, audited, otherwise) and leaves it for
    ``permit``: listed before a dependency that reads a large body (an upload form), so nobody unauthenticated
    gets one read."""

    def dependency(request: Request) -> Principal:
        principal = authenticate_to_act(request, action)
        request.scope[PRINCIPAL_SCOPE_KEY] = principal
        return principal

    return dependency


def permit(action: str, role: str) -> Callable[..., Principal]:
    """A mutating-route dependency: authenticated, role checked, CSRF checked for sessions; refusals audited."""

    def dependency(request: Request, csrf: str | None = Depends(submitted_csrf)) -> Principal:
        target = audit_target(request)
        principal: Principal = request.scope.get(PRINCIPAL_SCOPE_KEY) or authenticate_to_act(request, action)
        if not role_allows(principal.role, role):
            record(request, principal.username, action, target, RESULT_DENIED, reason=f"needs role {role}")
            raise Problem(403, f"this needs the {role} role; you have {principal.role}", slug="forbidden")
        if principal.via == "session" and not csrf_matches(principal.csrf or "", csrf):
            record(request, principal.username, action, target, RESULT_DENIED, reason="missing or wrong CSRF token")
            raise Problem(
                403,
                f"a session request that changes state must carry the {CSRF_HEADER} header or {CSRF_FIELD} field",
                slug="csrf",
                title="CSRF token missing or invalid",
            )
        return principal

    setattr(dependency, ROLE_ATTRIBUTE, role)
    setattr(dependency, ACTION_ATTRIBUTE, action)
    return dependency
