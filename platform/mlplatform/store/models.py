"""ORM tables of the platform database. Schema changes go through Alembic migrations in ``migrations/``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def as_utc(value: datetime) -> datetime:
    """A stored moment as an aware UTC datetime: sqlite hands back naive ones, and everything stored is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class AliasEventRow(Base):
    """One move of a registry alias (champion/challenger): who moved it, when, from which version to which, why."""

    __tablename__ = "alias_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64), index=True)
    alias: Mapped[str] = mapped_column(String(32))
    from_version: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_version: Mapped[str | None] = mapped_column(String(16), nullable=True)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class PredictionLogRow(Base):
    """One logged prediction of a model server (production sink of ``mlplatform.predictions.sinks``).

    Entity keys and features differ per model, hence JSON; drift jobs read a time window of one model, hence the
    (model_name, ts) index.
    """

    __tablename__ = "prediction_log"
    __table_args__ = (Index("ix_prediction_log_model_name_ts", "model_name", "ts"),)

    # BIGINT on PostgreSQL (the log grows without bound); sqlite only auto-increments INTEGER PRIMARY KEY.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    request_id: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(32))
    entity: Mapped[dict[str, Any]] = mapped_column(JSON)
    features: Mapped[dict[str, float | None]] = mapped_column(JSON)
    score: Mapped[float | None] = mapped_column(Double, nullable=True)
    """Null only in the record of an arm's failure (``error``, migration 0011)."""
    label: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The predicted class; null for regression models (migration 0007)."""
    arm: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """The rollout arm that scored it (migration 0011); null in rows logged before rollouts: the champion."""
    shadow: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    """Scored in shadow, not answered (migration 0011); null in earlier rows: answered."""
    latency_s: Mapped[float | None] = mapped_column(Double, nullable=True)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)


class UserRow(Base):
    """A user: password stored as an argon2 hash only; ``role`` is one of the platform roles.

    ``external_issuer`` is set for users who sign in through OpenID Connect: that provider vouches for them, they
    have no password here, and their role follows the provider's claims at each login.  ``external_subject`` is the
    provider's stable id for them (the ID token's ``sub``): issuer + subject, never the name, identify the person.
    """

    __tablename__ = "users"
    __table_args__ = (Index("ux_users_external_identity", "external_issuer", "external_subject", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    role: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    external_issuer: Mapped[str | None] = mapped_column(String(255), nullable=True)
    external_subject: Mapped[str | None] = mapped_column(String(255), nullable=True)


class ApiTokenRow(Base):
    """An API token: only its sha256 is stored (tokens are random, so a slow hash adds nothing)."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The token this one was created with (None: created from a browser session): never outlives it.
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), nullable=True, index=True
    )


class AuditEventRow(Base):
    """One mutating action or refusal: who, when, what, from, to, why, result, and the client's address."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_target_created_at", "target", "created_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(255))
    from_value: Mapped[str | None] = mapped_column(String(255), nullable=True)
    to_value: Mapped[str | None] = mapped_column(String(255), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[str] = mapped_column(String(32))
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DeploymentRow(Base):
    """The platform's record of a deployment it made (the deployer reports live state; this keeps who and when)."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64), unique=True)
    backend: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(255))
    canary_percent: Mapped[int] = mapped_column(Integer, default=0)
    deployed_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BrowserSessionRow(Base):
    """A browser session: its cookie carries a random key whose sha256 is ``id``, so the server can end it.

    Logging out revokes one session; a password change or disabling the user revokes all of theirs.  Rows are
    deleted once they have expired, so the table holds at most a session lifetime of logins.
    """

    __tablename__ = "browser_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LoginFailureRow(Base):
    """One failed login, kept for the limiter's window only: every API process counts the same rows."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key", "username", "client", "failed_at"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    username: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(64))
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
