"""The retraining policy: which drift alerts start a training run, and how a run is started despite Airflow outages.

For each alert of a webhook notification, in order:

1. not ``DatasetDriftDetected``/``FeatureDriftDetected`` -> skipped ``not_a_drift_alert``; ``resolved`` -> skipped
   ``resolved``; no spec for its ``model`` label -> skipped ``unknown_model``;
2. its idempotency key (fingerprint + startsAt) already acted on -> ``duplicate``: a replay never starts a run;
3. the model's last trigger is younger than ``alerts.cooldown_s`` -> ``cooldown``;
4. that trigger is still pending, or its Airflow run is still queued/running -> ``in_flight``;
5. otherwise the key is claimed (a unique row, so concurrent deliveries cannot both pass) as a ``pending``
   trigger and the model's training DAG is triggered with the reason in its conf.

Starting the run is retried: an attempt Airflow does not take leaves the trigger pending with a next attempt time
(doubling waits up to ``alerts.retry_max_s``); the API's retry worker (``webapp``, a ``waiting.Periodic``) retries due
triggers until Airflow takes them or ``alerts.retry_give_up_s`` has passed (then ``failed``).  The Airflow run id
is derived from the idempotency key, so an attempt whose answer was lost cannot start a second run: Airflow answers
the retry 409 and the existing run is adopted.  Every decision and attempt is recorded (``RetrainRecords``),
audited as actor ``alertmanager`` and counted in ``mlplatform_retrain_triggers_total``.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from mlplatform.store.retrains import STATUS_PENDING, STATUS_TRIGGERED, AlertRef, RetrainTrigger

if TYPE_CHECKING:
    from prometheus_client import Counter

    from mlplatform.config import AlertsSettings
    from mlplatform.orchestration.airflow_client import DagRun
    from mlplatform.retraining.alertmanager import Alert, WebhookPayload
    from mlplatform.store.audit import AuditLog
    from mlplatform.store.retrains import RetrainRecords

ACTOR = "alertmanager"
DRIFT_ALERTS = frozenset({"DatasetDriftDetected", "FeatureDriftDetected", "ModelQualityDropped"})
"""Alerts that ask for a retrain: data drift, and a drop of the quality the late labels measure (concept drift)."""
SKIP_NOT_A_DRIFT_ALERT = "not_a_drift_alert"
SKIP_RESOLVED = "resolved"
SKIP_UNKNOWN_MODEL = "unknown_model"
SKIP_DUPLICATE = "duplicate"
SKIP_COOLDOWN = "cooldown"
SKIP_IN_FLIGHT = "in_flight"
# Skips that are retrain requests turned down by the policy count in the metric; the others were never requests.
METRIC_RESULTS = {SKIP_DUPLICATE: "duplicate", SKIP_COOLDOWN: "skipped_cooldown", SKIP_IN_FLIGHT: "skipped_in_flight"}
MAX_REASON = 500  # the training DAG's ``reason`` param allows 500 characters
log = logging.getLogger(__name__)


class RetrainOrchestrator(Protocol):
    """What the policy needs from Airflow: start a run under a chosen id, read a run."""

    def trigger(self, dag_id: str, conf: Mapping[str, Any], run_id: str | None = None) -> DagRun: ...

    def get_run(self, dag_id: str, run_id: str) -> DagRun: ...


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class RetrainPolicy:
    """Decides on each alert and starts (or retries starting) the training runs it calls for."""

    records: RetrainRecords
    audit: AuditLog
    orchestrator: Callable[[], RetrainOrchestrator]
    training_dag: Callable[[str], str | None]
    settings: AlertsSettings
    triggers_counter: Counter
    audit_counter: Counter
    clock: Callable[[], datetime] = _now
    _locks: defaultdict[str, threading.Lock] = field(default_factory=lambda: defaultdict(threading.Lock))

    # -- alerts ----------------------------------------------------------------------------------------------

    def handle(self, payload: WebhookPayload, client: str | None) -> list[RetrainTrigger]:
        """Decide on every alert of one notification; one record each."""
        return [self.handle_alert(alert, client) for alert in payload.alerts]

    def handle_alert(self, alert: Alert, client: str | None) -> RetrainTrigger:
        model = alert.labels.get("model", "")
        ref = AlertRef(model, alert.name, alert.fingerprint, alert.starts_at, alert.idempotency_key)
        if alert.name not in DRIFT_ALERTS:
            return self._skip(ref, SKIP_NOT_A_DRIFT_ALERT, client)
        if alert.status == "resolved":
            return self._skip(ref, SKIP_RESOLVED, client)
        dag_id = self.training_dag(model) if model else None
        if dag_id is None:
            return self._skip(ref, SKIP_UNKNOWN_MODEL, client)
        with self._locks[model]:  # one decision per model at a time in this process; the claim guards the rest
            skip_reason = self._refusal(ref, dag_id)
            if skip_reason is not None:
                return self._skip(ref, skip_reason, client)
            claimed = self.records.claim(
                ref, dag_id, alert.run_id, _reason(alert), first_attempt_at=self.clock() + self._delay(1)
            )
        if claimed is None:  # another delivery of this alert claimed the key between our check and our insert
            return self._skip(ref, SKIP_DUPLICATE, client)
        return self.attempt(claimed, client)

    def _refusal(self, ref: AlertRef, dag_id: str) -> str | None:
        """Why this alert must not start a run now, or None when it should."""
        if ref.idempotency_key and self.records.claimed(ref.idempotency_key) is not None:
            return SKIP_DUPLICATE
        last = self.records.last_claim(ref.model)
        if last is None:
            return None
        if self.clock() - last.created_at < timedelta(seconds=self.settings.cooldown_s):
            return SKIP_COOLDOWN
        if last.status == STATUS_PENDING or (last.status == STATUS_TRIGGERED and self._running(dag_id, last)):
            return SKIP_IN_FLIGHT
        return None

    def _running(self, dag_id: str, last: RetrainTrigger) -> bool:
        """Whether the last run we started is still queued or running in Airflow.

        When Airflow cannot say (it is down) the answer is "no": the new trigger then waits as pending like any
        other, and the training DAG's ``max_active_runs=1`` queues it behind a run that might still be going.
        """
        from mlplatform.orchestration.airflow_client import AirflowError

        if last.dag_run_id is None:
            return False
        try:
            return not self.orchestrator().get_run(dag_id, last.dag_run_id).finished
        except AirflowError as error:
            log.warning("cannot read retrain run %s of %s: %s", last.dag_run_id, dag_id, error)
            return False

    def _skip(self, ref: AlertRef, skip_reason: str, client: str | None) -> RetrainTrigger:
        record = self.records.skip(ref, skip_reason)
        if skip_reason in METRIC_RESULTS:
            self.triggers_counter.labels(ref.model, METRIC_RESULTS[skip_reason]).inc()
        self._audit("retrain.skip", ref.model or ref.alertname or "-", "skipped", record, client, reason=skip_reason)
        return record

    # -- starting runs ---------------------------------------------------------------------------------------

    def attempt(self, trigger: RetrainTrigger, client: str | None = None) -> RetrainTrigger:
        """One attempt to start the pending trigger's run; a failure schedules the next attempt (or gives up)."""
        assert trigger.dag_id is not None and trigger.dag_run_id is not None
        try:
            run = self._start(trigger.dag_id, trigger.dag_run_id, trigger.reason)
        except Exception as error:  # any failure to start the run is retried, never lost
            return self._attempt_failed(trigger, error, client)
        done = self.records.triggered(trigger.id, run.run_id)
        self.triggers_counter.labels(trigger.model, "triggered").inc()
        self._audit("retrain.trigger", trigger.model, "ok", done, client, reason=trigger.reason, to_value=run.run_id)
        return done

    def _start(self, dag_id: str, run_id: str, reason: str) -> DagRun:
        """Trigger under our run id; a 409 means an earlier attempt did create it, so that run is the answer."""
        from mlplatform.orchestration.airflow_client import AirflowError

        orchestrator = self.orchestrator()
        conf = {"reason": reason, "requested_by": ACTOR}
        try:
            return orchestrator.trigger(dag_id, conf, run_id=run_id)
        except AirflowError as error:
            if error.status_code != 409:
                raise
            return orchestrator.get_run(dag_id, run_id)

    def _attempt_failed(self, trigger: RetrainTrigger, error: Exception, client: str | None) -> RetrainTrigger:
        message = f"{type(error).__name__}: {error}"
        next_at: datetime | None = self.clock() + self._delay(trigger.attempts + 1)
        if next_at is not None and next_at - trigger.created_at > timedelta(seconds=self.settings.retry_give_up_s):
            next_at = None
        failed = self.records.attempt_failed(trigger.id, message, next_at)
        self.triggers_counter.labels(trigger.model, "failed").inc()
        log.warning("retrain of %s not started (attempt %d): %s", trigger.model, failed.attempts, message)
        detail = {"error": message[:500], "next_attempt_at": next_at.isoformat() if next_at else None}
        self._audit("retrain.trigger", trigger.model, "failed", failed, client, reason=trigger.reason, **detail)
        return failed

    def _delay(self, attempt: int) -> timedelta:
        """Wait before attempt ``attempt + 1``: doubling from ``retry_initial_s``, capped at ``retry_max_s``."""
        seconds = min(self.settings.retry_max_s, self.settings.retry_initial_s * 2 ** min(attempt - 1, 30))
        return timedelta(seconds=seconds)

    def retry_due(self) -> list[RetrainTrigger]:
        """Attempt every pending trigger whose next attempt is due (the worker's tick)."""
        return [self.attempt(trigger) for trigger in self.records.due(self.clock())]

    def _audit(
        self,
        action: str,
        target: str,
        result: str,
        record: RetrainTrigger,
        client: str | None,
        *,
        reason: str,
        to_value: str | None = None,
        **extra: Any,
    ) -> None:
        detail = {
            "alertname": record.alertname,
            "fingerprint": record.fingerprint,
            "starts_at": record.starts_at.isoformat() if record.starts_at else None,
            "idempotency_key": record.idempotency_key,
            "retrain_id": record.id,
            "status": record.status,
            **extra,
        }
        self.audit.record(
            actor=ACTOR,
            action=action,
            target=target,
            result=result,
            reason=reason,
            to_value=to_value,
            client=client,
            detail=detail,
        )
        self.audit_counter.labels(result).inc()


def _reason(alert: Alert) -> str:
    """The run's reason (lineage and audit): which alert, since when, and its summary."""
    summary = alert.annotations.get("summary", "")
    text = f"{alert.name} since {alert.starts_at.isoformat(timespec='seconds')}" + (f": {summary}" if summary else "")
    return text[:MAX_REASON]
