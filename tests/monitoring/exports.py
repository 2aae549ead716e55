"""What the services really export, read from their ``/metrics`` exposition, plus the declared API metrics.

Names come from the text exposition itself (``# TYPE`` lines), so a renamed collector shows up here exactly as a
scraper would see it.  Label names come from the collectors (a family with no children yet has no samples to
carry them); the test cross-checks that both views name the same families.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from mlplatform.monitoring.drift_metrics import DriftCollector
from mlplatform.monitoring.metric_names import PLATFORM_API_METRICS
from mlplatform.monitoring.quality_metrics import QualityCollector

# Labels Prometheus attaches at scrape time (target labels); rules may group and join on them.
TARGET_LABELS = frozenset({"instance", "job"})


@dataclass(frozen=True)
class Known:
    """A series name a rule or dashboard may select, with its labels and where it comes from."""

    name: str
    type: str
    labels: frozenset[str]
    source: str


def _series_names(family: str, kind: str) -> tuple[str, ...]:
    if kind == "counter":
        return (f"{family}_total",)
    if kind == "histogram":
        return (f"{family}_bucket", f"{family}_sum", f"{family}_count")
    if kind == "summary":
        return (family, f"{family}_sum", f"{family}_count")
    if kind == "info":
        return (f"{family}_info",)
    return (family,)


def exposition_families(text: str) -> dict[str, str]:
    """Family name -> type of a text exposition (what a Prometheus scrape of ``/metrics`` reads).

    prometheus_client writes the creation time of each counter and histogram child as a gauge family of its own,
    ``<family>_created``; it belongs to that family, so it is left out here.
    """
    families = {family.name: family.type for family in text_string_to_metric_families(text)}
    return {
        name: kind
        for name, kind in families.items()
        if not (name.endswith("_created") and families.get(name.removesuffix("_created")) in ("counter", "histogram"))
    }


def collector_labels(owner: object) -> dict[str, frozenset[str]]:
    """Family name -> label names of the collectors held as attributes of ``owner`` (e.g. ``ServingMetrics``)."""
    labels = {}
    for value in vars(owner).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name.removesuffix("_total") if value._type == "counter" else value._name
            labels[name] = frozenset(value._labelnames)
    return labels


def described_labels(collector: DriftCollector | QualityCollector) -> dict[str, frozenset[str]]:
    """Family name -> label names of a custom collector, from the (sample-less) families its ``describe()`` returns."""
    return {family.name: frozenset(family._labelnames) for family in collector.describe()}


def known_from_exposition(text: str, labels: dict[str, frozenset[str]], source: str) -> dict[str, Known]:
    known = {}
    for family, kind in exposition_families(text).items():
        family_labels = labels[family]
        for name in _series_names(family, kind):
            extra = frozenset({"le"}) if name.endswith("_bucket") else frozenset()
            known[name] = Known(name, kind, family_labels | extra, source)
    return known


def known_declared() -> dict[str, Known]:
    known = {}
    for spec in PLATFORM_API_METRICS:
        for name in spec.sample_names():
            extra = frozenset({"le"}) if name.endswith("_bucket") else frozenset()
            known[name] = Known(name, spec.type, frozenset(spec.labels) | extra, "declared")
    return known


def render(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()
