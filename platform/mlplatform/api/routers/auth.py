"""Sessions (login/logout), API tokens and users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, Response

from mlplatform.api.problems import PROBLEM_RESPONSES, problem_responses
from mlplatform.operations import sessions
from mlplatform.operations.access import Principal, get_services, permit, record, require
from mlplatform.operations.problems import Problem
from mlplatform.operations.schemas import (
    MAX_ROW_ID,
    CreateTokenRequest,
    CreateUserRequest,
    IssuedTokenOut,
    LoginRequest,
    SessionInfo,
    TokenOut,
    UpdateUserRequest,
    UserOut,
)
from mlplatform.operations.services import ApiServices
from mlplatform.store.audit import RESULT_DENIED, RESULT_FAILED, RESULT_OK
from mlplatform.store.auth import USERNAME_PATTERN, AuthStoreError, lower_role, role_allows

router = APIRouter(prefix="/api/v1", tags=["auth"], responses=PROBLEM_RESPONSES)
Services = Annotated[ApiServices, Depends(get_services)]
UsernamePath = Annotated[str, Path(pattern=USERNAME_PATTERN)]


@router.post(
    "/session", responses=problem_responses(429), summary="Log in with username and password; sets the session cookie"
)
def login(body: LoginRequest, request: Request, response: Response, services: Services) -> SessionInfo:
    """JSON only: a cross-site page cannot send a JSON body without a CORS preflight, so no login CSRF arises."""
    user, session = sessions.login(request, response, services, body.username, body.password)
    return SessionInfo(username=user.username, role=user.role, via="session", csrf_token=session.csrf)


@router.get("/session", summary="Who am I (and the CSRF token of my session)")
def whoami(principal: Annotated[Principal, Depends(require("viewer"))]) -> SessionInfo:
    return SessionInfo(username=principal.username, role=principal.role, via=principal.via, csrf_token=principal.csrf)


@router.delete("/session", status_code=204, summary="Log out")
def logout(
    request: Request,
    response: Response,
    services: Services,
    principal: Annotated[Principal, Depends(permit("session.logout", "viewer"))],
) -> None:
    sessions.logout(request, response, services, principal)


@router.get("/tokens", summary="My API tokens (all tokens for admins with all=true)")
def list_tokens(
    services: Services, principal: Annotated[Principal, Depends(require("viewer"))], all: bool = False
) -> list[TokenOut]:
    if all and not role_allows(principal.role, "admin"):
        raise Problem(403, "listing every user's tokens needs the admin role", slug="forbidden")
    tokens = services.auth.list_tokens(None if all else principal.username)
    return [TokenOut.model_validate(token) for token in tokens]


@router.post("/tokens", status_code=201, summary="Issue an API token for myself; the secret is shown once")
def create_token(
    body: CreateTokenRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("token.create", "viewer"))],
) -> IssuedTokenOut:
    role = lower_role(principal.role, body.role)
    ttl = body.ttl_days or services.settings.api.token_ttl_days
    # Made with a token: it expires no later than that token and is revoked with it.
    try:
        issued = services.auth.create_token(principal.username, body.name, ttl, role, parent_id=principal.token_id)
    except AuthStoreError as error:  # the request's own token was revoked meanwhile
        raise Problem(401, str(error), slug="unauthenticated") from None
    record(
        request,
        principal.username,
        "token.create",
        f"{principal.username}/{issued.token.id}",
        RESULT_OK,
        to_value=issued.token.prefix,
        detail={"name": body.name, "role": role, "ttl_days": ttl},
    )
    return IssuedTokenOut(**TokenOut.model_validate(issued.token).model_dump(), token=issued.secret)


@router.delete("/tokens/{token_id}", summary="Revoke a token (my own, or any for admins)")
def revoke_token(
    token_id: Annotated[int, Path(gt=0, le=MAX_ROW_ID)],
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("token.revoke", "viewer"))],
) -> TokenOut:
    token = services.auth.get_token(token_id)
    if token is None or (token.username != principal.username and not role_allows(principal.role, "admin")):
        # Someone else's token looks exactly like a missing one: ids reveal nothing.
        record(request, principal.username, "token.revoke", str(token_id), RESULT_DENIED, reason="not found")
        raise Problem(404, f"no token {token_id}", slug="unknown-token")
    revoked = services.auth.revoke_token(token_id)
    assert revoked is not None
    record(
        request, principal.username, "token.revoke", f"{token.username}/{token_id}", RESULT_OK, from_value=token.prefix
    )
    return TokenOut.model_validate(revoked)


@router.get("/users", summary="Users (admin)")
def list_users(services: Services, _: Annotated[Principal, Depends(require("admin"))]) -> list[UserOut]:
    return [UserOut.model_validate(user) for user in services.auth.list_users()]


@router.post("/users", status_code=201, responses=problem_responses(409), summary="Create a user (admin)")
def create_user(
    body: CreateUserRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("user.create", "admin"))],
) -> UserOut:
    try:
        user = services.auth.create_user(body.username, body.role, body.password)
    except AuthStoreError as error:
        record(request, principal.username, "user.create", body.username, RESULT_FAILED, reason=str(error))
        raise Problem(409, str(error), slug="user-conflict", title="User not created") from None
    record(request, principal.username, "user.create", user.username, RESULT_OK, to_value=user.role)
    return UserOut.model_validate(user)


@router.patch("/users/{username}", summary="Change a user's role, state or password (admin)")
def update_user(
    username: UsernamePath,
    body: UpdateUserRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("user.update", "admin"))],
) -> UserOut:
    before = services.auth.get_user(username)
    if before is None:
        raise Problem(404, f"no user {username!r}", slug="unknown-user")
    user = services.auth.update_user(username, role=body.role, active=body.active, password=body.password)
    changed = sorted(key for key, value in body.model_dump().items() if value is not None)
    record(
        request,
        principal.username,
        "user.update",
        username,
        RESULT_OK,
        from_value=f"{before.role}{'' if before.active else ' (disabled)'}",
        to_value=f"{user.role}{'' if user.active else ' (disabled)'}",
        detail={"changed": changed},
    )
    return UserOut.model_validate(user)
