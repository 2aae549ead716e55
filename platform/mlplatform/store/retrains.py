"""Retrain triggers: each drift alert the webhook received and what the retraining policy did with it.

One row per alert per delivery.  A row that decided to start a run *claims* the alert's idempotency key
(``claim_key``, unique): a second delivery of the same alert, even at the same instant from another Alertmanager
replica or API process, cannot claim it again and is recorded as a duplicate instead.  Skipped alerts claim
nothing, so an alert skipped during a cooldown may still start a run when Alertmanager repeats it later.

A claimed row is ``pending`` until Airflow accepted the run (``triggered``, with its run id) or the retry worker
gave up (``failed``); skipped rows are ``skipped`` with a ``skip_reason``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, Text, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from mlplatform.store.models import Base, as_utc

if TYPE_CHECKING:
    from mlplatform.store.db import PlatformStore

STATUS_PENDING = "pending"
STATUS_TRIGGERED = "triggered"
STATUS_FAILED = "failed"
STATUS_SKIPPED = "skipped"
CLAIMING_STATUSES = (STATUS_PENDING, STATUS_TRIGGERED, STATUS_FAILED)
MAX_LIST = 500


class RetrainTriggerRow(Base):
    """One received alert and the decision taken on it (schema: migration 0006)."""

    __tablename__ = "retrain_triggers"
    __table_args__ = (
        Index("ix_retrain_triggers_model_id", "model", "id"),
        Index("ix_retrain_triggers_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    model: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(32))
    alertname: Mapped[str | None] = mapped_column(String(128), nullable=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    claim_key: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True)
    status: Mapped[str] = mapped_column(String(16))
    skip_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    dag_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    dag_run_id: Mapped[str | None] = mapped_column(String(250), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


@dataclass(frozen=True)
class AlertRef:
    """The alert a record is about: enough to find it in Alertmanager and to derive its idempotency key."""

    model: str
    alertname: str | None
    fingerprint: str | None
    starts_at: datetime | None
    idempotency_key: str | None
    source: str = "alertmanager"


@dataclass(frozen=True)
class RetrainTrigger:
    id: int
    created_at: datetime
    updated_at: datetime
    model: str
    source: str
    alertname: str | None
    fingerprint: str | None
    starts_at: datetime | None
    idempotency_key: str | None
    status: str
    skip_reason: str | None
    reason: str
    dag_id: str | None
    dag_run_id: str | None
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def _trigger(row: RetrainTriggerRow) -> RetrainTrigger:
    return RetrainTrigger(
        id=row.id,
        created_at=_utc(row.created_at) or row.created_at,
        updated_at=_utc(row.updated_at) or row.updated_at,
        model=row.model,
        source=row.source,
        alertname=row.alertname,
        fingerprint=row.fingerprint,
        starts_at=_utc(row.starts_at),
        idempotency_key=row.idempotency_key,
        status=row.status,
        skip_reason=row.skip_reason,
        reason=row.reason,
        dag_id=row.dag_id,
        dag_run_id=row.dag_run_id,
        attempts=row.attempts,
        next_attempt_at=_utc(row.next_attempt_at),
        last_error=row.last_error,
    )


def _row(alert: AlertRef, status: str, reason: str, now: datetime) -> RetrainTriggerRow:
    return RetrainTriggerRow(
        created_at=now,
        updated_at=now,
        model=alert.model[:64],
        source=alert.source[:32],
        alertname=alert.alertname[:128] if alert.alertname else None,
        fingerprint=alert.fingerprint[:64] if alert.fingerprint else None,
        starts_at=alert.starts_at,
        idempotency_key=alert.idempotency_key[:255] if alert.idempotency_key else None,
        status=status,
        reason=reason,
        attempts=0,
    )


class RetrainRecords:
    """Append decisions, claim idempotency keys, and move claimed triggers through pending -> triggered/failed."""

    def __init__(self, store: PlatformStore) -> None:
        self.store = store

    def skip(self, alert: AlertRef, skip_reason: str, reason: str = "") -> RetrainTrigger:
        row = _row(alert, STATUS_SKIPPED, reason, datetime.now(UTC))
        row.skip_reason = skip_reason
        with self.store.session() as session, session.begin():
            session.add(row)
        return _trigger(row)

    def claim(
        self, alert: AlertRef, dag_id: str, dag_run_id: str, reason: str, *, first_attempt_at: datetime
    ) -> RetrainTrigger | None:
        """A pending trigger owning the alert's idempotency key; None when another record already owns it.

        ``first_attempt_at`` is when a retry worker may first pick it up: the claimant attempts at once itself.
        """
        row = _row(alert, STATUS_PENDING, reason, datetime.now(UTC))
        row.claim_key, row.dag_id, row.dag_run_id = alert.idempotency_key, dag_id, dag_run_id
        row.next_attempt_at = first_attempt_at
        try:
            with self.store.session() as session, session.begin():
                session.add(row)
        except IntegrityError:
            return None
        return _trigger(row)

    def claimed(self, idempotency_key: str) -> RetrainTrigger | None:
        """The record that acted on this key, if any."""
        with self.store.session() as session:
            row = session.scalar(select(RetrainTriggerRow).where(RetrainTriggerRow.claim_key == idempotency_key))
        return _trigger(row) if row else None

    def last_claim(self, model: str) -> RetrainTrigger | None:
        """The model's most recent trigger decision (pending, triggered or failed): cooldown and in-flight use it."""
        query = (
            select(RetrainTriggerRow)
            .where(RetrainTriggerRow.model == model, RetrainTriggerRow.status.in_(CLAIMING_STATUSES))
            .order_by(RetrainTriggerRow.id.desc())
            .limit(1)
        )
        with self.store.session() as session:
            row = session.scalar(query)
        return _trigger(row) if row else None

    def due(self, now: datetime, limit: int = 20) -> list[RetrainTrigger]:
        """Pending triggers whose next attempt is due, oldest first."""
        query = (
            select(RetrainTriggerRow)
            .where(RetrainTriggerRow.status == STATUS_PENDING, RetrainTriggerRow.next_attempt_at <= now)
            .order_by(RetrainTriggerRow.next_attempt_at, RetrainTriggerRow.id)
            .limit(limit)
        )
        with self.store.session() as session:
            rows = session.scalars(query).all()
        return [_trigger(row) for row in rows]

    def triggered(self, trigger_id: int, dag_run_id: str) -> RetrainTrigger:
        return self._update(trigger_id, status=STATUS_TRIGGERED, dag_run_id=dag_run_id, next_attempt_at=None)

    def attempt_failed(self, trigger_id: int, error: str, next_attempt_at: datetime | None) -> RetrainTrigger:
        """Count a failed attempt; with no next attempt the trigger has failed for good."""
        status = STATUS_PENDING if next_attempt_at is not None else STATUS_FAILED
        return self._update(trigger_id, status=status, last_error=error[:2000], next_attempt_at=next_attempt_at)

    def _update(self, trigger_id: int, **values: object) -> RetrainTrigger:
        """Apply the outcome of one attempt to start the run."""
        with self.store.session() as session, session.begin():
            row = session.get(RetrainTriggerRow, trigger_id)
            if row is None:
                raise LookupError(f"no retrain trigger {trigger_id}")
            for key, value in values.items():
                setattr(row, key, value)
            row.attempts += 1
            row.updated_at = datetime.now(UTC)
        return _trigger(row)

    def list(self, model: str, limit: int = 50) -> list[RetrainTrigger]:
        """A model's records, newest first."""
        query = (
            select(RetrainTriggerRow)
            .where(RetrainTriggerRow.model == model)
            .order_by(RetrainTriggerRow.id.desc())
            .limit(max(1, min(limit, MAX_LIST)))
        )
        with self.store.session() as session:
            rows = session.scalars(query).all()
        return [_trigger(row) for row in rows]
