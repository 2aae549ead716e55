"""The drift metrics of the platform API: a Prometheus collector that reads the latest drift results at each scrape.

Why read on scrape rather than when a check finishes: checks run in Airflow workers (or the CLI), other processes
than the API, and the DB is the one place every API replica can read the latest verdicts from.  One indexed query
per scrape is cheap; a model's series appear only after its first analysed check (the contract in
``metric_names``), and an ``insufficient_data`` check leaves the previous verdict in place, so the
``DriftCheckStale`` alert (on the last success timestamp) is what notices a window that never fills.

A custom collector (``collect()``) rather than gauges refreshed before each render: every scrape builds its series
from one query, so none ever shows half of one refresh and half of another, and the web app only registers it.
"""

from __future__ import annotations

import logging

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.exc import SQLAlchemyError

from mlplatform.monitoring.metric_names import (
    DATASET_DRIFT,
    DATASET_DRIFT_SHARE,
    DRIFT_CHECK_LAST_SUCCESS,
    DRIFT_CHECK_ROWS,
    FEATURE_DRIFT_SCORE,
    FEATURE_DRIFTED,
    MetricSpec,
)
from mlplatform.store.drift import DriftCheck, DriftResults

logger = logging.getLogger(__name__)


def _family(spec: MetricSpec) -> GaugeMetricFamily:
    """A gauge family exactly as ``metric_names`` declares it (name, help, labels)."""
    return GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))


def drift_families(checks: list[DriftCheck]) -> list[GaugeMetricFamily]:
    """Every drift family, holding the given checks' results (one analysed check per model)."""
    score, drifted = _family(FEATURE_DRIFT_SCORE), _family(FEATURE_DRIFTED)
    share, dataset = _family(DATASET_DRIFT_SHARE), _family(DATASET_DRIFT)
    last_success, rows = _family(DRIFT_CHECK_LAST_SUCCESS), _family(DRIFT_CHECK_ROWS)
    for check in checks:
        for feature in check.features:
            if feature.score is not None:
                score.add_metric([check.model, feature.feature], feature.score)
            if feature.drifted is not None:
                drifted.add_metric([check.model, feature.feature], int(feature.drifted))
        share.add_metric([check.model], check.drift_share or 0.0)
        dataset.add_metric([check.model], int(bool(check.dataset_drift)))
        last_success.add_metric([check.model], check.finished_at.timestamp())
        rows.add_metric([check.model], check.rows_compared)
    return [score, drifted, share, dataset, last_success, rows]


class DriftCollector:
    """The latest analysed drift check of each model, read from the platform DB when Prometheus scrapes."""

    def __init__(self, results: DriftResults) -> None:
        self._results = results
        self._checks: list[DriftCheck] = []  # the last answer, shown again while the DB does not answer

    def describe(self) -> list[GaugeMetricFamily]:
        """The families without samples, so registering the collector reads nothing from the DB."""
        return drift_families([])

    def collect(self) -> list[GaugeMetricFamily]:
        """The latest results; on a DB error the previous ones (logged, not raised)."""
        try:
            self._checks = self._results.latest_analysed()
        except SQLAlchemyError as error:
            logger.warning("drift metrics not refreshed: the platform DB did not answer (%s)", type(error).__name__)
        return drift_families(self._checks)
