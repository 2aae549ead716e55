"""The drift gauges of the platform API, built from ``metric_names`` and filled from the DB at each scrape.

Why refresh on scrape rather than when a check finishes: checks run in Airflow workers (or the CLI), other
processes than the API, and the DB is the one place every API replica can read the latest verdicts from.  One
indexed query per scrape is cheap; a model's series appear only after its first analysed check (the contract in
``metric_names``), and an ``insufficient_data`` check leaves the previous verdict in place, so the
``DriftCheckStale`` alert (on the last success timestamp) is what notices a window that never fills.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy.exc import SQLAlchemyError

from mlplatform.monitoring.metric_names import MetricSpec
from mlplatform.store.drift import DriftCheck, DriftResults

if TYPE_CHECKING:
    from mlplatform.operations.metrics import ApiMetrics
    from mlplatform.store.db import PlatformStore

logger = logging.getLogger(__name__)


def declared_gauge(spec: MetricSpec, registry: CollectorRegistry) -> Gauge:
    """A gauge exactly as ``metric_names`` declares it (name, help, labels), registered in ``registry``."""
    return Gauge(spec.name, spec.help, list(spec.labels), registry=registry)


def _gauges(metrics: ApiMetrics) -> tuple[Gauge, ...]:
    return (
        metrics.feature_drift_score,
        metrics.feature_drifted,
        metrics.dataset_drift_share,
        metrics.dataset_drift,
        metrics.drift_check_last_success,
        metrics.drift_check_rows,
    )


def show_checks(metrics: ApiMetrics, checks: list[DriftCheck]) -> None:
    """Replace every drift series with the given checks' results (one analysed check per model)."""
    for gauge in _gauges(metrics):
        gauge.clear()
    for check in checks:
        for feature in check.features:
            if feature.score is not None:
                metrics.feature_drift_score.labels(check.model, feature.feature).set(feature.score)
            if feature.drifted is not None:
                metrics.feature_drifted.labels(check.model, feature.feature).set(int(feature.drifted))
        metrics.dataset_drift_share.labels(check.model).set(check.drift_share or 0.0)
        metrics.dataset_drift.labels(check.model).set(int(bool(check.dataset_drift)))
        metrics.drift_check_last_success.labels(check.model).set(check.finished_at.timestamp())
        metrics.drift_check_rows.labels(check.model).set(check.rows_compared)


def refresh_from(metrics: ApiMetrics, results: DriftResults) -> None:
    """Load the latest analysed check per model; on a DB error keep the previous values (logged, not raised)."""
    try:
        checks = results.latest_analysed()
    except SQLAlchemyError as error:
        logger.warning("drift gauges not refreshed: the platform DB did not answer (%s)", type(error).__name__)
        return
    show_checks(metrics, checks)


def serve_from_db(metrics: ApiMetrics, store: PlatformStore) -> None:
    """Have ``metrics`` show the latest drift results of ``store`` at every scrape."""
    results = DriftResults(store)
    metrics.on_scrape(lambda: refresh_from(metrics, results))
