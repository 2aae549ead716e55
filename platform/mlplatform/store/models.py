"""ORM tables of the platform database. Schema changes go through Alembic migrations in ``migrations/``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Double, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


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
    """One logged prediction of a model server (production sink of ``mlplatform.serving.prediction_log``).

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
    score: Mapped[float] = mapped_column(Double)
    label: Mapped[int] = mapped_column(Integer)
