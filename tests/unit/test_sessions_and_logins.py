"""Sessions the server can end, and a login limiter shared through the platform DB.

A copy of a session cookie (taken from a shared machine, a proxy log, malware) must stop working when its owner
logs out or their password changes; two API processes over one database must count the same failed logins.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from mlplatform.config import Settings
from mlplatform.operations.services import ApiServices
from mlplatform.store.logins import LoginRateLimiter
from mlplatform.store.models import BrowserSessionRow, LoginFailureRow
from mlplatform.webapp import create_app
from tests.support.api_world import PASSWORD, World, cheap_hash, logged_in, user_for

SESSION_COOKIE = "mlp_session"
NEW_PASSWORD = "another long password"


def api_login(client: TestClient, role: str, password: str = PASSWORD) -> Any:
    return client.post("/api/v1/session", json={"username": user_for(role), "password": password})


def replay(world: World, cookie: str) -> TestClient:
    """Another browser holding a copy of ``cookie``, on the same app."""
    return TestClient(world.client.app, cookies={SESSION_COOKIE: cookie}, client=("198.51.100.9", 40000))


def copied_session(world: World, role: str) -> tuple[str, str]:
    """Log in through the API; returns (the cookie as a thief would copy it, the session's CSRF token)."""
    response = api_login(world.client, role)
    assert response.status_code == 200
    cookie = world.client.cookies.get(SESSION_COOKIE)
    assert cookie
    assert replay(world, cookie).get("/api/v1/session").json()["username"] == user_for(role)  # the copy works
    return cookie, response.json()["csrf_token"]


def session_rows(world: World) -> int:
    with world.services.store.session() as session:
        return int(session.scalar(select(func.count()).select_from(BrowserSessionRow)) or 0)


# ------------------------------------------------------------------------------------------------- sessions


def test_a_copied_cookie_stops_working_after_logout(world: World) -> None:
    cookie, csrf = copied_session(world, "approver")
    assert world.client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf}).status_code == 204
    thief = replay(world, cookie)
    answer = thief.get("/api/v1/session")
    assert answer.status_code == 401 and answer.json()["type"] == "/problems/unauthenticated"
    # Not even with the CSRF token that went with it.
    assert thief.post("/api/v1/tokens", json={"name": "x"}, headers={"X-CSRF-Token": csrf}).status_code == 401
    assert thief.get("/", follow_redirects=False).headers["location"].startswith("/login")


def test_a_copied_cookie_stops_working_after_a_password_change(world: World) -> None:
    cookie, _ = copied_session(world, "viewer")
    other_cookie, _ = copied_session(world, "approver")
    changed = world.client.patch(
        "/api/v1/users/viewer", json={"password": NEW_PASSWORD}, headers=world.as_role("admin")
    )
    assert changed.status_code == 200
    assert replay(world, cookie).get("/api/v1/session").status_code == 401
    assert replay(world, other_cookie).get("/api/v1/session").status_code == 200  # other users keep theirs
    assert api_login(TestClient(world.client.app), "viewer", NEW_PASSWORD).status_code == 200


def test_disabling_a_user_ends_their_sessions_for_good(world: World) -> None:
    cookie, _ = copied_session(world, "data-scientist")
    headers = world.as_role("admin")
    assert world.client.patch("/api/v1/users/data_scientist", json={"active": False}, headers=headers).is_success
    assert world.client.patch("/api/v1/users/data_scientist", json={"active": True}, headers=headers).is_success
    assert replay(world, cookie).get("/api/v1/session").status_code == 401  # re-enabling revives nothing


def test_a_role_change_keeps_the_session_and_takes_effect_at_once(world: World) -> None:
    cookie, _ = copied_session(world, "approver")
    headers = world.as_role("admin")
    assert world.client.patch("/api/v1/users/approver", json={"role": "viewer"}, headers=headers).is_success
    assert replay(world, cookie).get("/api/v1/session").json()["role"] == "viewer"


def test_the_ui_logout_revokes_the_session_on_the_server(world: World) -> None:
    csrf = logged_in(world, "viewer")
    cookie = world.client.cookies.get(SESSION_COOKIE)
    assert cookie
    response = world.client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert response.status_code == 303
    page = replay(world, cookie).get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_a_cookie_signed_before_sessions_were_kept_opens_nothing(world: World) -> None:
    """Cookies of the previous format (a signed user id) must not be honoured: nothing could revoke them."""
    from itsdangerous import URLSafeTimedSerializer

    from mlplatform.operations.security import session_secret

    signer = URLSafeTimedSerializer(session_secret(world.services.settings), salt="mlplatform.session")
    legacy = signer.dumps({"u": 1, "c": "csrf"})
    assert replay(world, legacy).get("/api/v1/session").status_code == 401


def test_expired_sessions_are_deleted_and_refused(world: World) -> None:
    cookie, _ = copied_session(world, "viewer")
    api_login(world.client, "approver")
    with world.services.store.session() as session, session.begin():
        session.execute(update(BrowserSessionRow).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert replay(world, cookie).get("/api/v1/session").status_code == 401
    assert session_rows(world) == 2
    api_login(world.client, "admin")  # a login clears out what has expired
    assert session_rows(world) == 1


# ----------------------------------------------------------------------------------------------- the limiter


def second_instance(world: World) -> TestClient:
    """Another API process over the same platform DB (its own services, limiter and app), same client address."""
    services = ApiServices.from_settings(world.services.settings, password_hash=cheap_hash())
    return TestClient(create_app(world.services.settings, services), client=("203.0.113.7", 50001))


def test_two_api_instances_on_one_database_share_the_login_limit(world: World) -> None:
    limit = world.services.settings.api.login_attempts_per_minute
    other = second_instance(world)
    for attempt in range(limit):
        client = world.client if attempt % 2 else other  # a load balancer alternating between replicas
        assert api_login(client, "approver", "wrong password!").status_code == 401
    for client in (world.client, other):
        blocked = api_login(client, "approver")
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) > 0


def test_the_limit_is_per_username_and_client_address(world: World) -> None:
    limit = world.services.settings.api.login_attempts_per_minute
    for _ in range(limit):
        api_login(world.client, "approver", "wrong password!")
    elsewhere = TestClient(world.client.app, client=("198.51.100.20", 50000))
    assert api_login(elsewhere, "approver").status_code == 200  # the same user from another address
    assert api_login(world.client, "viewer").status_code == 200  # another user from the same address
    assert api_login(world.client, "approver").status_code == 429


def test_a_successful_login_clears_its_failures(world: World) -> None:
    limit = world.services.settings.api.login_attempts_per_minute
    for _ in range(limit - 1):
        api_login(world.client, "approver", "wrong password!")
    assert api_login(world.client, "approver").status_code == 200
    for _ in range(limit - 1):
        assert api_login(world.client, "approver", "wrong password!").status_code == 401
    assert api_login(world.client, "approver").status_code == 200


def test_failures_that_left_the_window_are_deleted(world: World) -> None:
    limiter = LoginRateLimiter(world.services.store, per_minute=3, window_s=60)
    for name in ("a", "b", "c"):
        limiter.failed(name, "192.0.2.1")
    with world.services.store.session() as session, session.begin():
        session.execute(update(LoginFailureRow).values(failed_at=datetime.now(UTC) - timedelta(minutes=2)))
    limiter.failed("d", "192.0.2.1")
    with world.services.store.session() as session:
        assert session.scalars(select(LoginFailureRow.username)).all() == ["d"]


def test_a_name_longer_than_any_user_is_still_limited(world: World) -> None:
    limiter = LoginRateLimiter(world.services.store, per_minute=2)
    name, client = "x" * 500, "2001:db8::1" * 8
    limiter.failed(name, client)
    assert limiter.retry_after(name, client) == 0
    limiter.failed(name, client)
    assert limiter.retry_after(name, client) > 0


@pytest.mark.parametrize("entry", ["*", "10.0.0.0/33", "proxy.example"])
def test_trusted_proxies_must_be_addresses_or_networks(settings: Settings, entry: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="forwarded_allow_ips"):
        Settings(state_dir=settings.state_dir, api={"forwarded_allow_ips": ["127.0.0.1", entry]})
