"""Optional single sign-on with an OpenID Connect provider (authorization code flow with PKCE, through authlib).

``/login`` sends the browser to the provider; ``/callback`` exchanges the code, has authlib verify the ID token
(signature against the provider's JWKS, issuer, audience, expiry, nonce), maps a claim to a platform role, creates or
updates the local user (marked with the provider's issuer, no password) and starts the same signed session cookie as
a password login.  Everything is configured under ``api.oidc``; with no issuer both routes answer 404.

The flow's state, nonce and PKCE verifier travel in a short-lived signed cookie scoped to these routes rather than a
server-side session store, so any API replica can finish a login another one started.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import httpx
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool

from mlplatform.api.problems import PROBLEM_RESPONSES, problem_responses
from mlplatform.operations.access import get_services, record
from mlplatform.operations.problems import Problem
from mlplatform.operations.security import session_secret
from mlplatform.operations.services import ApiServices
from mlplatform.store.audit import RESULT_FAILED, RESULT_OK
from mlplatform.store.auth import ROLES, USERNAME_PATTERN, AuthStoreError

if TYPE_CHECKING:
    from mlplatform.config import OidcSettings, Settings

PREFIX = "/api/v1/auth/oidc"
FLOW_COOKIE = "mlp_oidc_flow"
FLOW_TTL_S = 600
CLOCK_LEEWAY_S = 60
router = APIRouter(prefix=PREFIX, tags=["auth"], responses=PROBLEM_RESPONSES)
Services = Annotated[ApiServices, Depends(get_services)]


def _oidc(services: ApiServices) -> OidcSettings:
    oidc = services.settings.api.oidc
    if not oidc.enabled:
        raise Problem(404, "single sign-on is not configured (api.oidc.issuer)", slug="sso-disabled")
    return oidc


def redirect_uri(settings: Settings) -> str:
    """Built from the configured public URL, never from the request's Host header (which a client controls)."""
    return f"{settings.api.resolved_public_url()}{PREFIX}/callback"


def _provider(request: Request, oidc: OidcSettings) -> Any:
    """authlib's client for the provider, one per app; its discovery document and keys are fetched on first use."""
    provider = getattr(request.app.state, "oidc_provider", None)
    if provider is None:
        from authlib.integrations.starlette_client import OAuth  # type: ignore[import-untyped]

        registry = OAuth()
        registry.register(
            "oidc",
            client_id=oidc.client_id,
            client_secret=oidc.client_secret.get_secret_value() if oidc.client_secret else None,
            server_metadata_url=f"{(oidc.issuer or '').rstrip('/')}/.well-known/openid-configuration",
            client_kwargs={"scope": oidc.scopes, "code_challenge_method": "S256"},
        )
        provider = registry.create_client("oidc")
        request.app.state.oidc_provider = provider
    return provider


def _flow_serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(session_secret(settings), salt="mlplatform.oidc-flow")


def _safe_next(target: str | None) -> str:
    """Only a path on this site: an open redirect would let a crafted login link send users anywhere."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


@router.get(
    "/login",
    status_code=302,
    response_class=RedirectResponse,
    responses=problem_responses(502),
    summary="Start single sign-on: redirects to the OpenID Connect provider",
)
async def oidc_login(
    request: Request,
    services: Services,
    next_path: Annotated[str | None, Query(alias="next", max_length=512, description="Where to land after.")] = None,
) -> RedirectResponse:
    oidc = _oidc(services)
    provider = _provider(request, oidc)
    callback = redirect_uri(services.settings)
    async with _provider_errors():
        await _check_issuer(provider, oidc)
        authorization = await provider.create_authorization_url(callback)
    flow = {
        "state": authorization["state"],
        "nonce": authorization["nonce"],
        "code_verifier": authorization["code_verifier"],
        "next": _safe_next(next_path),
    }
    response = RedirectResponse(authorization["url"], status_code=302)
    response.set_cookie(
        FLOW_COOKIE,
        _flow_serializer(services.settings).dumps(flow),
        max_age=FLOW_TTL_S,
        path=PREFIX,
        secure=services.settings.api.secure_cookies,
        httponly=True,
        samesite="lax",  # the provider's redirect back is a top-level GET navigation: Lax cookies go with it
    )
    return response


@router.get(
    "/callback",
    status_code=303,
    response_class=RedirectResponse,
    responses=problem_responses(502),
    summary="Finish single sign-on: verifies the ID token, signs the user in, redirects into the UI",
)
async def oidc_callback(
    request: Request,
    services: Services,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> RedirectResponse:
    oidc = _oidc(services)
    flow = _read_flow(request, services.settings, state)
    if error or not code:
        await _refuse(request, "unknown", f"the provider returned no code ({error or 'no error given'})")
    provider = _provider(request, oidc)
    async with _provider_errors():
        token = await provider.fetch_access_token(
            code=code, state=state, code_verifier=flow["code_verifier"], redirect_uri=redirect_uri(services.settings)
        )
        claims = await _verified_claims(provider, token, flow["nonce"])
    username = local_username(claims, oidc.username_claim)
    if username is None:
        await _refuse(request, str(claims.get("sub", "unknown")), "no usable username claim in the ID token")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        await _refuse(request, username, "the ID token has no subject (sub)")
    role = role_from_claims(claims, oidc)
    response = RedirectResponse(flow["next"], status_code=303)
    identity = (oidc.issuer or "", subject)
    await run_in_threadpool(_sign_in, request, services, username, identity, role, response)
    response.delete_cookie(FLOW_COOKIE, path=PREFIX, secure=services.settings.api.secure_cookies, httponly=True)
    return response


def _read_flow(request: Request, settings: Settings, state: str | None) -> dict[str, str]:
    """The flow this browser started; a missing, expired, forged or mismatched one ends the login (CSRF defence)."""
    try:
        flow = _flow_serializer(settings).loads(request.cookies.get(FLOW_COOKIE, ""), max_age=FLOW_TTL_S)
    except BadSignature:
        flow = None
    if not isinstance(flow, dict) or not state or not hmac.compare_digest(str(flow.get("state", "")), state):
        raise Problem(
            400,
            "this sign-in was not started here or took too long; start again",
            slug="sso-state",
            title="Single sign-on state mismatch",
        )
    return {key: str(value) for key, value in flow.items()}


async def _refuse(request: Request, actor: str, reason: str) -> NoReturn:
    await run_in_threadpool(record, request, actor, "session.login", actor, RESULT_FAILED, reason=f"sso: {reason}")
    raise Problem(401, f"single sign-on refused: {reason}", slug="sso-refused", title="Single sign-on refused")


@asynccontextmanager
async def _provider_errors() -> AsyncIterator[None]:
    """A refused code or an ID token that fails verification is a 401; an unreachable or garbled provider a 502."""
    from authlib.integrations.base_client.errors import OAuthError  # type: ignore[import-untyped]
    from joserfc.errors import JoseError

    try:
        yield
    except (OAuthError, JoseError) as error:
        raise Problem(401, f"the provider's answer did not verify: {error}", slug="sso-refused") from None
    except (httpx.HTTPError, ValueError, KeyError, RuntimeError) as error:
        raise Problem(502, f"identity provider error: {type(error).__name__}", slug="sso-provider") from None


async def _check_issuer(provider: Any, oidc: OidcSettings) -> None:
    """The discovery document must name the configured issuer (OpenID Connect Discovery, section 4.3)."""
    metadata = await provider.load_server_metadata()
    if str(metadata.get("issuer", "")).rstrip("/") != (oidc.issuer or "").rstrip("/"):
        raise Problem(502, "the provider's discovery document names another issuer", slug="sso-provider")


async def _verified_claims(provider: Any, token: dict[str, Any], nonce: str) -> dict[str, Any]:
    if "id_token" not in token:
        raise Problem(401, "the provider sent no ID token (is 'openid' among the scopes?)", slug="sso-refused")
    claims = await provider.parse_id_token(token, nonce=nonce, leeway=CLOCK_LEEWAY_S)
    return dict(claims)


def local_username(claims: dict[str, Any], claim: str) -> str | None:
    """A platform username from the ID token: the configured claim, else the email if the provider verified it,
    else sub, made to fit the pattern.  (The name only labels the account; issuer + subject identify it.)"""
    for key in (claim, "email", "sub"):
        if key == "email" and claims.get("email_verified") is not True:
            continue
        value = claims.get(key)
        if isinstance(value, str) and value.strip():
            candidate = re.sub(r"[^a-z0-9_.-]", "-", value.strip().lower())
            if re.fullmatch(USERNAME_PATTERN, candidate):
                return candidate
    return None


def role_from_claims(claims: dict[str, Any], oidc: OidcSettings) -> str:
    """The highest role any of the claim's values maps to; the default role when none does."""
    value = claims.get(oidc.role_claim)
    values = [value] if isinstance(value, str) else [str(item) for item in value or [] if isinstance(item, str)]
    mapped = [oidc.role_mapping[item] for item in values if item in oidc.role_mapping]
    return max(mapped, key=ROLES.index) if mapped else oidc.default_role


def _sign_in(
    request: Request,
    services: ApiServices,
    username: str,
    identity: tuple[str, str],
    role: str,
    response: RedirectResponse,
) -> None:
    """Create or update the user (``identity``: issuer, subject), then start a session exactly as a password login
    does; both outcomes audited."""
    issuer, subject = identity
    try:
        user = services.auth.sign_in_external(username, issuer, subject, role)
    except AuthStoreError as error:
        record(request, username, "session.login", username, RESULT_FAILED, reason=f"sso: {error}")
        raise Problem(403, str(error), slug="sso-refused", title="Single sign-on refused") from None
    username = user.username  # a known subject keeps its account's name, whatever name the token brings now
    if not user.active:
        record(request, username, "session.login", username, RESULT_FAILED, reason="sso: user is disabled")
        raise Problem(403, f"user {username!r} is disabled", slug="sso-refused", title="Single sign-on refused")
    services.sessions.start(response, user.id)
    record(
        request,
        username,
        "session.login",
        username,
        RESULT_OK,
        to_value=user.role,
        detail={"via": "oidc", "issuer": issuer},
    )
