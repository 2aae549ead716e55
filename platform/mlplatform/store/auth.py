"""Users, roles and API tokens in the platform database.

Passwords are hashed with argon2 (pwdlib): they are chosen by people, so the hash must be slow.  API tokens are
generated here with 256 bits of randomness and stored as sha256 only: a slow hash would add nothing to a secret that
cannot be guessed, and a fast one lets every request be authenticated with one indexed lookup.  A token is shown
once, when it is issued.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update

from mlplatform.store.models import ApiTokenRow, UserRow, as_utc
from mlplatform.store.sessions import revoke_user_sessions

if TYPE_CHECKING:
    from pwdlib import PasswordHash

    from mlplatform.store.db import PlatformStore

# Each role implies the ones before it.
ROLES: tuple[str, ...] = ("viewer", "data-scientist", "approver", "admin")
USERNAME_PATTERN = r"^[a-z][a-z0-9_.-]{1,63}$"
TOKEN_PREFIX = "mlp_"  # noqa: S105 - a public marker that makes leaked tokens greppable
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024


class AuthStoreError(ValueError):
    """A user or token request that cannot be honoured; the message says why (never containing a secret)."""


def role_allows(have: str, need: str) -> bool:
    """Whether a holder of role ``have`` may do what needs ``need``."""
    return have in ROLES and ROLES.index(have) >= ROLES.index(need)


def lower_role(first: str, second: str | None) -> str:
    """The weaker of two roles: a token never grants more than its user holds."""
    if second is None:
        return first
    return first if ROLES.index(first) <= ROLES.index(second) else second


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def default_password_hash() -> PasswordHash:
    """Argon2id with pwdlib's recommended parameters."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    return PasswordHash((Argon2Hasher(),))


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    active: bool
    created_at: datetime
    has_password: bool
    external_issuer: str | None = None


@dataclass(frozen=True)
class ApiToken:
    """A token's metadata; the secret itself is never stored or returned after issue."""

    id: int
    user_id: int
    username: str
    name: str
    prefix: str
    role: str | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


@dataclass(frozen=True)
class TokenIdentity:
    user: User
    token: ApiToken

    @property
    def role(self) -> str:
        return lower_role(self.user.role, self.token.role)


def _user(row: UserRow) -> User:
    return User(
        id=row.id,
        username=row.username,
        role=row.role,
        active=row.active,
        created_at=as_utc(row.created_at),
        has_password=row.password_hash is not None,
        external_issuer=row.external_issuer,
    )


def _token(row: ApiTokenRow, username: str) -> ApiToken:
    return ApiToken(
        id=row.id,
        user_id=row.user_id,
        username=username,
        name=row.name,
        prefix=row.prefix,
        role=row.role,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at),
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
        last_used_at=as_utc(row.last_used_at) if row.last_used_at else None,
    )


def check_username(username: str) -> None:
    if not re.fullmatch(USERNAME_PATTERN, username):
        raise AuthStoreError("username must be 2-64 characters: lowercase letters, digits, '.', '_' or '-'")


def check_role(role: str) -> None:
    if role not in ROLES:
        raise AuthStoreError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")


def check_password(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AuthStoreError(f"password must be {MIN_PASSWORD_LENGTH}-{MAX_PASSWORD_LENGTH} characters long")


class AuthRepository:
    """Users and tokens; one instance per process (it holds the password hasher)."""

    def __init__(self, store: PlatformStore, password_hash: PasswordHash | None = None) -> None:
        self.store = store
        self._hasher = password_hash
        # Verifying against a dummy hash when the user does not exist keeps login time independent of that fact.
        self._dummy_hash: str | None = None

    @property
    def hasher(self) -> PasswordHash:
        if self._hasher is None:
            self._hasher = default_password_hash()
        return self._hasher

    # -- users ----------------------------------------------------------------------------------------------

    def count_users(self) -> int:
        with self.store.session() as session:
            return int(session.scalar(select(func.count()).select_from(UserRow)) or 0)

    def create_user(self, username: str, role: str, password: str | None) -> User:
        """A new active user; ``password`` None makes a token-only (or, later, SSO-only) user."""
        check_username(username)
        check_role(role)
        if password is not None:
            check_password(password)
        row = UserRow(
            username=username,
            password_hash=self.hasher.hash(password) if password is not None else None,
            role=role,
            active=True,
            created_at=datetime.now(UTC),
        )
        with self.store.session() as session, session.begin():
            if session.scalar(select(UserRow.id).where(UserRow.username == username)) is not None:
                raise AuthStoreError(f"user {username!r} already exists")
            session.add(row)
        return _user(row)

    def sign_in_external(self, username: str, issuer: str, subject: str, role: str) -> User:
        """The user an OpenID Connect provider vouches for, found by issuer + subject (the provider's stable id):
        created on first sign-in under ``username``, role refreshed on each.

        Names are not identities: a provider can assert any name, and a person's name or email can change or pass
        to someone else.  So a known subject keeps its account whatever name it now brings, and a new subject whose
        name is taken (a local user, another provider's user, or another subject of this provider) is refused,
        never given that account.  A user of this provider recorded before subjects were kept is adopted once.
        """
        check_username(username)
        check_role(role)
        if not subject or len(subject) > 255:
            raise AuthStoreError("the provider's ID token has no usable subject (sub)")
        with self.store.session() as session, session.begin():
            row = session.scalar(
                select(UserRow).where(UserRow.external_issuer == issuer, UserRow.external_subject == subject)
            )
            if row is None:
                row = session.scalar(select(UserRow).where(UserRow.username == username))
                if row is None:
                    row = UserRow(
                        username=username,
                        password_hash=None,
                        role=role,
                        active=True,
                        created_at=datetime.now(UTC),
                        external_issuer=issuer,
                        external_subject=subject,
                    )
                    session.add(row)
                elif row.external_issuer != issuer or row.external_subject is not None:
                    raise AuthStoreError(f"user {username!r} exists and is not this identity of this provider")
                else:
                    row.external_subject = subject  # recorded before subjects were kept
            row.role = role
        return _user(row)

    def get_user(self, username: str) -> User | None:
        with self.store.session() as session:
            row = session.scalar(select(UserRow).where(UserRow.username == username))
        return _user(row) if row else None

    def get_user_by_id(self, user_id: int) -> User | None:
        with self.store.session() as session:
            row = session.get(UserRow, user_id)
        return _user(row) if row else None

    def list_users(self) -> list[User]:
        with self.store.session() as session:
            rows = session.scalars(select(UserRow).order_by(UserRow.username)).all()
        return [_user(row) for row in rows]

    def update_user(
        self, username: str, *, role: str | None = None, active: bool | None = None, password: str | None = None
    ) -> User:
        """Change a user; a new password or disabling the user also ends every browser session they hold."""
        if role is not None:
            check_role(role)
        if password is not None:
            check_password(password)
        with self.store.session() as session, session.begin():
            row = session.scalar(select(UserRow).where(UserRow.username == username))
            if row is None:
                raise LookupError(f"no user {username!r}")
            if role is not None:
                row.role = role
            if active is not None:
                row.active = active
            if password is not None:
                row.password_hash = self.hasher.hash(password)
            if password is not None or active is False:
                # Whoever held a session (a stolen cookie included) must log in again, with the new password.
                revoke_user_sessions(session, row.id)
        return _user(row)

    def verify_password(self, username: str, password: str) -> User | None:
        """The active user whose password this is, or None (unknown user, wrong password, disabled)."""
        if len(password) > MAX_PASSWORD_LENGTH:
            return None
        with self.store.session() as session:
            row = session.scalar(select(UserRow).where(UserRow.username == username))
        if row is None or row.password_hash is None:
            self.hasher.verify(password, self._dummy())
            return None
        valid, updated = self.hasher.verify_and_update(password, row.password_hash)
        if not valid or not row.active:
            return None
        if updated is not None:
            self._rehash(row.id, updated)
        return _user(row)

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        return self._dummy_hash

    def _rehash(self, user_id: int, new_hash: str) -> None:
        with self.store.session() as session, session.begin():
            row = session.get(UserRow, user_id)
            if row is not None:
                row.password_hash = new_hash

    # -- tokens ---------------------------------------------------------------------------------------------

    def create_token(
        self, username: str, name: str, ttl_days: int, role: str | None = None, parent_id: int | None = None
    ) -> IssuedToken:
        """Issue a token; the returned ``secret`` is the only copy there will ever be.

        ``parent_id``: the token the request was authenticated with.  The new token expires no later than it and
        is revoked with it, so a leaked token cannot be turned into one that outlives its own revocation.
        """
        if role is not None:
            check_role(role)
        if not 1 <= ttl_days <= 3650:
            raise AuthStoreError("ttl_days must be between 1 and 3650")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        expires_at = now + timedelta(days=ttl_days)
        with self.store.session() as session, session.begin():
            user = session.scalar(select(UserRow).where(UserRow.username == username))
            if user is None:
                raise LookupError(f"no user {username!r}")
            if parent_id is not None:
                parent = session.get(ApiTokenRow, parent_id)
                if parent is None or parent.revoked_at is not None:
                    raise AuthStoreError("the token this request came with is revoked")
                expires_at = min(expires_at, as_utc(parent.expires_at))
            row = ApiTokenRow(
                user_id=user.id,
                name=name,
                token_hash=hash_token(secret),
                prefix=secret[: len(TOKEN_PREFIX) + 6],
                role=role,
                created_at=now,
                expires_at=expires_at,
                parent_id=parent_id,
            )
            session.add(row)
        return IssuedToken(token=_token(row, username), secret=secret)

    def list_tokens(self, username: str | None = None) -> list[ApiToken]:
        query = select(ApiTokenRow, UserRow.username).join(UserRow, UserRow.id == ApiTokenRow.user_id)
        if username is not None:
            query = query.where(UserRow.username == username)
        with self.store.session() as session:
            rows = session.execute(query.order_by(ApiTokenRow.id)).all()
        return [_token(row, name) for row, name in rows]

    def get_token(self, token_id: int) -> ApiToken | None:
        found = [token for token in self.list_tokens() if token.id == token_id]
        return found[0] if found else None

    def revoke_token(self, token_id: int) -> ApiToken | None:
        """Revoke a token and every token created with it, at any depth (idempotent); None when there is no such
        token."""
        now = datetime.now(UTC)
        with self.store.session() as session, session.begin():
            row = session.get(ApiTokenRow, token_id)
            if row is None:
                return None
            generation = [token_id]
            while generation:
                session.execute(
                    update(ApiTokenRow)
                    .where(ApiTokenRow.id.in_(generation), ApiTokenRow.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                generation = list(session.scalars(select(ApiTokenRow.id).where(ApiTokenRow.parent_id.in_(generation))))
            session.refresh(row)
            username = session.scalar(select(UserRow.username).where(UserRow.id == row.user_id)) or ""
        return _token(row, username)

    def authenticate_token(self, secret: str) -> TokenIdentity | None:
        """The identity behind a presented token, if it is known, unrevoked, unexpired and its user active."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 128:
            return None
        now = datetime.now(UTC)
        with self.store.session() as session, session.begin():
            found = session.execute(
                select(ApiTokenRow, UserRow)
                .join(UserRow, UserRow.id == ApiTokenRow.user_id)
                .where(ApiTokenRow.token_hash == hash_token(secret))
            ).first()
            if found is None:
                return None
            row, user_row = found
            token = _token(row, user_row.username)
            if not token.usable(now) or not user_row.active:
                return None
            row.last_used_at = now
        return TokenIdentity(user=_user(user_row), token=token)
