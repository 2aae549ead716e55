"""Outcomes in the platform DB (migration 0011): late labels of served predictions, and the online quality
measured from them.

Why here: labels arrive days after the predictions they label (a chargeback confirms fraud long after the
authorisation), from files, the API or a scheduled DAG; the rollout evaluator and the quality metrics need them
joined to the prediction log, window after window, so they are kept once, deduplicated by what they label.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, DateTime, Double, Index, Integer, String, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from mlplatform.store.models import Base, as_utc

if TYPE_CHECKING:
    import pandas as pd

    from mlplatform.store.db import PlatformStore

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


INGEST_CHUNK = 5_000
"""Labels checked against stored ones per query (bounded IN lists)."""


class ConcurrentIngestError(RuntimeError):
    """Another ingest stored some of the same labels meanwhile; ingesting again skips them as duplicates."""


@dataclass(frozen=True)
class IngestResult:
    """What an ingest did with each label: stored, skipped as a duplicate, or refused as a conflict."""

    inserted: int
    duplicates: int
    conflicts: list[str]


@dataclass(frozen=True)
class QualityRecord:
    model: str
    version: str
    arm: str
    window_start: datetime
    window_end: datetime
    labelled: int
    metrics: dict[str, Any]
    computed_at: datetime


def _key(request_id: str | None, entity: str, event_ts: datetime | None) -> tuple[Any, ...]:
    return ("id", request_id, entity) if request_id is not None else ("time", entity, event_ts)


def _described(key: tuple[Any, ...]) -> str:
    kind, first, second = key
    return f"request {first} entity {second}" if kind == "id" else f"entity {first} at {second}"


class OutcomeRecords:
    """Labels and online quality in the platform DB."""

    def __init__(self, store: PlatformStore) -> None:
        self.store = store

    def add(self, model: str, labels: pd.DataFrame, source: str) -> IngestResult:
        """Store normalised labels (``monitoring.outcomes.LABEL_COLUMNS``) once each: a label already stored (or
        repeated in the batch) with the same value is a duplicate; with another value, a conflict, reported and
        not applied (a correction is a decision, not an upload)."""
        import pandas as pd

        now = datetime.now(UTC)
        rows = [
            (
                None if request_id is None or pd.isna(request_id) else str(request_id),
                str(entity),
                None if pd.isna(event_ts) else pd.Timestamp(event_ts).to_pydatetime(),
                float(label),
            )
            for entity, request_id, event_ts, label in labels[
                ["entity_value", "request_id", "event_ts", "label"]
            ].itertuples(index=False)
        ]
        seen: dict[tuple[Any, ...], float] = {}
        fresh: list[OutcomeLabelRow] = []
        duplicates, conflicts = 0, []
        try:
            with self.store.session() as session, session.begin():
                for start in range(0, len(rows), INGEST_CHUNK):
                    chunk = rows[start : start + INGEST_CHUNK]
                    seen.update(self._stored(session, model, {entity for _, entity, _, _ in chunk}))
                    for request_id, entity, event_ts, label in chunk:
                        key = _key(request_id, entity, None if event_ts is None else as_utc(event_ts))
                        if key in seen:
                            if seen[key] == label:
                                duplicates += 1
                            else:
                                conflicts.append(f"{_described(key)}: stored {seen[key]:g}, got {label:g}")
                            continue
                        seen[key] = label
                        fresh.append(
                            OutcomeLabelRow(
                                model_name=model,
                                entity_value=entity,
                                request_id=request_id,
                                event_ts=event_ts,
                                label=label,
                                ingested_at=now,
                                source=source[:255],
                            )
                        )
                session.add_all(fresh)
        except IntegrityError:
            raise ConcurrentIngestError(
                "another ingest stored some of these labels at the same time; nothing of this one was stored: "
                "ingest it again (labels already stored are skipped as duplicates)"
            ) from None
        return IngestResult(len(fresh), duplicates, conflicts)

    @staticmethod
    def _stored(session: Session, model: str, entities: set[str]) -> dict[tuple[Any, ...], float]:
        query = select(
            OutcomeLabelRow.request_id, OutcomeLabelRow.entity_value, OutcomeLabelRow.event_ts, OutcomeLabelRow.label
        ).where(OutcomeLabelRow.model_name == model, OutcomeLabelRow.entity_value.in_(entities))
        return {
            _key(request_id, entity, None if event_ts is None else as_utc(event_ts)): label
            for request_id, entity, event_ts, label in session.execute(query)
        }

    def labels(self, model: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Labels of ``model`` (``LABEL_COLUMNS``): those by request id all, those by event time inside the window."""
        import pandas as pd

        query = select(
            OutcomeLabelRow.entity_value, OutcomeLabelRow.request_id, OutcomeLabelRow.event_ts, OutcomeLabelRow.label
        ).where(OutcomeLabelRow.model_name == model)
        timed = OutcomeLabelRow.event_ts.is_not(None)
        if start is not None:
            query = query.where(or_(~timed, OutcomeLabelRow.event_ts >= start))
        if end is not None:
            query = query.where(or_(~timed, OutcomeLabelRow.event_ts < end))
        with self.store.session() as session:
            rows = session.execute(query.order_by(OutcomeLabelRow.id)).all()
        frame = pd.DataFrame(rows, columns=["entity_value", "request_id", "event_ts", "label"])
        frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True).dt.as_unit("us")
        frame["label"] = frame["label"].astype(float)
        return frame

    def record_quality(self, model: str, window: tuple[datetime, datetime], results: list[dict[str, Any]]) -> None:
        """One row per (version, arm) of ``monitoring.outcomes.online_quality``."""
        now = datetime.now(UTC)
        with self.store.session() as session, session.begin():
            session.add_all(
                OnlineQualityRow(
                    model_name=model,
                    model_version=item["model_version"],
                    arm=item["arm"],
                    window_start=window[0],
                    window_end=window[1],
                    labelled=item["labelled"],
                    metrics=item["metrics"],
                    computed_at=now,
                )
                for item in results
            )

    def latest_quality(self, model: str | None = None) -> list[QualityRecord]:
        """The newest row per (model, version, arm): what the page shows and Prometheus exports."""
        newest = select(func.max(OnlineQualityRow.id)).group_by(
            OnlineQualityRow.model_name, OnlineQualityRow.model_version, OnlineQualityRow.arm
        )
        if model is not None:
            newest = newest.where(OnlineQualityRow.model_name == model)
        query = select(OnlineQualityRow).where(OnlineQualityRow.id.in_(newest.scalar_subquery()))
        with self.store.session() as session:
            return [
                QualityRecord(
                    row.model_name,
                    row.model_version,
                    row.arm,
                    as_utc(row.window_start),
                    as_utc(row.window_end),
                    row.labelled,
                    dict(row.metrics),
                    as_utc(row.computed_at),
                )
                for row in session.scalars(query.order_by(OnlineQualityRow.model_name, OnlineQualityRow.model_version))
            ]
