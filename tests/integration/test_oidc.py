"""Single sign-on against a real OpenID Connect provider started by the test.

The provider is a small Starlette app served by uvicorn on 127.0.0.1: discovery document, JWKS, an authorize
endpoint that approves at once and redirects back with a code, and a token endpoint that checks the client secret
and the PKCE verifier and returns an RS256 ID token signed with joserfc.  The platform is the real
``create_app(settings)`` (the fakes of ``test_api_app.py`` stand in only for MLflow, Airflow and the deployer);
its authlib client fetches discovery, tokens and keys from the provider over HTTP.  Nothing of ours is mocked.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from mlplatform.api.routers.oidc import local_username, role_from_claims
from mlplatform.config import OidcSettings, Settings
from tests.support.api_world import World, make_world
from tests.support.environment import free_port
from tests.support.waiting import wait_started

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CLIENT_ID = "mlplatform"
CLIENT_SECRET = "provider-test-secret"  # a throwaway secret of the test provider
PUBLIC_URL = "http://testserver"
LOGIN = "/api/v1/auth/oidc/login"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Provider:
    """A minimal OpenID Connect provider: one client, auto-approval, RS256 ID tokens."""

    issuer: str
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, parameters={"kid": "provider-key"}))
    user: dict[str, Any] = field(default_factory=dict)
    signing_key: RSAKey | None = None
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
            ]
        )

    async def discovery(self, _: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    async def jwks(self, _: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        params = request.query_params
        if params.get("client_id") != CLIENT_ID or params.get("response_type") != "code":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if params.get("code_challenge_method") != "S256" or "openid" not in params.get("scope", "").split():
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        code = secrets.token_urlsafe(16)
        self.codes[code] = {
            "redirect_uri": params["redirect_uri"],
            "nonce": params.get("nonce"),
            "challenge": params["code_challenge"],
        }
        query = urlencode({"code": code, "state": params["state"]})
        return RedirectResponse(f"{params['redirect_uri']}?{query}", status_code=302)

    async def token(self, request: Request) -> Response:
        form = await request.form()
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = self.codes.pop(str(form.get("code")), None)
        verifier = str(form.get("code_verifier", ""))
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if _b64(hashlib.sha256(verifier.encode()).digest()) != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant", "error_description": "PKCE"}, status_code=400)
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "nonce": grant["nonce"]}
        key = self.signing_key or self.key
        id_token = jwt.encode({"alg": "RS256", "kid": "provider-key"}, {**claims, **self.user}, key)
        return JSONResponse(
            {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer", "expires_in": 300, "id_token": id_token}
        )


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    port = free_port()
    found = Provider(issuer=f"http://127.0.0.1:{port}")
    server = uvicorn.Server(uvicorn.Config(found.app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_started(server, thread, 15, "the test OIDC provider")
    try:
        yield found
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture()
def sso(settings: Settings, provider: Provider) -> Iterator[World]:
    provider.user = {"sub": "u-alice", "preferred_username": "alice", "groups": ["ml-approvers", "staff"]}
    provider.signing_key = None
    oidc = OidcSettings(
        issuer=provider.issuer,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        role_mapping={"ml-approvers": "approver", "ml-admins": "admin"},
    )
    api = settings.api.model_copy(update={"public_url": PUBLIC_URL, "oidc": oidc})
    world = make_world(settings.model_copy(update={"api": api}))
    world.client.cookies.clear()
    yield world
    world.client.close()


def sign_in(client: TestClient, next_path: str = "/models") -> httpx.Response:
    """The browser's trip: our login -> the provider (over real HTTP) -> our callback."""
    started = client.get(LOGIN, params={"next": next_path}, follow_redirects=False)
    assert started.status_code == 302, started.text
    approved = httpx.get(started.headers["location"], follow_redirects=False, timeout=10)
    assert approved.status_code == 302, approved.text
    assert approved.headers["location"].startswith(f"{PUBLIC_URL}/api/v1/auth/oidc/callback?")
    callback: httpx.Response = client.get(approved.headers["location"], follow_redirects=False)
    return callback


def test_sso_signs_a_new_user_in_with_the_mapped_role(sso: World, provider: Provider) -> None:
    finished = sign_in(sso.client)
    assert finished.status_code == 303, finished.text
    assert finished.headers["location"] == "/models"
    me = sso.client.get("/api/v1/session").json()
    assert (me["username"], me["role"], me["via"]) == ("alice", "approver", "session")
    user = sso.services.auth.get_user("alice")
    assert user is not None and user.external_issuer == provider.issuer and not user.has_password
    [event] = sso.audit(action="session.login")
    assert (event.actor, event.result, event.detail) == ("alice", "ok", {"via": "oidc", "issuer": provider.issuer})
    # The session is the ordinary one: a state change still needs its CSRF token.
    assert sso.client.post("/api/v1/tokens", json={"name": "x"}).status_code == 403
    ok = sso.client.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": me["csrf_token"]})
    assert ok.status_code == 201


def test_the_role_follows_the_provider_at_each_sign_in(sso: World, provider: Provider) -> None:
    sign_in(sso.client)
    provider.user = {**provider.user, "groups": ["ml-approvers", "ml-admins"]}
    sign_in(sso.client)
    assert sso.client.get("/api/v1/session").json()["role"] == "admin"
    provider.user = {**provider.user, "groups": "staff"}
    sign_in(sso.client)
    assert sso.client.get("/api/v1/session").json()["role"] == "viewer"
    assert [u.username for u in sso.services.auth.list_users()].count("alice") == 1


def test_sso_never_takes_over_a_local_account(sso: World, provider: Provider) -> None:
    provider.user = {"sub": "u-mallory", "preferred_username": "admin", "groups": ["ml-admins"]}
    refused = sign_in(sso.client)
    assert refused.status_code == 403 and refused.json()["type"] == "/problems/sso-refused"
    assert sso.client.get("/api/v1/session").status_code == 401
    assert sso.audit(action="session.login")[0].result == "failed"


def test_the_subject_not_the_name_identifies_the_user(sso: World, provider: Provider) -> None:
    """Renamed at the provider, alice keeps her account; a different person who now holds the name "alice" at the
    provider (another subject) does not get it."""
    sign_in(sso.client)
    provider.user = {**provider.user, "preferred_username": "alice.renamed"}
    sso.client.cookies.clear()
    assert sign_in(sso.client).status_code == 303
    assert sso.client.get("/api/v1/session").json()["username"] == "alice"
    assert sso.services.auth.get_user("alice.renamed") is None

    provider.user = {"sub": "u-someone-else", "preferred_username": "alice", "groups": ["ml-admins"]}
    sso.client.cookies.clear()
    refused = sign_in(sso.client)
    assert refused.status_code == 403 and "is not this identity of this provider" in refused.json()["detail"]
    assert sso.client.get("/api/v1/session").status_code == 401


def test_an_id_token_without_a_subject_is_refused(sso: World, provider: Provider) -> None:
    provider.user = {"preferred_username": "nosub", "groups": ["staff"]}
    refused = sign_in(sso.client)
    assert refused.status_code == 401 and refused.json()["type"] == "/problems/sso-refused"
    assert "'sub'" in refused.json()["detail"]
    assert sso.services.auth.get_user("nosub") is None


def test_a_callback_this_browser_did_not_start_is_refused(sso: World) -> None:
    started = sso.client.get(LOGIN, follow_redirects=False)
    approved = httpx.get(started.headers["location"], follow_redirects=False, timeout=10)
    sso.client.cookies.clear()  # another browser, or an attacker's link: no flow cookie
    refused = sso.client.get(approved.headers["location"], follow_redirects=False)
    assert refused.status_code == 400 and refused.json()["type"] == "/problems/sso-state"
    assert sso.client.get("/api/v1/session").status_code == 401


def test_an_id_token_signed_with_another_key_is_refused(sso: World, provider: Provider) -> None:
    provider.signing_key = RSAKey.generate_key(2048, parameters={"kid": "provider-key"})
    refused = sign_in(sso.client)
    assert refused.status_code == 401, refused.text
    assert refused.json()["type"] == "/problems/sso-refused"
    assert sso.services.auth.get_user("alice") is None


@pytest.mark.parametrize("target", ["https://elsewhere.example/", "//elsewhere.example/x", "/\\elsewhere.example"])
def test_next_never_leaves_the_site(sso: World, target: str) -> None:
    assert sign_in(sso.client, next_path=target).headers["location"] == "/"


def test_sso_is_off_without_an_issuer_and_an_unreachable_provider_is_a_502(settings: Settings) -> None:
    world = make_world(settings)
    assert world.client.get(LOGIN, follow_redirects=False).status_code == 404
    oidc = OidcSettings(issuer=f"http://127.0.0.1:{free_port()}", client_id=CLIENT_ID)
    api = settings.api.model_copy(update={"oidc": oidc})
    unreachable = make_world(settings.model_copy(update={"api": api, "state_dir": settings.state_dir / "other"}))
    answer = unreachable.client.get(LOGIN, follow_redirects=False)
    assert answer.status_code == 502 and answer.json()["type"] == "/problems/sso-provider"


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"preferred_username": "Alice.Smith"}, "alice.smith"),
        ({"email": "bob@example.com", "email_verified": True}, "bob-example.com"),
        ({"email": "bob@example.com", "email_verified": "true", "sub": "u-1"}, "u-1"),
        ({"email": "bob@example.com", "sub": "u-1"}, "u-1"),
        ({"preferred_username": "  ", "sub": "x"}, None),
        ({"sub": "248289761001"}, None),
    ],
)
def test_local_username_from_claims(claims: dict[str, Any], expected: str | None) -> None:
    assert local_username(claims, "preferred_username") == expected


def test_role_from_claims_takes_the_highest_match() -> None:
    oidc = OidcSettings(role_mapping={"a": "data-scientist", "b": "approver"}, default_role="viewer")
    assert role_from_claims({"groups": ["b", "a", "zzz"]}, oidc) == "approver"
    assert role_from_claims({"groups": "a"}, oidc) == "data-scientist"
    assert role_from_claims({"groups": ["zzz"]}, oidc) == "viewer"
    assert role_from_claims({}, oidc) == "viewer"
