"""Rollouts in the platform DB (migration 0011): one row per rollout of a candidate version against the champion,
and one per evaluation of it.

Why in the platform DB: the evaluator, the API, the UI and the CLI all read and change a rollout, possibly from
several processes; model servers never read these tables (they read the traffic plan the platform publishes on the
registered model, ``mlplatform.registry.traffic``), so their credential stays insert-only on the prediction log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Double, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mlplatform.store.models import Base

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
