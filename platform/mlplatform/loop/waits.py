"""The loop's waits: for the components that act by themselves (the model server's prediction log, Prometheus,
Alertmanager, the webhook's retrain policy, the server's alias poll).

Each is one ``mlplatform.waiting.wait_until``, bounded by its ``LoopTimeouts`` entry; progress goes to ``say`` while
it waits, and a stall raises ``LoopStalledError`` naming the step and the log to read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from mlplatform.loop.timeline import LoopStalledError, Say
from mlplatform.waiting import WaitTimeoutError, wait_until

if TYPE_CHECKING:
    from mlplatform.config import Settings
    from mlplatform.deploy.base import Deployment
    from mlplatform.specs import ModelSpec
    from mlplatform.store.db import PlatformStore
    from mlplatform.store.retrains import RetrainTrigger

ALERT = "DatasetDriftDetected"
POLL_S = 1.0
# Alertmanager removes an emptied alert group at its next maintenance pass (every 30 s, fixed in its dispatcher);
# an alert arriving before that joins the old group and waits for its group_interval (5 min) instead of group_wait.
ALERTMANAGER_MAINTENANCE_S = 31.0

T = TypeVar("T")


def _wait(
    step: str,
    check: Callable[[], T | None],
    timeout: float,
    *,
    stalled: Callable[[], str],
    waiting: Callable[[], None],
    interval: float = POLL_S,
) -> T:
    """Wait for a component that acts by itself; a stall fails the loop at ``step`` with ``stalled()``'s message."""
    try:
        return wait_until(check, timeout=timeout, interval=interval, what=step, on_timeout=stalled, on_wait=waiting)
    except WaitTimeoutError as error:
        raise LoopStalledError(step, error.detail) from None


def wait_logged(settings: Settings, model: str, since: datetime, rows: int, timeout: float, say: Say) -> None:
    """The server writes its prediction log in batches; the check must see every request sent."""
    from mlplatform.predictions.reader import read_prediction_log

    logged = 0

    def all_logged() -> bool:
        nonlocal logged
        logged = len(read_prediction_log(settings, model, since, datetime.now(UTC)))
        return logged >= rows

    _wait(
        "prediction log",
        all_logged,
        timeout,
        stalled=lambda: (
            f"{logged}/{rows} requests logged after {timeout:.0f}s; see the model server's log under "
            f"{settings.layout.logs_dir}"
        ),
        waiting=lambda: say(f"waiting for the prediction log: {logged}/{rows}"),
    )


def _prometheus_alerts(settings: Settings, model: str) -> list[dict[str, Any]]:
    from mlplatform.stack.prometheus import prometheus_url

    try:
        body = httpx.get(f"{prometheus_url(settings)}/api/v1/alerts", timeout=5.0).json()
    except (httpx.HTTPError, ValueError):
        return []
    alerts: list[dict[str, Any]] = body.get("data", {}).get("alerts", [])
    return [a for a in alerts if a["labels"].get("alertname") == ALERT and a["labels"].get("model") == model]


def wait_alert(settings: Settings, model: str, checked_from: datetime, timeout: float, say: Say) -> str:
    """The drift alert firing in Prometheus, for an episode that began with this loop's check."""
    from mlplatform.stack.prometheus import prometheus_url

    def firing_since() -> str | None:
        for alert in _prometheus_alerts(settings, model):
            active = datetime.fromisoformat(alert["activeAt"].replace("Z", "+00:00"))
            if alert["state"] == "firing" and active >= checked_from - timedelta(seconds=1):
                return f"{active:%H:%M:%S}"
        return None

    return _wait(
        "alert firing",
        firing_since,
        timeout,
        stalled=lambda: (
            f"{ALERT} for {model} not firing after {timeout:.0f}s; see {prometheus_url(settings)}/alerts, "
            f"{prometheus_url(settings)}/targets and {settings.layout.log_file('prometheus')}"
        ),
        waiting=lambda: say(
            f"waiting for Prometheus to fire {ALERT} (rules evaluated every {settings.prometheus.scrape_interval_s}s)"
        ),
    )


def firing(settings: Settings, model: str) -> bool:
    return any(alert["state"] == "firing" for alert in _prometheus_alerts(settings, model))


def wait_alert_resolved(settings: Settings, model: str, timeout: float, say: Say) -> None:
    """An alert left firing by an earlier loop must resolve, so this loop's drift is a new episode."""
    from mlplatform.stack.prometheus import prometheus_url

    _wait(
        "baseline check",
        lambda: not firing(settings, model),
        timeout,
        stalled=lambda: (
            f"{ALERT} for {model} (from an earlier drift check) still firing after {timeout:.0f}s "
            f"although the baseline check found no drift; see {prometheus_url(settings)}/alerts"
        ),
        waiting=lambda: say(f"waiting for the earlier {ALERT} to resolve"),
    )


def wait_resolution_delivered(
    settings: Settings, store: PlatformStore, model: str, since: datetime, timeout: float, say: Say
) -> None:
    from mlplatform.retraining.policy import SKIP_RESOLVED
    from mlplatform.store.retrains import RetrainRecords

    records = RetrainRecords(store)
    _wait(
        "baseline check",
        lambda: any(
            r.alertname == ALERT and r.skip_reason == SKIP_RESOLVED and r.created_at >= since
            for r in records.list(model, limit=20)
        ),
        timeout,
        stalled=lambda: (
            f"Alertmanager did not deliver the earlier {ALERT}'s resolution within {timeout:.0f}s; see "
            f"{settings.layout.log_file('alertmanager')}"
        ),
        waiting=lambda: say(
            f"waiting for Alertmanager to deliver the earlier {ALERT}'s resolution (at its group_interval)"
        ),
    )
    say("waiting for Alertmanager to drop the resolved alert's group")
    time.sleep(ALERTMANAGER_MAINTENANCE_S)


def wait_policy_ready(settings: Settings, store: PlatformStore, spec: ModelSpec, timeout: float, say: Say) -> None:
    """Until the retrain policy would act on a new alert: no retrain in flight, the cooldown over.

    Undrifted traffic is not drift-free feature by feature (online features are the latest snapshot, training saw
    them at transaction time), so once the earlier data-set alert has resolved its feature alerts are no longer
    inhibited and may start a retrain of their own; it runs on the undrifted data, before the loop drifts it.
    """
    from mlplatform.stack.embedded import airflow_client
    from mlplatform.store.retrains import STATUS_PENDING, RetrainRecords

    records = RetrainRecords(store)
    last: RetrainTrigger | None = None
    running = False
    with airflow_client(settings) as airflow:

        def ready() -> bool:
            nonlocal last, running
            last = records.last_claim(spec.name)
            if last is None:
                return True
            cooling = datetime.now(UTC) < last.created_at + timedelta(seconds=settings.alerts.cooldown_s)
            running = last.status == STATUS_PENDING or (
                last.dag_run_id is not None and not airflow.get_run(spec.training_dag_id, last.dag_run_id).finished
            )
            return not (cooling or running)

        def stalled() -> str:
            assert last is not None
            return (
                f"the retrain started at {last.created_at:%H:%M:%S} ({last.alertname}) still "
                f"{'running' if running else 'in cooldown'} after {timeout:.0f}s; see {settings.layout.logs_dir}"
            )

        def waiting() -> None:
            assert last is not None
            say(f"waiting for the retrain started by {last.alertname} to finish and its cooldown to pass")

        _wait("baseline check", ready, timeout, stalled=stalled, waiting=waiting, interval=POLL_S * 3)


def wait_trigger(
    settings: Settings, store: PlatformStore, model: str, since: datetime, timeout: float, say: Say
) -> RetrainTrigger:
    """The policy's decision on this episode's alert, once Airflow has taken the run (or the policy said no)."""
    from mlplatform.store.retrains import STATUS_FAILED, STATUS_PENDING, RetrainRecords

    records = RetrainRecords(store)
    ours: list[RetrainTrigger] = []

    def decided() -> RetrainTrigger | None:
        nonlocal ours
        ours = [
            record
            for record in records.list(model, limit=20)
            if record.alertname == ALERT and record.created_at >= since
        ]
        done = [record for record in ours if record.status != STATUS_PENDING]
        if not done:
            return None
        if done[-1].status == STATUS_FAILED:
            raise LoopStalledError("webhook", f"the retrain could not be started: {done[-1].last_error}")
        return done[-1]

    def stalled() -> str:
        pending = f"; pending: {ours[-1].last_error}" if ours else ""
        return (
            f"no retrain decision for {model} after {timeout:.0f}s{pending}; see "
            f"{settings.layout.log_file('alertmanager')} and {settings.layout.log_file('mlplatform-api')}"
        )

    return _wait(
        "webhook",
        decided,
        timeout,
        stalled=stalled,
        waiting=lambda: say(
            "waiting for Alertmanager to call the webhook" + (" (Airflow not taking the run yet)" if ours else "")
        ),
    )


def wait_serving(
    deployment: Deployment, settings: Settings, spec: ModelSpec, version: str, timeout: float, say: Say
) -> None:
    """Until the server answers with ``version`` (it polls the alias every ``serving.poll_interval_s``)."""
    from mlplatform.loop.traffic import sample_requests
    from mlplatform.serving.client import PredictionError, predict

    [entity] = sample_requests(settings, spec, 1)
    served = ""

    def serving() -> bool:
        nonlocal served
        try:
            served = str(predict(deployment, [entity])["version"])
        except PredictionError as error:
            served = f"no answer ({error})"
        return served == version

    _wait(
        "serving",
        serving,
        timeout,
        stalled=lambda: (
            f"the server still answers with {served} after {timeout:.0f}s, not v{version}; see {deployment.log_path}"
        ),
        waiting=lambda: say(
            f"waiting for the server to load v{version} (serving v{served}; it polls every "
            f"{settings.serving.poll_interval_s:.0f}s)"
        ),
    )
