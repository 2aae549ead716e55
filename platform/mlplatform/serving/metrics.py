"""Prometheus metrics of a model server, on a registry of their own.

Why a private ``CollectorRegistry``: KServe and BentoML register their own metrics in the global registry, with
their own names and buckets.  Keeping ours apart means ``/metrics`` shows exactly the series that the platform's
alert rules and dashboards query, whichever server runs, and tests can build many ``ServingMetrics`` in one
process without "duplicated timeseries" errors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

STAGES = ("feature_fetch", "predict", "total")
OUTCOMES = ("ok", "partial", "invalid", "too_large", "unauthorized", "unavailable", "error")
# Serving stages take from well under a millisecond (predict on one row) to a second (a cold online store):
# fine steps at the bottom, where the latency objectives live.
STAGE_BUCKETS = (
    0.0005,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.004,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
)
SCORE_BUCKETS = tuple(round(step / 20, 2) for step in range(1, 21))
CONTENT_TYPE = CONTENT_TYPE_LATEST

if TYPE_CHECKING:
    from mlplatform.registry.traffic import TrafficPlan


@dataclass(frozen=True)
class ModelSeries:
    """One model's request-path series with their label values bound once: ``labels()`` takes a lock and
    builds a key on every call, six times per request otherwise.  Binding also exports every outcome and stage
    from the start, at 0, as Prometheus advises for known label values."""

    requests: dict[str, Any]
    stages: dict[str, Any]
    scores: Any
    values: Any
    scored: Any
    rejected: Any


def keep_values_in_process() -> None:
    """Hold this process's metric values in memory from now on, whatever ``PROMETHEUS_MULTIPROC_DIR`` says.

    Why: BentoML's arbiter sets that variable for its workers (and Feast's metrics module sets it when it is
    imported first), and prometheus_client then keeps every value in a memory-mapped file, written under a lock on
    each increment: a tenth to a sixth of what BentoML's one-entity requests cost over the floor's went there
    (docs/performance.md, 2026-12-06, late night).  The files serve nothing here: ``/metrics`` renders the private
    registry from this process's own values, one worker per server (``render_metrics``)."""
    from prometheus_client import values

    values.ValueClass = values.MutexValue


class ServingMetrics:
    """Every series a model server exports; one instance per server process."""

    def __init__(self) -> None:
        keep_values_in_process()
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mlplatform_serving_requests",
            "Prediction requests by outcome (ok, partial = some rows rejected, invalid, too_large, unauthorized, "
            "unavailable).",
            ["model", "outcome"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "mlplatform_serving_stage_seconds",
            "Time per request stage: feature_fetch (online store), predict (model), total.",
            ["model", "stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.scores = Histogram(
            "mlplatform_serving_prediction_score",
            "Predicted probabilities of classifiers (binary: the positive class; multiclass: the predicted class), "
            "for score-distribution drift alerts.",
            ["model"],
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        # A regression model's values have the target's own scale, which no fixed buckets fit: count and sum give
        # the mean predicted value over any window (rate(_sum) / rate(_count)), enough to see it shift.
        self.values = Summary(
            "mlplatform_serving_prediction_value",
            "Predicted values of regression models, in the target's unit.",
            ["model"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "mlplatform_serving_model_info",
            "1 for the model version being served.",
            ["model", "version"],
            registry=self.registry,
        )
        self.model_from_cache = Gauge(
            "mlplatform_serving_model_from_cache",
            "1 while the served model came from the local cache because the registry was unreachable.",
            ["model"],
            registry=self.registry,
        )
        self.swaps = Counter(
            "mlplatform_serving_model_swaps",
            "Model versions swapped in after an alias move.",
            ["model"],
            registry=self.registry,
        )
        self.log_dropped = Counter(
            "mlplatform_serving_prediction_log_dropped",
            "Prediction records dropped because the log's queue was full (or its sink failed).",
            ["model"],
            registry=self.registry,
        )
        self.log_written = Counter(
            "mlplatform_serving_prediction_log_written",
            "Prediction records written to the prediction log.",
            ["model"],
            registry=self.registry,
        )
        self.entities = Counter(
            "mlplatform_serving_entities",
            "Entities scored or rejected, by result (scored, rejected).",
            ["model", "result"],
            registry=self.registry,
        )

        self.rollout_share = Gauge(
            "mlplatform_serving_rollout_share",
            "The share of entities a rollout's candidate answers (0 in shadow or while paused); present only while a "
            "rollout runs.",
            ["model", "rollout", "candidate_version", "mode"],
            registry=self.registry,
        )
        self.arm_entities = Counter(
            "mlplatform_serving_arm_entities",
            "Entities each arm of a rollout (champion, candidate) scored: answered, shadow (scored, not answered) or "
            "failed (the arm could not score it; the champion answered instead).",
            ["model", "arm", "result"],
            registry=self.registry,
        )
        self.arm_seconds = Histogram(
            "mlplatform_serving_arm_seconds",
            "Time each arm of a rollout took to fetch features for and score its part of a request.",
            ["model", "arm"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.shadow_skipped = Counter(
            "mlplatform_serving_shadow_skipped",
            "Requests not shadowed because the shadow queue was full (serving.shadow_queue).",
            ["model"],
            registry=self.registry,
        )

        self.error_responses = Counter(
            "mlplatform_serving_error_responses",
            "Answers with a 4xx or 5xx status by code, whichever layer gave them (body limit, routing, the "
            "prediction API): a refusal that never reached the model is counted too.",
            ["model", "code"],
            registry=self.registry,
        )

    def refused_responses(self, model: str) -> Callable[[int], None]:
        """What ``RefusalCounter`` calls with each 4xx/5xx status the server answers for ``model``."""

        def count(status: int) -> None:
            self.error_responses.labels(model, str(status)).inc()

        return count

    def model_series(self, model: str) -> ModelSeries:
        return ModelSeries(
            requests={outcome: self.requests.labels(model, outcome) for outcome in OUTCOMES},
            stages={stage: self.stage_seconds.labels(model, stage) for stage in STAGES},
            scores=self.scores.labels(model),
            values=self.values.labels(model),
            scored=self.entities.labels(model, "scored"),
            rejected=self.entities.labels(model, "rejected"),
        )

    def set_model_version(self, model: str, version: str, from_cache: bool) -> None:
        """Point the info gauge at ``version`` alone (the old version's series is removed, not left at 1)."""
        for family in self.model_info.collect():
            for sample in list(family.samples):
                if sample.labels.get("model") == model and sample.labels.get("version") != version:
                    self.model_info.remove(model, sample.labels["version"])
        self.model_info.labels(model, version).set(1)
        self.model_from_cache.labels(model).set(1 if from_cache else 0)

    def set_rollout(self, model: str, plan: TrafficPlan | None) -> None:
        """Point the rollout gauge at ``plan`` alone (``None``: no rollout, no series)."""
        for family in self.rollout_share.collect():
            for sample in list(family.samples):
                if sample.labels.get("model") == model:
                    labels = sample.labels
                    self.rollout_share.remove(model, labels["rollout"], labels["candidate_version"], labels["mode"])
        if plan is not None:
            share = 0.0 if plan.paused or plan.mode == "shadow" else plan.share
            self.rollout_share.labels(model, str(plan.rollout_id), plan.candidate_version, plan.mode).set(share)

    def render(self) -> bytes:
        """Text exposition of this registry (what ``/metrics`` returns)."""
        return generate_latest(self.registry)


def render_metrics(metrics: ServingMetrics) -> tuple[bytes, str]:
    """Body and content type of a ``/metrics`` response."""
    return metrics.render(), CONTENT_TYPE


class RefusalCounter:
    """ASGI middleware: ``refused(status)`` for every answer of status 400 or more, and a 500 for an exception that
    leaves the application before any answer (the server's last-resort handler answers it outside this one)."""

    def __init__(self, app: Any, refused: Callable[[int], None]) -> None:
        self.app = app
        self.refused = refused

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def counting_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if message["status"] >= 400:
                    self.refused(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        except Exception:
            if not started:
                self.refused(500)
            raise
