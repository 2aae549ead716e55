"""Browser sessions and CSRF tokens (the login limiter is ``store.logins``).

A session is a row in the platform database (``store.sessions``) whose random key travels in a signed cookie
(itsdangerous, keyed by the session secret): the server can end it (logout, password change), and a copied cookie
stops working with it.  Cookies are HTTP-only so scripts cannot read them, SameSite=Lax so other sites cannot post
with them, Secure when ``api.secure_cookies`` is on.  Each session carries its own random CSRF value (a
synchronizer token bound to the session): every state-changing request that is authenticated by the cookie must
echo it in the ``X-CSRF-Token`` header or a ``csrf_token`` form field.
Requests with a Bearer token carry no ambient credential and need no CSRF token.

Forms posted before there is a session (the login form of the UI) use a double-submit cookie instead:
``issue_login_csrf`` sets a signed random value in a cookie and returns it for the form; ``login_csrf_valid``
compares the two.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from itsdangerous import BadSignature, URLSafeTimedSerializer

from mlplatform.state import generated_secret

if TYPE_CHECKING:
    from starlette.responses import Response

    from mlplatform.config import Settings
    from mlplatform.store.sessions import SessionRecords

SESSION_COOKIE = "mlp_session"
LOGIN_CSRF_COOKIE = "mlp_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
LOGIN_CSRF_TTL_S = 3600


def session_secret(settings: Settings) -> str:
    """The configured secret, or one generated once and kept under state_dir (mode 0600)."""
    if settings.api.session_secret is not None:
        return settings.api.session_secret.get_secret_value()
    return generated_secret(settings.layout.session_secret, nbytes=48)


@dataclass(frozen=True)
class SessionData:
    user_id: int
    csrf: str
    key: str
    """The session's key (the cookie's), by which it is revoked."""


class SessionManager:
    """Starts, checks and ends sessions (cookie + database row), and signs login CSRF cookies."""

    def __init__(self, secret: str, ttl_s: int, secure: bool, records: SessionRecords) -> None:
        self.ttl_s = ttl_s
        self.secure = secure
        self.records = records
        self._sessions = URLSafeTimedSerializer(secret, salt="mlplatform.session")
        self._login = URLSafeTimedSerializer(secret, salt="mlplatform.login-csrf")

    def start(self, response: Response, user_id: int) -> SessionData:
        data = SessionData(user_id=user_id, csrf=secrets.token_urlsafe(32), key=self.records.start(user_id, self.ttl_s))
        cookie = self._sessions.dumps({"s": data.key, "c": data.csrf})
        self._set(response, SESSION_COOKIE, cookie, self.ttl_s)
        return data

    def read(self, cookie: str | None) -> SessionData | None:
        """The session a cookie opens: validly signed, and its row neither revoked nor expired."""
        if not cookie:
            return None
        try:
            payload = self._sessions.loads(cookie, max_age=self.ttl_s)
        except BadSignature:  # also SignatureExpired
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("s"), str) or not payload.get("c"):
            return None
        session = self.records.active(payload["s"])
        if session is None:
            return None
        return SessionData(user_id=session.user_id, csrf=str(payload["c"]), key=payload["s"])

    def end(self, response: Response, key: str | None) -> None:
        """Revoke the session (every copy of its cookie stops working) and tell the browser to drop the cookie."""
        if key is not None:
            self.records.revoke(key)
        response.delete_cookie(SESSION_COOKIE, path="/", secure=self.secure, httponly=True, samesite="lax")

    def issue_login_csrf(self, response: Response) -> str:
        """A token for a login form, also set as a cookie (double submit)."""
        token = secrets.token_urlsafe(32)
        self._set(response, LOGIN_CSRF_COOKIE, self._login.dumps(token), LOGIN_CSRF_TTL_S)
        return token

    def login_csrf_valid(self, cookie: str | None, submitted: str | None) -> bool:
        if not cookie or not submitted:
            return False
        try:
            expected = self._login.loads(cookie, max_age=LOGIN_CSRF_TTL_S)
        except BadSignature:
            return False
        return isinstance(expected, str) and hmac.compare_digest(expected, submitted)

    def _set(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", secure=self.secure, httponly=True, samesite="lax")


def csrf_matches(expected: str, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(expected.encode(), (submitted or "").encode())
