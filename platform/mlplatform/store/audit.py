"""The audit log and the platform's deployment records.

Every mutating action of the API and CLI, and every refusal of one, becomes an ``AuditEvent``: who, when, what
(action + target), from, to, why, the result and the client's address.

Refusals (denied, unauthenticated) are bounded, since anyone can cause them: within ``REFUSAL_WINDOW``, a refusal
like one already recorded (same actor, action, target, result and client) counts as a repeat on that row
(``detail.repeats``), and a client gets at most ``MAX_REFUSAL_ROWS`` new refusal rows; beyond that its refusals
are counted on its latest one (``detail.suppressed``).  Other events are only ever appended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from mlplatform.store.models import AuditEventRow, DeploymentRow, as_utc

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from mlplatform.store.db import PlatformStore

RESULT_OK = "ok"
RESULT_DENIED = "denied"
RESULT_UNAUTHENTICATED = "unauthenticated"
RESULT_GATE_REFUSED = "refused by gate"
RESULT_OVERRIDDEN = "ok (gate overridden)"
RESULT_FAILED = "failed"
MAX_LIMIT = 1000
REFUSALS = (RESULT_DENIED, RESULT_UNAUTHENTICATED)
REFUSAL_WINDOW = timedelta(minutes=1)
MAX_REFUSAL_ROWS = 20  # new refusal rows per client per REFUSAL_WINDOW


def _clip(value: str | None, length: int) -> str | None:
    return None if value is None else value[:length]


@dataclass(frozen=True)
class AuditEvent:
    id: int
    created_at: datetime
    actor: str
    action: str
    target: str
    from_value: str | None
    to_value: str | None
    reason: str
    result: str
    client: str | None
    detail: dict[str, Any] = field(default_factory=dict)


def _event(row: AuditEventRow) -> AuditEvent:
    return AuditEvent(
        id=row.id,
        created_at=as_utc(row.created_at),
        actor=row.actor,
        action=row.action,
        target=row.target,
        from_value=row.from_value,
        to_value=row.to_value,
        reason=row.reason,
        result=row.result,
        client=row.client,
        detail=dict(row.detail or {}),
    )


class AuditLog:
    """Append and read audit events."""

    def __init__(self, store: PlatformStore) -> None:
        self.store = store

    def record(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        result: str,
        reason: str = "",
        from_value: str | None = None,
        to_value: str | None = None,
        client: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditEvent:
        row = AuditEventRow(
            created_at=datetime.now(UTC),
            actor=actor[:128],
            action=action[:64],
            target=target[:255],
            from_value=_clip(from_value, 255),
            to_value=_clip(to_value, 255),
            reason=reason,
            result=result[:32],
            client=_clip(client, 64),
            detail=detail or {},
        )
        with self.store.session() as session, session.begin():
            counted = self._counted_refusal(session, row) if result in REFUSALS else None
            if counted is not None:
                return _event(counted)
            session.add(row)
        return _event(row)

    @staticmethod
    def _counted_refusal(session: Session, row: AuditEventRow) -> AuditEventRow | None:
        """The recent row this refusal is counted on (see the module docstring), or None to record it."""
        recent = (AuditEventRow.created_at >= row.created_at - REFUSAL_WINDOW) & AuditEventRow.result.in_(REFUSALS)
        client = AuditEventRow.client == row.client if row.client is not None else AuditEventRow.client.is_(None)
        same = session.scalars(
            select(AuditEventRow)
            .where(
                recent,
                client,
                AuditEventRow.actor == row.actor,
                AuditEventRow.action == row.action,
                AuditEventRow.target == row.target,
                AuditEventRow.result == row.result,
            )
            .order_by(AuditEventRow.id.desc())
            .limit(1)
        ).first()
        if same is not None:
            return _counted(same, "repeats")
        rows = session.scalar(select(func.count()).select_from(AuditEventRow).where(recent, client)) or 0
        if rows < MAX_REFUSAL_ROWS:
            return None
        latest = select(AuditEventRow).where(recent, client).order_by(AuditEventRow.id.desc()).limit(1)
        return _counted(session.scalars(latest).one(), "suppressed")

    def query(
        self,
        *,
        limit: int = 100,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        result: str | None = None,
        before_id: int | None = None,
    ) -> list[AuditEvent]:
        """Newest first; ``target`` matches exactly or as a prefix followed by '/' (a model and its versions)."""
        query = select(AuditEventRow)
        if actor is not None:
            query = query.where(AuditEventRow.actor == actor)
        if action is not None:
            query = query.where(AuditEventRow.action == action)
        if result is not None:
            query = query.where(AuditEventRow.result == result)
        if target is not None:
            query = query.where((AuditEventRow.target == target) | AuditEventRow.target.startswith(f"{target}/"))
        if before_id is not None:
            query = query.where(AuditEventRow.id < before_id)
        query = query.order_by(AuditEventRow.id.desc()).limit(max(1, min(limit, MAX_LIMIT)))
        with self.store.session() as session:
            rows = session.scalars(query).all()
        return [_event(row) for row in rows]


@dataclass(frozen=True)
class DeploymentRecord:
    model: str
    backend: str
    url: str
    canary_percent: int
    deployed_by: str
    created_at: datetime
    updated_at: datetime


def _record(row: DeploymentRow) -> DeploymentRecord:
    return DeploymentRecord(
        model=row.model,
        backend=row.backend,
        url=row.url,
        canary_percent=row.canary_percent,
        deployed_by=row.deployed_by,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )


class DeploymentRecords:
    """Who deployed what, where, with which canary share: the deployer itself only knows what runs now."""

    def __init__(self, store: PlatformStore) -> None:
        self.store = store

    def upsert(self, *, model: str, backend: str, url: str, deployed_by: str) -> DeploymentRecord:
        now = datetime.now(UTC)
        with self.store.session() as session, session.begin():
            row = session.scalar(select(DeploymentRow).where(DeploymentRow.model == model))
            if row is None:
                row = DeploymentRow(model=model, created_at=now, canary_percent=0)
                session.add(row)
            row.backend, row.url, row.deployed_by, row.updated_at = backend, url, deployed_by, now
        return _record(row)

    def set_canary(self, model: str, percent: int) -> DeploymentRecord | None:
        with self.store.session() as session, session.begin():
            row = session.scalar(select(DeploymentRow).where(DeploymentRow.model == model))
            if row is None:
                return None
            row.canary_percent, row.updated_at = percent, datetime.now(UTC)
        return _record(row)

    def remove(self, model: str) -> bool:
        with self.store.session() as session, session.begin():
            row = session.scalar(select(DeploymentRow).where(DeploymentRow.model == model))
            if row is None:
                return False
            session.delete(row)
        return True

    def get(self, model: str) -> DeploymentRecord | None:
        with self.store.session() as session:
            row = session.scalar(select(DeploymentRow).where(DeploymentRow.model == model))
        return _record(row) if row else None

    def list(self) -> list[DeploymentRecord]:
        with self.store.session() as session:
            rows = session.scalars(select(DeploymentRow).order_by(DeploymentRow.model)).all()
        return [_record(row) for row in rows]


def _counted(row: AuditEventRow, key: str) -> AuditEventRow:
    """One more refusal counted on ``row`` under ``detail[key]`` (a new dict, so the change is saved)."""
    detail = dict(row.detail or {})
    detail[key] = int(detail.get(key, 0)) + 1
    row.detail = detail
    return row
