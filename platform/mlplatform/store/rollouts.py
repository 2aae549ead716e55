"""Rollouts in the platform DB (migration 0011): one row per rollout of a candidate version against the champion,
and one per evaluation of it.

Why in the platform DB: the evaluator, the API, the UI and the CLI all read and change a rollout, possibly from
several processes; model servers never read these tables (they read the traffic plan the platform publishes on the
registered model, ``mlplatform.registry.traffic``), so their credential stays insert-only on the prediction log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, DateTime, Double, ForeignKey, Index, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column

from mlplatform.store.models import Base, as_utc

if TYPE_CHECKING:
    from mlplatform.store.db import PlatformStore

_ID = BigInteger().with_variant(Integer(), "sqlite")


class RolloutRow(Base):
    """A rollout: the model, its candidate and the champion it started against, the policy it runs under (a copy of
    the spec's, so a later spec edit does not change a running test), its state and, once ended, the decision."""

    __tablename__ = "rollouts"
    __table_args__ = (Index("ix_rollouts_model_id", "model_name", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(128))
    candidate_version: Mapped[str] = mapped_column(String(32))
    champion_version: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))
    share: Mapped[float] = mapped_column(Double)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(32))
    started_by: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(32), nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    next_evaluation_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When the evaluator looks next; claiming it (a conditional update) is what keeps two API replicas from
    evaluating, and acting on, one rollout twice."""
    recommendation: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """What the test says while the rollout waits for a person (manual decisions, inconclusive ends)."""


class RolloutEvaluationRow(Base):
    """One evaluation of a running rollout: the samples per arm, the estimate of the difference with its
    always-valid confidence band, the guardrails and the verdict (the page draws these over time)."""

    __tablename__ = "rollout_evaluations"
    __table_args__ = (Index("ix_rollout_evaluations_rollout_id", "rollout_id", "id"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    rollout_id: Mapped[int] = mapped_column(Integer, ForeignKey("rollouts.id", ondelete="CASCADE"))
    evaluated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    champion_samples: Mapped[int] = mapped_column(Integer)
    candidate_samples: Mapped[int] = mapped_column(Integer)
    estimate: Mapped[float | None] = mapped_column(Double, nullable=True)
    lower: Mapped[float | None] = mapped_column(Double, nullable=True)
    upper: Mapped[float | None] = mapped_column(Double, nullable=True)
    verdict: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


RUNNING = "running"
PAUSED = "paused"
AWAITING_DECISION = "awaiting_decision"
PROMOTED = "promoted"
ROLLED_BACK = "rolled_back"
STOPPED = "stopped"
OPEN_STATES = (RUNNING, PAUSED, AWAITING_DECISION)
"""States in which the rollout holds traffic (or may again): at most one such rollout per model."""
ENDED_STATES = (PROMOTED, ROLLED_BACK, STOPPED)
MAX_LIMIT = 200


class RolloutConflictError(RuntimeError):
    """A rollout that cannot start or change as asked (one already open, or it has ended); the message says which."""


@dataclass(frozen=True)
class Rollout:
    """A rollout as callers see it."""

    id: int
    model: str
    candidate_version: str
    champion_version: str
    mode: str
    share: float
    policy: dict[str, Any]
    state: str
    started_by: str
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    decision: str | None
    decision_reason: str | None
    decided_by: str | None
    next_evaluation_at: datetime
    recommendation: str | None

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES


@dataclass(frozen=True)
class RolloutEvaluation:
    """One evaluation of a rollout, as the page draws it."""

    id: int
    rollout_id: int
    evaluated_at: datetime
    champion_samples: int
    candidate_samples: int
    estimate: float | None
    lower: float | None
    upper: float | None
    verdict: str
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


def _rollout(row: RolloutRow) -> Rollout:
    return Rollout(
        id=row.id,
        model=row.model_name,
        candidate_version=row.candidate_version,
        champion_version=row.champion_version,
        mode=row.mode,
        share=row.share,
        policy=dict(row.policy),
        state=row.state,
        started_by=row.started_by,
        started_at=as_utc(row.started_at),
        updated_at=as_utc(row.updated_at),
        ended_at=None if row.ended_at is None else as_utc(row.ended_at),
        decision=row.decision,
        decision_reason=row.decision_reason,
        decided_by=row.decided_by,
        next_evaluation_at=as_utc(row.next_evaluation_at),
        recommendation=row.recommendation,
    )


def _evaluation(row: RolloutEvaluationRow) -> RolloutEvaluation:
    return RolloutEvaluation(
        id=row.id,
        rollout_id=row.rollout_id,
        evaluated_at=as_utc(row.evaluated_at),
        champion_samples=row.champion_samples,
        candidate_samples=row.candidate_samples,
        estimate=row.estimate,
        lower=row.lower,
        upper=row.upper,
        verdict=row.verdict,
        reason=row.reason,
        detail=dict(row.detail or {}),
    )


class RolloutRecords:
    """Rollouts and their evaluations in the platform DB."""

    def __init__(self, store: PlatformStore) -> None:
        self.store = store

    def start(
        self,
        *,
        model: str,
        candidate_version: str,
        champion_version: str,
        mode: str,
        share: float,
        policy: dict[str, Any],
        actor: str,
    ) -> Rollout:
        """Record a new running rollout; refused while the model has an open one (one candidate at a time)."""
        now = datetime.now(UTC)
        with self.store.session() as session, session.begin():
            existing = session.scalars(
                select(RolloutRow).where(RolloutRow.model_name == model, RolloutRow.state.in_(OPEN_STATES))
            ).first()
            if existing is not None:
                raise RolloutConflictError(
                    f"{model} already has rollout {existing.id} ({existing.state}) of version "
                    f"{existing.candidate_version}; stop or decide it first"
                )
            row = RolloutRow(
                model_name=model,
                candidate_version=candidate_version,
                champion_version=champion_version,
                mode=mode,
                share=share,
                policy=policy,
                state=RUNNING,
                started_by=actor[:128],
                started_at=now,
                updated_at=now,
                next_evaluation_at=now,
            )
            session.add(row)
            session.flush()
            return _rollout(row)

    def get(self, rollout_id: int) -> Rollout | None:
        with self.store.session() as session:
            row = session.get(RolloutRow, rollout_id)
            return None if row is None else _rollout(row)

    def open_for(self, model: str) -> Rollout | None:
        """The model's open rollout, if any."""
        with self.store.session() as session:
            row = session.scalars(
                select(RolloutRow).where(RolloutRow.model_name == model, RolloutRow.state.in_(OPEN_STATES))
            ).first()
            return None if row is None else _rollout(row)

    def recent(self, model: str | None = None, limit: int = 50) -> list[Rollout]:
        """Newest first."""
        query = select(RolloutRow).order_by(RolloutRow.id.desc()).limit(max(1, min(limit, MAX_LIMIT)))
        if model is not None:
            query = query.where(RolloutRow.model_name == model)
        with self.store.session() as session:
            return [_rollout(row) for row in session.scalars(query)]

    def open_rollouts(self) -> list[Rollout]:
        with self.store.session() as session:
            rows = session.scalars(select(RolloutRow).where(RolloutRow.state.in_(OPEN_STATES)).order_by(RolloutRow.id))
            return [_rollout(row) for row in rows]

    def claim(self, rollout: Rollout, next_at: datetime) -> bool:
        """Take the rollout's evaluation that is due (``next_evaluation_at`` passed): a conditional update, so of
        several API replicas ticking at once exactly one gets it."""
        now = datetime.now(UTC)
        with self.store.session() as session, session.begin():
            claimed = session.execute(
                update(RolloutRow)
                .where(
                    RolloutRow.id == rollout.id,
                    RolloutRow.next_evaluation_at == rollout.next_evaluation_at,
                    RolloutRow.next_evaluation_at <= now,
                    RolloutRow.state.in_(OPEN_STATES),
                )
                .values(next_evaluation_at=next_at)
            )
            return bool(claimed.rowcount)  # type: ignore[attr-defined]

    def change(self, rollout_id: int, *, expected: tuple[str, ...] = OPEN_STATES, **values: Any) -> Rollout:
        """Update an open rollout's state, mode, share or recommendation; ``RolloutConflictError`` when it is not
        in one of ``expected`` (e.g. it ended meanwhile)."""
        with self.store.session() as session, session.begin():
            row = session.get(RolloutRow, rollout_id, with_for_update=True)
            if row is None:
                raise LookupError(f"no rollout {rollout_id}")
            if row.state not in expected:
                raise RolloutConflictError(f"rollout {rollout_id} is {row.state}, not {' or '.join(expected)}")
            for name, value in values.items():
                setattr(row, name, value)
            row.updated_at = datetime.now(UTC)
            return _rollout(row)

    def end(self, rollout_id: int, *, state: str, decision: str, reason: str, actor: str) -> Rollout:
        """End an open rollout with its decision; ``RolloutConflictError`` when it has ended already."""
        if state not in ENDED_STATES:
            raise ValueError(f"a rollout ends as one of {ENDED_STATES}, not {state!r}")
        now = datetime.now(UTC)
        return self.change(
            rollout_id,
            state=state,
            decision=decision[:32],
            decision_reason=reason,
            decided_by=actor[:128],
            ended_at=now,
        )

    def add_evaluation(self, evaluation: RolloutEvaluation) -> RolloutEvaluation:
        row = RolloutEvaluationRow(
            rollout_id=evaluation.rollout_id,
            evaluated_at=evaluation.evaluated_at,
            champion_samples=evaluation.champion_samples,
            candidate_samples=evaluation.candidate_samples,
            estimate=evaluation.estimate,
            lower=evaluation.lower,
            upper=evaluation.upper,
            verdict=evaluation.verdict[:32],
            reason=evaluation.reason,
            detail=evaluation.detail,
        )
        with self.store.session() as session, session.begin():
            session.add(row)
            session.flush()
            return _evaluation(row)

    def evaluations(self, rollout_id: int, limit: int = 500) -> list[RolloutEvaluation]:
        """Oldest first (the page's time axis), at most ``limit`` of the newest."""
        query = (
            select(RolloutEvaluationRow)
            .where(RolloutEvaluationRow.rollout_id == rollout_id)
            .order_by(RolloutEvaluationRow.id.desc())
            .limit(max(1, min(limit, 5000)))
        )
        with self.store.session() as session:
            return list(reversed([_evaluation(row) for row in session.scalars(query)]))
