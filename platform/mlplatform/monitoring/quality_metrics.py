"""The online-quality metrics of the platform API: a Prometheus collector reading the latest quality per model
version and arm at each scrape (labels are ingested by the API, the CLI or a DAG: the DB is where every replica
finds the latest), like ``drift_metrics``."""

from __future__ import annotations

import logging
import math

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.exc import SQLAlchemyError

from mlplatform.monitoring.metric_names import ONLINE_QUALITY, ONLINE_QUALITY_LABELLED
from mlplatform.store.outcomes import OutcomeRecords, QualityRecord

logger = logging.getLogger(__name__)


def quality_families(records: list[QualityRecord]) -> list[GaugeMetricFamily]:
    quality = GaugeMetricFamily(ONLINE_QUALITY.name, ONLINE_QUALITY.help, labels=list(ONLINE_QUALITY.labels))
    labelled = GaugeMetricFamily(
        ONLINE_QUALITY_LABELLED.name, ONLINE_QUALITY_LABELLED.help, labels=list(ONLINE_QUALITY_LABELLED.labels)
    )
    for record in records:
        for metric, value in sorted(record.metrics.items()):
            if isinstance(value, int | float) and math.isfinite(value):
                quality.add_metric([record.model, record.version, record.arm, metric], float(value))
        labelled.add_metric([record.model, record.version, record.arm], record.labelled)
    return [quality, labelled]


class QualityCollector:
    """The latest online quality of each model version and arm, read from the platform DB when Prometheus scrapes."""

    def __init__(self, records: OutcomeRecords) -> None:
        self._records = records
        self._latest: list[QualityRecord] = []  # shown again while the DB does not answer

    def describe(self) -> list[GaugeMetricFamily]:
        return quality_families([])

    def collect(self) -> list[GaugeMetricFamily]:
        try:
            self._latest = self._records.latest_quality()
        except SQLAlchemyError as error:
            logger.warning("quality metrics not refreshed: the platform DB did not answer (%s)", type(error).__name__)
        return quality_families(self._latest)
