"""Outcomes in the platform DB (migration 0011): late labels of served predictions, and the online quality
measured from them.

Why here: labels arrive days after the predictions they label (a chargeback confirms fraud long after the
authorisation), from files, the API or a scheduled DAG; the rollout evaluator and the quality metrics need them
joined to the prediction log, window after window, so they are kept once, deduplicated by what they label.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Double, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from mlplatform.store.models import Base

_ID = BigInteger().with_variant(Integer(), "sqlite")


class OutcomeLabelRow(Base):
    """One true outcome of one served entity: the model, the entity's key value, and either the request id of the
    prediction it labels or the time of the labelled event; the observed label; when it was ingested."""

    __tablename__ = "outcome_labels"
    __table_args__ = (
        Index("ux_outcome_labels_request", "model_name", "request_id", "entity_value", unique=True),
        Index("ux_outcome_labels_event", "model_name", "entity_value", "event_ts", unique=True),
        Index("ix_outcome_labels_model_event_ts", "model_name", "event_ts"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(128))
    entity_value: Mapped[str] = mapped_column(String(255))
    """The entity key's value as text (keys are ints or strings; the prediction log's entity is compared as text)."""
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    event_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    label: Mapped[float] = mapped_column(Double)
    ingested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    source: Mapped[str] = mapped_column(String(255))
    """Where the label came from (a file name, ``api:<user>``, a DAG run): for the audit of a wrong label."""


class OnlineQualityRow(Base):
    """Online quality of one model version on one arm over one window of labelled predictions."""

    __tablename__ = "online_quality"
    __table_args__ = (Index("ix_online_quality_model_id", "model_name", "id"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(32))
    arm: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    labelled: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
