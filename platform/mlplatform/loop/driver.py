"""The closed loop, end to end on the embedded stack: drifted traffic -> drift check -> Prometheus alert ->
Alertmanager -> the platform's webhook -> Airflow retrain on fresh data -> gate -> the server swaps champions.

``run_loop`` drives the real components and only *waits* for the ones that act by themselves (Prometheus,
Alertmanager, the webhook's retrain policy, Airflow, the model server's alias poll: ``loop.waits``); every wait is
bounded and a stall names the step and the log to read.  What it does itself is what the world would do: the data
changes (the injected ``RegenerateData`` drifts the last ``drift_days``, so the drifted, labelled period lies inside
the retrain's data window), Feast is re-materialised so online features reflect it, and clients send requests.

The loop first re-establishes its starting point, so it can run again on the same state directory: the data
without drift, a champion that was not trained on drifted data (an earlier loop's retrained champion is replaced
by the newest version trained otherwise), and, when an earlier loop's alert is still firing, a drift check of
undrifted traffic that finds no drift so the alert resolves (this loop's alert is then a new episode, with a new
idempotency key, instead of a duplicate the webhook ignores).

Without Prometheus and Alertmanager the loop stops after the drift check and says that the alert path was skipped.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlplatform.loop.timeline import (
    OUTCOME_ALERT_PATH_SKIPPED,
    OUTCOME_KEPT,
    OUTCOME_NO_DRIFT,
    OUTCOME_PROMOTED,
    OUTCOME_RETRAIN_SKIPPED,
    LoopResult,
    LoopStalledError,
    Recorder,
    Say,
    Step,
    ignore_step,
    quiet,
)
from mlplatform.loop.waits import (
    ALERT,
    POLL_S,
    firing,
    wait_alert,
    wait_alert_resolved,
    wait_logged,
    wait_policy_ready,
    wait_resolution_delivered,
    wait_serving,
    wait_trigger,
)
from mlplatform.specs import ModelSpec, find_spec

if TYPE_CHECKING:
    from mlplatform.config import Settings
    from mlplatform.deploy.base import Deployment
    from mlplatform.registry.mlflow_registry import ModelRegistry, VersionInfo
    from mlplatform.store.db import PlatformStore

ACTOR = "mlplatform loop"


class DataSummary(Protocol):
    """What the loop reports of regenerated data: how many rows were written, and where the range starts."""

    @property
    def rows(self) -> int: ...

    @property
    def start(self) -> datetime: ...


class RegenerateData(Protocol):
    """Rewrite the model's data under ``data_dir`` (its own data directory) so it ends at ``end``, drifted from
    ``drift_after`` on (None: no drift), with labels, so the drifted period lies inside the retrain's data window.

    The loop's one dependency on a particular model's data, injected by whoever runs it: ``mlplatform loop run``
    passes a model's bundled generator (the demo's, by model name) or a ``loop.drifted.DriftedTable`` built from
    ``--drifted``; the e2e test and the benchmark pass the fraud demo's generator with its size and seed bound.
    """

    def __call__(self, data_dir: Path, *, end: datetime, drift_after: datetime | None) -> DataSummary: ...


@dataclass(frozen=True)
class LoopTimeouts:
    """Upper bounds of each wait, in seconds (a stalled step fails the loop instead of hanging it)."""

    log: float = 60.0
    alert: float = 180.0
    # Alertmanager delivers an earlier alert's resolution at its group's next group_interval tick (5 min in the
    # committed routing); the baseline waits for it, or the new episode would look like the notified one.
    webhook: float = 360.0
    retrain: float = 1200.0
    swap: float = 180.0


@dataclass(frozen=True)
class LoopOptions:
    """The model the loop drives and the world it runs in: where the data ends, how much of it drifts, the traffic."""

    model: str
    end: datetime | None = None
    drift_days: int = 30
    requests: int = 400
    rate: float = 50.0
    timeouts: LoopTimeouts = field(default_factory=LoopTimeouts)


def run_loop(
    settings: Settings,
    options: LoopOptions,
    regenerate_data: RegenerateData,
    *,
    say: Say = quiet,
    on_step: Callable[[Step], None] = ignore_step,
) -> LoopResult:
    """Run the loop once against the running stack and deployed model; returns its timeline and outcome.

    Raises ``LoopStalledError`` when a step does not happen within its timeout (or fails outright).
    """
    from mlplatform.registry.mlflow_registry import ModelRegistry
    from mlplatform.store.db import PlatformStore

    spec = find_spec(settings.model_roots, options.model)
    if options.requests < spec.monitoring.min_rows:
        raise ValueError(
            f"requests={options.requests} is below {spec.name}'s drift min_rows {spec.monitoring.min_rows}"
        )
    result = LoopResult(started=datetime.now(UTC))
    record = Recorder(result, on_step)
    store = PlatformStore.connect(settings.db_url)
    try:
        registry = ModelRegistry(settings, store=store)
        _refuse_cooldown(settings, store, spec.name)
        deployment = running_deployment(settings, spec.name)
        _baseline(settings, options, regenerate_data, spec, registry, store, deployment, record, say)
        if not _drift(settings, options, regenerate_data, spec, deployment, record, say):
            return result
        if not _alert_path(settings, spec, store, options.timeouts, record, say):
            return result
        _retrain(settings, spec, registry, deployment, options.timeouts, record, say)
    finally:
        store.dispose()
    return result


# -- starting point --------------------------------------------------------------------------------------------


def _refuse_cooldown(settings: Settings, store: PlatformStore, model: str) -> None:
    """Fail before doing anything when the retrain policy would skip the alert anyway."""
    from mlplatform.store.retrains import RetrainRecords

    last = RetrainRecords(store).last_claim(model)
    if last is None:
        return
    until = last.created_at + timedelta(seconds=settings.alerts.cooldown_s)
    if datetime.now(UTC) < until:
        raise LoopStalledError(
            "cooldown",
            f"a retrain of {model} was triggered at {last.created_at:%H:%M:%S} UTC; the policy skips drift alerts "
            f"until {until:%H:%M:%S} UTC (alerts.cooldown_s={settings.alerts.cooldown_s}). Wait, or start the stack "
            "with a shorter MLP_ALERTS__COOLDOWN_S (`make demo` uses 60).",
        )


def running_deployment(settings: Settings, model: str) -> Deployment:
    from mlplatform.deploy.local import LocalProcessDeployer

    for deployment in LocalProcessDeployer(settings).list():
        if deployment.model == model and deployment.running:
            return deployment
    raise LoopStalledError("serving", f"{model} is not deployed; run `mlplatform deploy {model}` first")


def _baseline(
    settings: Settings,
    options: LoopOptions,
    regenerate_data: RegenerateData,
    spec: ModelSpec,
    registry: ModelRegistry,
    store: PlatformStore,
    deployment: Deployment,
    record: Recorder,
    say: Say,
) -> None:
    """The world before drift and its champion served; an earlier loop's alert resolved."""
    generated = _world(settings, options, regenerate_data, drift_after=None, say=say)
    record.done("baseline data", generated)
    champion = _baseline_champion(registry, store, spec.name, say)
    wait_serving(deployment, settings, spec, champion, options.timeouts.swap, say)
    record.result.old_version = champion
    record.done("baseline champion", f"v{champion} serving")
    if _monitoring_installed(settings) and firing(settings, spec.name):
        _resolve_earlier_alert(settings, options, spec, deployment, champion, store, record, say)


def _resolve_earlier_alert(
    settings: Settings,
    options: LoopOptions,
    spec: ModelSpec,
    deployment: Deployment,
    champion: str,
    store: PlatformStore,
    record: Recorder,
    say: Say,
) -> None:
    """An alert still firing from an earlier loop must resolve first, or this loop's drift would not be a new
    episode (same idempotency key: the webhook would call it a duplicate): undrifted traffic, checked, no drift.

    The resolution must also reach the webhook: Alertmanager sends it at the group's next group_interval tick,
    and until then a new firing of the same labels counts as the alert it already notified (no new notification
    before repeat_interval, 12 h)."""
    since = datetime.now(UTC)
    sent = _traffic(settings, spec, deployment, options)
    wait_logged(settings, spec.name, since, sent, options.timeouts.log, say)
    check = _check(settings, spec.name, since)
    if check.status != "no_drift":
        raise LoopStalledError(
            "baseline check",
            f"{ALERT} is still firing from an earlier drift check, and undrifted traffic to v{champion} gave "
            f"{_verdict(check)}, which cannot resolve it; see the model's drift checks in the platform UI",
        )
    wait_alert_resolved(settings, spec.name, options.timeouts.alert, say)
    wait_resolution_delivered(settings, store, spec.name, since, options.timeouts.webhook, say)
    wait_policy_ready(settings, store, spec, options.timeouts.retrain, say)
    record.done("baseline check", f"{sent} requests, {_verdict(check)}; the earlier {ALERT} resolved")


def _world(
    settings: Settings,
    options: LoopOptions,
    regenerate_data: RegenerateData,
    drift_after: datetime | None,
    say: Say,
) -> str:
    """Regenerate the model's data (with or without drift) and reload the whole range into the online store."""
    data = _regenerate(settings, options, regenerate_data, drift_after)
    say(f"wrote {data.rows:,} rows; materializing {data.start:%Y-%m-%d} .. now")
    seconds = _materialize(settings, data.start)
    drift = f", drifted from {drift_after:%Y-%m-%d}" if drift_after else ""
    return f"{data.rows:,} rows{drift}; online store reloaded in {seconds:.1f}s"


def _regenerate(
    settings: Settings, options: LoopOptions, regenerate_data: RegenerateData, drift_after: datetime | None
) -> DataSummary:
    return regenerate_data(settings.model_data_dir(options.model), end=options.end or _today(), drift_after=drift_after)


def _materialize(settings: Settings, data_start: datetime) -> float:
    """The whole range, not an incremental run: the history was rewritten, and an incremental run only loads rows
    newer than its last end (profiles start 30 days before the range)."""
    from mlplatform.features.store import FeatureStoreAdapter

    with contextlib.redirect_stdout(io.StringIO()):  # Feast prints its own progress; the loop reports the step
        return FeatureStoreAdapter(settings).materialize(datetime.now(UTC), data_start - timedelta(days=31)).seconds


def _today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _baseline_champion(registry: ModelRegistry, store: PlatformStore, model: str, say: Say) -> str:
    """The champion, unless an earlier loop's retrain made it: then the newest version trained otherwise."""
    from mlplatform.registry.mlflow_registry import CHAMPION
    from mlplatform.store.retrains import RetrainRecords

    champion = registry.alias_holder(model, CHAMPION)
    if champion is None:
        raise LoopStalledError("baseline champion", f"{model} has no champion; run `mlplatform train {model} --wait`")
    retrained = {trigger.dag_run_id for trigger in RetrainRecords(store).list(model, limit=500) if trigger.dag_run_id}
    if champion.lineage.get("dag_run_id") not in retrained:
        return champion.version
    candidates = [v for v in registry.versions(model) if v.lineage.get("dag_run_id") not in retrained]
    if not candidates:
        raise LoopStalledError("baseline champion", f"every version of {model} came from a drift retrain")
    baseline = max(candidates, key=lambda version: int(version.version))
    say(f"champion v{champion.version} was retrained on drifted data by an earlier loop; restoring v{baseline.version}")
    reason = f"closed-loop demo: baseline before drift (v{champion.version} was trained on an earlier loop's drift)"
    registry.move_alias(model, CHAMPION, baseline.version, actor=ACTOR, reason=reason)
    return baseline.version


# -- drift -----------------------------------------------------------------------------------------------------


def _drift(
    settings: Settings,
    options: LoopOptions,
    regenerate_data: RegenerateData,
    spec: ModelSpec,
    deployment: Deployment,
    record: Recorder,
    say: Say,
) -> bool:
    """Drifted data and traffic, then the drift check; False (and the outcome set) when no drift was found."""
    drift_after = (options.end or _today()) - timedelta(days=options.drift_days)
    record.done("drifted data", _world(settings, options, regenerate_data, drift_after=drift_after, say=say))
    since = datetime.now(UTC)
    record.result.first_drifted_request = since
    sent = _traffic(settings, spec, deployment, options)
    record.done("drifted traffic", f"{sent} requests at {options.rate:.0f}/s to {deployment.predict_url}")
    wait_logged(settings, spec.name, since, sent, options.timeouts.log, say)
    check = _check(settings, spec.name, since)
    record.done("drift check", _verdict(check))
    if check.status != "drift":
        record.result.outcome = OUTCOME_NO_DRIFT
        record.result.message = f"the drift check found {check.status}: nothing for the alert to act on"
        return False
    return True


def _traffic(settings: Settings, spec: ModelSpec, deployment: Deployment, options: LoopOptions) -> int:
    """Requests for the most recently updated entities, as ``mlplatform traffic`` sends them."""
    from mlplatform.loop.traffic import sample_requests
    from mlplatform.serving.client import send_traffic

    entities = sample_requests(settings, spec, options.requests)
    report = send_traffic(deployment, entities, options.rate, warmup=0)
    if report.failures:
        raise LoopStalledError(
            "traffic", f"{report.failures}/{report.requests} requests failed; see {deployment.log_path}"
        )
    return report.requests


def _check(settings: Settings, model: str, since: datetime) -> Any:
    from mlplatform.monitoring.drift_check import run_drift_check

    return run_drift_check(settings, model, actor=ACTOR, since=since)


def _verdict(check: Any) -> str:
    share = f", drift share {check.drift_share:.0%}" if check.drift_share is not None else ""
    return f"{check.status} ({check.rows} rows{share})"


# -- alert -----------------------------------------------------------------------------------------------------


def _monitoring_installed(settings: Settings) -> bool:
    from mlplatform.stack.prometheus import find_binaries

    binaries = find_binaries(settings)
    return binaries.prometheus is not None and binaries.alertmanager is not None


def _alert_path(
    settings: Settings, spec: ModelSpec, store: PlatformStore, timeouts: LoopTimeouts, record: Recorder, say: Say
) -> bool:
    """Prometheus fires, Alertmanager calls the webhook, the policy triggers a run; False when that cannot go on."""
    from mlplatform.stack.prometheus import find_binaries, why_skipped

    if not _monitoring_installed(settings):
        why = why_skipped(settings, find_binaries(settings))
        record.result.outcome = OUTCOME_ALERT_PATH_SKIPPED
        record.result.message = (
            f"skipped the alert path (Prometheus -> Alertmanager -> webhook -> retrain): {why}. The drift check "
            "above is recorded; install both and run `mlplatform stack up` again to close the loop."
        )
        return False
    firing_since = wait_alert(settings, spec.name, record.result.steps[-1].started, timeouts.alert, say)
    record.done("alert firing", f"{ALERT}{{model={spec.name}}} firing in Prometheus (active since {firing_since})")
    since = record.result.first_drifted_request or record.result.started
    trigger = wait_trigger(settings, store, spec.name, since, timeouts.webhook, say)
    if trigger.status != "triggered":
        record.result.outcome = OUTCOME_RETRAIN_SKIPPED
        record.result.message = f"the webhook's policy skipped the retrain: {trigger.skip_reason}"
        record.done("webhook", record.result.message)
        return False
    record.result.dag_run_id = trigger.dag_run_id
    record.done("webhook", f"Alertmanager -> webhook -> {trigger.dag_id} run {trigger.dag_run_id}")
    return True


# -- retrain and swap ------------------------------------------------------------------------------------------


def _retrain(
    settings: Settings,
    spec: ModelSpec,
    registry: ModelRegistry,
    deployment: Deployment,
    timeouts: LoopTimeouts,
    record: Recorder,
    say: Say,
) -> None:
    """Follow the retrain run, read the gate's decision, and wait for the server to swap when it promoted."""
    from mlplatform.orchestration.airflow_client import AirflowError
    from mlplatform.stack.embedded import airflow_client

    result = record.result
    assert result.dag_run_id is not None
    try:
        with airflow_client(settings) as airflow:
            run = airflow.wait(
                spec.training_dag_id,
                result.dag_run_id,
                # Each second, as every wait of the loop: the run's end is the retrain step's end.
                poll_interval=min(POLL_S, settings.airflow.poll_interval_s),
                timeout=timeouts.retrain,
                on_progress=lambda states: say(
                    "retrain: " + "  ".join(f"{task}={state or 'queued'}" for task, state in states.items())
                ),
            )
    except AirflowError as error:
        raise LoopStalledError("retrain", f"{error}; see {settings.layout.logs_dir}") from None
    if run.state != "success":
        raise LoopStalledError(
            "retrain",
            f"run {result.dag_run_id} ended {run.state}; see `mlplatform training status {spec.name} "
            f"{result.dag_run_id}` or {settings.airflow.resolved_api_url()}/dags/{spec.training_dag_id}",
        )
    version = _version_of_run(registry, spec.name, result.dag_run_id)
    record.done("retrain", f"{spec.training_dag_id} {run.state}: registered v{version.version} on fresh data")
    _gate(spec, registry, version, deployment, settings, timeouts, record, say)


def _version_of_run(registry: ModelRegistry, model: str, dag_run_id: str) -> VersionInfo:
    for version in registry.versions(model):
        if version.lineage.get("dag_run_id") == dag_run_id:
            return version
    raise LoopStalledError("retrain", f"run {dag_run_id} succeeded but registered no version of {model}")


def _gate(
    spec: ModelSpec,
    registry: ModelRegistry,
    version: VersionInfo,
    deployment: Deployment,
    settings: Settings,
    timeouts: LoopTimeouts,
    record: Recorder,
    say: Say,
) -> None:
    import json

    from mlplatform.registry.lineage import Lineage
    from mlplatform.registry.mlflow_registry import CHAMPION

    result = record.result
    gate = json.loads(registry.client.get_model_version(spec.name, version.version).tags.get(Lineage.GATE_TAG, "{}"))
    result.gate_reasons = list(gate.get("reasons", []))
    champion = registry.alias_holder(spec.name, CHAMPION)
    result.new_version = version.version
    if champion is None or champion.version != version.version:
        result.outcome = OUTCOME_KEPT
        result.message = f"the gate kept champion v{result.old_version}: " + "; ".join(result.gate_reasons)
        record.done("gate", f"v{version.version} kept as challenger")
        return
    record.done("gate", f"v{version.version} promoted: " + "; ".join(result.gate_reasons[-1:]))
    wait_serving(deployment, settings, spec, version.version, timeouts.swap, say)
    result.outcome = OUTCOME_PROMOTED
    result.message = f"v{version.version} replaced v{result.old_version} as champion and is serving"
    record.done("new champion serving", f"{deployment.url} answers with v{version.version}")


# -- a world to run the loop in ---------------------------------------------------------------------------------


def prepare(settings: Settings, options: LoopOptions, regenerate_data: RegenerateData, say: Say = quiet) -> Deployment:
    """What ``make demo`` does before the loop, for the e2e test and the benchmark: stack up, the model's data,
    features, a first champion, the model served.

    The first champion is trained in this process by the same pipeline functions the DAG's tasks call (the loop's
    retrain is the one that goes through Airflow); that saves a DAG run's scheduling and task start-up.
    """
    from mlplatform.deploy.local import LocalProcessDeployer
    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.stack.embedded import EmbeddedStack
    from mlplatform.training.pipeline import TrainingRequest, run_all

    EmbeddedStack(settings).up(progress=say)
    data = _regenerate(settings, options, regenerate_data, drift_after=None)
    FeatureStoreAdapter(settings).apply()
    _materialize(settings, data.start)
    outcome = run_all(settings, TrainingRequest(model=options.model, run_key=f"prepare/{_today():%Y%m%d}", actor=ACTOR))
    say(f"first champion v{outcome.champion_version}: {outcome.decision}")
    return LocalProcessDeployer(settings).deploy(options.model, settings.serving.backend)
