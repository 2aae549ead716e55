"""Drift check results in the platform DB (migration 0005): one row per check, one per feature of a check.

Why in the platform DB rather than only in MLflow or the HTML report: the API exports the latest verdicts as
Prometheus gauges at every scrape and pages through past checks, both cheap indexed reads here.  The rows are
appended once per check and updated only to mark that its HTML report was kept; the report itself is in the
report store the settings name (``mlplatform.monitoring.reports``: the state directory or MLflow), named by the
row's id so no caller ever supplies a path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from mlplatform.store.models import Base, as_utc

if TYPE_CHECKING:
    from mlplatform.store.db import PlatformStore

DriftStatus = Literal["no_drift", "drift", "insufficient_data"]
ANALYSED: tuple[DriftStatus, ...] = ("no_drift", "drift")
MAX_LIMIT = 200
_ID = BigInteger().with_variant(Integer(), "sqlite")


class DriftCheckRow(Base):
    __tablename__ = "drift_checks"
    __table_args__ = (Index("ix_drift_checks_model_id", "model", "id"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    reference_run_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    window_start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    rows: Mapped[int] = mapped_column(Integer)
    rows_compared: Mapped[int] = mapped_column(Integer)
    min_rows: Mapped[int] = mapped_column(Integer)
    reference_rows: Mapped[int] = mapped_column(Integer)
    drift_share_threshold: Mapped[float] = mapped_column(Float)
    drift_share: Mapped[float | None] = mapped_column(Float, nullable=True)
    dataset_drift: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    prediction_method: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prediction_drift_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    prediction_drifted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    has_report: Mapped[bool] = mapped_column(Boolean)
    actor: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class DriftFeatureRow(Base):
    __tablename__ = "drift_feature_results"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    check_id: Mapped[int] = mapped_column(_ID, ForeignKey("drift_checks.id", ondelete="CASCADE"), index=True)
    feature: Mapped[str] = mapped_column(String(128))
    method: Mapped[str | None] = mapped_column(String(64), nullable=True)
    threshold: Mapped[float | None] = mapped_column(Float, nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    drifted: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    missing_count: Mapped[int] = mapped_column(Integer)
    out_of_range_count: Mapped[int] = mapped_column(Integer)
    reference_min: Mapped[float | None] = mapped_column(Float, nullable=True)
    reference_max: Mapped[float | None] = mapped_column(Float, nullable=True)


@dataclass(frozen=True)
class FeatureDrift:
    """One feature in one check: Evidently's method, threshold, score and verdict, plus data quality counts.

    ``score`` is Evidently's ``drift_score`` as reported (a p-value or a distance, depending on ``method``).
    Out of range means outside the reference's [min, max]; missing counts NaN/None in the current window.
    """

    feature: str
    method: str | None
    threshold: float | None
    score: float | None
    drifted: bool | None
    missing_count: int
    out_of_range_count: int
    reference_min: float | None
    reference_max: float | None


@dataclass(frozen=True)
class DriftCheck:
    """A finished drift check.  Analysis fields are None when ``status`` is ``insufficient_data``."""

    model: str
    model_version: str
    reference_run_id: str
    status: DriftStatus
    window_start: datetime
    window_end: datetime
    rows: int
    rows_compared: int
    min_rows: int
    reference_rows: int
    drift_share_threshold: float
    started_at: datetime
    finished_at: datetime
    actor: str
    drift_share: float | None = None
    dataset_drift: bool | None = None
    prediction_method: str | None = None
    prediction_drift_score: float | None = None
    prediction_drifted: bool | None = None
    has_report: bool = False
    features: tuple[FeatureDrift, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


_CHECK_FIELDS = (
    "model",
    "model_version",
    "reference_run_id",
    "status",
    "window_start",
    "window_end",
    "rows",
    "rows_compared",
    "min_rows",
    "reference_rows",
    "drift_share_threshold",
    "drift_share",
    "dataset_drift",
    "prediction_method",
    "prediction_drift_score",
    "prediction_drifted",
    "has_report",
    "actor",
    "started_at",
    "finished_at",
)
_FEATURE_FIELDS = tuple(FeatureDrift.__dataclass_fields__)


def _to_check(row: DriftCheckRow, features: list[DriftFeatureRow]) -> DriftCheck:
    values = {name: getattr(row, name) for name in _CHECK_FIELDS}
    for moment in ("window_start", "window_end", "started_at", "finished_at"):
        values[moment] = as_utc(values[moment])
    return DriftCheck(
        **values,
        id=row.id,
        detail=dict(row.detail or {}),
        features=tuple(FeatureDrift(**{name: getattr(f, name) for name in _FEATURE_FIELDS}) for f in features),
    )


class DriftResults:
    """Append and read drift checks."""

    def __init__(self, store: PlatformStore) -> None:
        self.store = store

    def record(self, check: DriftCheck) -> int:
        """Store a check with its features in one transaction; returns the check's id."""
        row = DriftCheckRow(**{name: getattr(check, name) for name in _CHECK_FIELDS}, detail=check.detail)
        with self.store.session() as session, session.begin():
            session.add(row)
            session.flush()
            session.add_all(
                DriftFeatureRow(check_id=row.id, **{name: getattr(f, name) for name in _FEATURE_FIELDS})
                for f in check.features
            )
        return row.id

    def set_has_report(self, check_id: int) -> None:
        """Mark that the check's HTML report was written (after the row exists, since its id names the file)."""
        with self.store.session() as session, session.begin():
            row = session.get(DriftCheckRow, check_id)
            if row is not None:
                row.has_report = True

    def get(self, model: str, check_id: int) -> DriftCheck | None:
        """One check of one model (None when the id belongs to no check of that model)."""
        with self.store.session() as session:
            row = session.get(DriftCheckRow, check_id)
            if row is None or row.model != model:
                return None
            return _to_check(row, self._features(session, [row.id]).get(row.id, []))

    def for_model(self, model: str, *, limit: int = 20, before_id: int | None = None) -> list[DriftCheck]:
        """Checks of one model, newest first, with their features; page with ``before_id``."""
        query = select(DriftCheckRow).where(DriftCheckRow.model == model)
        if before_id is not None:
            query = query.where(DriftCheckRow.id < before_id)
        query = query.order_by(DriftCheckRow.id.desc()).limit(max(1, min(limit, MAX_LIMIT)))
        with self.store.session() as session:
            rows = session.scalars(query).all()
            features = self._features(session, [row.id for row in rows])
        return [_to_check(row, features.get(row.id, [])) for row in rows]

    def latest_analysed(self) -> list[DriftCheck]:
        """The newest check of every model that ran the comparison (what the Prometheus gauges show)."""
        newest = (
            select(func.max(DriftCheckRow.id))
            .where(DriftCheckRow.status.in_(ANALYSED))
            .group_by(DriftCheckRow.model)
            .scalar_subquery()
        )
        with self.store.session() as session:
            rows = session.scalars(select(DriftCheckRow).where(DriftCheckRow.id.in_(newest))).all()
            features = self._features(session, [row.id for row in rows])
        return [_to_check(row, features.get(row.id, [])) for row in sorted(rows, key=lambda r: r.model)]

    @staticmethod
    def _features(session: Session, check_ids: list[int]) -> dict[int, list[DriftFeatureRow]]:
        if not check_ids:
            return {}
        query = select(DriftFeatureRow).where(DriftFeatureRow.check_id.in_(check_ids)).order_by(DriftFeatureRow.id)
        grouped: dict[int, list[DriftFeatureRow]] = {}
        for row in session.scalars(query):
            grouped.setdefault(row.check_id, []).append(row)
        return grouped
