"""Browser sessions the server can end: the signed cookie only carries a random key, and this table says whether
that key still opens a session.

A signed cookie alone cannot be taken back: a copy made before logout (a shared machine, a proxy log, malware)
would work until it expired.  Here logging out revokes the session's row, and a password change or disabling a
user revokes every row of that user, so any copy of the cookie stops working at once.  Only the key's sha256 is
stored: a reader of the database cannot turn a row back into a cookie (it would also need the signing key).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, update

from mlplatform.store.models import BrowserSessionRow, as_utc

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mlplatform.store.db import PlatformStore

# ``last_seen_at`` is refreshed at most this often: a write per request would cost more than the answer it gives.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ActiveSession:
    """A session that is neither revoked nor expired."""

    user_id: int
    created_at: datetime
    expires_at: datetime


class SessionRecords:
    """Start, look up and revoke browser sessions."""

    def __init__(self, store: PlatformStore) -> None:
        self.store = store

    def start(self, user_id: int, ttl_s: int) -> str:
        """A new session of ``user_id``; returns its key (for the cookie only: it is never stored).

        Expired sessions are deleted here, so the table stays as small as a session lifetime of logins."""
        key = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        row = BrowserSessionRow(
            id=_digest(key),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
        with self.store.session() as session, session.begin():
            session.execute(delete(BrowserSessionRow).where(BrowserSessionRow.expires_at <= now))
            session.add(row)
        return key

    def active(self, key: str) -> ActiveSession | None:
        """The session ``key`` opens, or None (unknown, revoked or expired); notes when it was last seen."""
        now = datetime.now(UTC)
        with self.store.session() as session, session.begin():
            row = session.get(BrowserSessionRow, _digest(key))
            if row is None or row.revoked_at is not None or as_utc(row.expires_at) <= now:
                return None
            if now - as_utc(row.last_seen_at) >= LAST_SEEN_RESOLUTION:
                row.last_seen_at = now
            return ActiveSession(
                user_id=row.user_id, created_at=as_utc(row.created_at), expires_at=as_utc(row.expires_at)
            )

    def revoke(self, key: str) -> bool:
        """End one session (logout); False when it was unknown or already ended."""
        with self.store.session() as session, session.begin():
            ended = session.execute(
                update(BrowserSessionRow)
                .where(BrowserSessionRow.id == _digest(key), BrowserSessionRow.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        return bool(ended.rowcount)  # type: ignore[attr-defined]

    def revoke_user(self, user_id: int) -> int:
        """End every session of a user; returns how many were open."""
        with self.store.session() as session, session.begin():
            return revoke_user_sessions(session, user_id)


def revoke_user_sessions(session: Session, user_id: int) -> int:
    """Revoke every open session of ``user_id`` inside the caller's transaction (a password change made there
    and the revocation commit together)."""
    ended = session.execute(
        update(BrowserSessionRow)
        .where(BrowserSessionRow.user_id == user_id, BrowserSessionRow.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC))
    )
    return int(ended.rowcount)  # type: ignore[attr-defined]
