"""The model page's monitoring part: drift checks over time, the latest report, firing alerts, retrain history.

Each part loads on its own (``views.attempt``), like the rest of the page: Alertmanager or Airflow being away
blanks its own table with a message.  A retrain record alone says only that a run was asked for; its outcome is
read where it lives: the run's state in Airflow, the version that run registered (matched by the lineage's DAG run
id) and the gate's verdict on it (the version's gate tag, and the alias history when it became champion).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from mlplatform.monitoring.alerts_view import FiringAlerts, firing_alerts
from mlplatform.operations.drift import report_url
from mlplatform.operations.promotion import CHAMPION
from mlplatform.operations.training import airflow_errors, training_runs
from mlplatform.store.drift import DriftCheck, DriftResults
from mlplatform.store.retrains import STATUS_FAILED, STATUS_PENDING, STATUS_SKIPPED, STATUS_TRIGGERED
from mlplatform.ui.views import Badge, Registry, VersionRow, attempt

if TYPE_CHECKING:
    from mlplatform.operations.services import ApiServices
    from mlplatform.orchestration.airflow_client import DagRun
    from mlplatform.store.db import AliasEvent
    from mlplatform.store.retrains import RetrainTrigger

CHART_CHECKS = 30  # drift share over time
HEATMAP_CHECKS = 12  # per-feature verdicts: the latest checks only, or the cells get too small to read
RETRAINS = 10
RUNS_SCANNED = 50  # one Airflow listing covers recent retrains; older ones are read one by one
SKIP_WORDS = {
    "not_a_drift_alert": "not a drift alert",
    "resolved": "alert resolved",
    "unknown_model": "no spec for the alert's model",
    "duplicate": "duplicate of an alert already acted on",
    "cooldown": "cooldown after the last retrain",
    "in_flight": "a retrain is still running",
}


@dataclass(frozen=True)
class LatestCheck:
    """The newest drift check, summarised for the small table beside the report link."""

    check: DriftCheck

    @property
    def report_url(self) -> str | None:
        return report_url(self.check)

    @property
    def drifted(self) -> list[str]:
        return [feature.feature for feature in self.check.features if feature.drifted]

    @property
    def missing(self) -> int:
        return sum(feature.missing_count for feature in self.check.features)

    @property
    def out_of_range(self) -> int:
        return sum(feature.out_of_range_count for feature in self.check.features)


@dataclass(frozen=True)
class RetrainRow:
    """A retrain record with what became of it."""

    trigger: RetrainTrigger
    run: DagRun | None
    version: VersionRow | None
    promotion: AliasEvent | None

    @property
    def result(self) -> Badge:
        trigger = self.trigger
        if trigger.status == STATUS_SKIPPED:
            why = SKIP_WORDS.get(trigger.skip_reason or "", trigger.skip_reason or "?")
            return Badge("unknown", f"skipped: {why}")
        if trigger.status == STATUS_PENDING:
            return Badge("warn", f"pending (Airflow did not take it yet; {trigger.attempts} attempts)")
        if trigger.status == STATUS_FAILED:
            return Badge("bad", f"failed after {trigger.attempts} attempts")
        return Badge("ok", "triggered")

    @property
    def outcome(self) -> Badge | None:
        """For a triggered retrain: the run's state, then the version it registered and the gate's verdict."""
        if self.trigger.status != STATUS_TRIGGERED:
            return None
        if self.run is None:
            return Badge("unknown", "run state unknown")
        if self.run.state == "failed":
            return Badge("bad", "training run failed")
        if not self.run.finished:
            return Badge("unknown", f"run {self.run.state}")
        if self.version is None:
            return Badge("warn", f"run {self.run.state}; no version registered")
        version = f"v{self.version.version}"
        if self.promotion is not None:
            return Badge("ok", f"{version} became champion")
        gate = self.version.gate
        if gate is None:
            # The registry was read before the run's last task wrote its verdict; the next read has it.
            return Badge("unknown", f"{version} registered, awaiting the gate's verdict")
        if not gate.get("passed"):
            return Badge("warn", f"{version} refused by the gate; the champion stays")
        return Badge("unknown", f"{version} registered, not champion")

    @property
    def gate_reasons(self) -> str:
        gate = self.version.gate if self.version else None
        return "; ".join(str(reason) for reason in (gate or {}).get("reasons", []))


@dataclass
class Monitoring:
    """Everything the page's monitoring part shows; ``errors`` are per-part messages."""

    checks: list[DriftCheck]
    alerts: FiringAlerts
    retrains: list[RetrainRow]
    errors: list[str] = field(default_factory=list)

    @property
    def latest(self) -> LatestCheck | None:
        return LatestCheck(self.checks[0]) if self.checks else None

    @property
    def latest_report(self) -> str | None:
        """The newest report there is: an ``insufficient_data`` check writes none, an earlier check may have."""
        return next((url for url in map(report_url, self.checks) if url), None)


def load_monitoring(
    services: ApiServices, name: str, registry: Registry | None, history: list[AliasEvent]
) -> Monitoring:
    checks = DriftResults(services.store).for_model(name, limit=CHART_CHECKS)
    alerts = firing_alerts(services.settings, name)
    triggers = services.retrains.list(name, RETRAINS)
    runs, run_error = attempt("retrain runs", partial(_retrain_runs, services, name, triggers))
    rows = [
        _retrain_row(trigger, (runs or {}).get(trigger.dag_run_id or ""), registry, history) for trigger in triggers
    ]
    return Monitoring(checks, alerts, rows, [run_error] if run_error else [])


def _retrain_runs(services: ApiServices, name: str, triggers: list[RetrainTrigger]) -> dict[str, DagRun]:
    """Airflow runs of the triggered retrains: one listing, then single reads for runs older than it covers."""
    wanted = {t.dag_run_id: t.dag_id for t in triggers if t.status == STATUS_TRIGGERED and t.dag_run_id and t.dag_id}
    if not wanted:
        return {}
    found = {run.run_id: run for run in training_runs(services, name, RUNS_SCANNED) if run.run_id in wanted}
    with airflow_errors():
        for run_id, dag_id in wanted.items():
            if run_id not in found:
                found[run_id] = services.orchestrator.get_run(dag_id, run_id)
    return found


def _retrain_row(
    trigger: RetrainTrigger, run: DagRun | None, registry: Registry | None, history: list[AliasEvent]
) -> RetrainRow:
    version = None
    if registry is not None and trigger.dag_run_id:
        version = next((row for row in registry.versions if row.lineage.get("dag_run_id") == trigger.dag_run_id), None)
    promotion = None
    if version is not None:
        moves = (event for event in history if event.alias == CHAMPION and event.to_version == version.version)
        promotion = next(moves, None)
    return RetrainRow(trigger, run, version, promotion)
