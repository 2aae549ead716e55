"""The login limiter: failed logins per (username, client) in a sliding window, kept in the platform database.

In the database rather than in memory so every API process (replicas behind a load balancer, a restarted server)
counts the same failures.  Keyed by both username and client so one attacker cannot lock a user out from
everywhere, and one client cannot spray one user.  The client is the address the server resolved: behind a
proxy, the one its trusted X-Forwarded-For names (``api.forwarded_allow_ips``), never a header taken on faith.

Rows live only as long as the window: each failure deletes the ones that have left it, and a success deletes that
key's rows, so the table holds at most one window of failures.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement, delete, func, select

from mlplatform.store.models import LoginFailureRow, as_utc

if TYPE_CHECKING:
    from mlplatform.store.db import PlatformStore

# The columns' widths: a longer name cannot be a user (usernames are at most 64 characters), an address at most
# 45 (IPv6 with an embedded IPv4), so cutting loses nothing the limiter needs.
KEY_LENGTH = 64


class LoginRateLimiter:
    """At most ``per_minute`` failed logins per (username, client) in any ``window_s`` seconds."""

    def __init__(self, store: PlatformStore, per_minute: int, window_s: float = 60.0) -> None:
        self.store = store
        self.per_minute = per_minute
        self.window = timedelta(seconds=window_s)

    def retry_after(self, username: str, client: str) -> int:
        """Seconds until another attempt is allowed; 0 when allowed now."""
        now = datetime.now(UTC)
        key = self._key(username, client)
        with self.store.session() as session:
            in_window = select(func.count(), func.min(LoginFailureRow.failed_at)).where(
                *key, LoginFailureRow.failed_at > now - self.window
            )
            count, oldest = session.execute(in_window).one()
        if count < self.per_minute or oldest is None:
            return 0
        return max(1, int((as_utc(oldest) + self.window - now).total_seconds()) + 1)

    def failed(self, username: str, client: str) -> None:
        """Count a failure, and forget every failure that has left the window (any key)."""
        now = datetime.now(UTC)
        with self.store.session() as session, session.begin():
            session.execute(delete(LoginFailureRow).where(LoginFailureRow.failed_at <= now - self.window))
            session.add(LoginFailureRow(username=username[:KEY_LENGTH], client=client[:KEY_LENGTH], failed_at=now))

    def succeeded(self, username: str, client: str) -> None:
        """A successful login clears that key's failures."""
        with self.store.session() as session, session.begin():
            session.execute(delete(LoginFailureRow).where(*self._key(username, client)))

    @staticmethod
    def _key(username: str, client: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        return (LoginFailureRow.username == username[:KEY_LENGTH], LoginFailureRow.client == client[:KEY_LENGTH])
