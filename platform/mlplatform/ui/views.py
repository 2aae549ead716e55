"""What the pages show, gathered from the same services the API reads: registry, orchestrator, deployer, store.

Each page is assembled from independent sections.  One backend being down (Airflow stopped, MLflow restarting)
blanks only its own section with a message, never the whole page: a data scientist still sees the registry while
Airflow is away.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from mlplatform.operations.deployments import list_deployments
from mlplatform.operations.problems import Problem
from mlplatform.operations.promotion import CHALLENGER, CHAMPION, previous_champion, registry_errors
from mlplatform.operations.schemas import DeploymentOut
from mlplatform.operations.services import ApiServices
from mlplatform.operations.training import training_runs
from mlplatform.store.rollouts import Rollout, RolloutEvaluation
from mlplatform.training.gate import recorded_gate

if TYPE_CHECKING:
    from mlplatform.orchestration.airflow_client import DagRun
    from mlplatform.registry.mlflow_registry import VersionInfo
    from mlplatform.specs import ModelSpec
    from mlplatform.store.db import AliasEvent

log = logging.getLogger(__name__)
T = TypeVar("T")
Level = Literal["ok", "warn", "bad", "unknown"]
LEVEL_ORDER: tuple[Level, ...] = ("unknown", "ok", "warn", "bad")  # the worst badge colours the row
# Metrics worth a chart: scores in [0, 1]; sizes, rates of the data and chosen thresholds are not model quality.
NOT_QUALITY_PREFIXES = ("holdout_", "threshold_")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def attempt(what: str, load: Callable[[], T]) -> tuple[T | None, str | None]:
    """Run one section's loader; a refusal or outage becomes a message for that section only."""
    try:
        return load(), None
    except Problem as problem:
        return None, f"{what}: {problem.detail}"
    except Exception:  # a backend's unexpected error must not take the page down; details go to the log
        log.exception("loading %s failed", what)
        return None, f"{what} could not be loaded; see the API server log"


@dataclass(frozen=True)
class VersionRow:
    """One registered version with the aliases it holds and the pipeline's gate verdict."""

    info: VersionInfo
    aliases: tuple[str, ...]

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def metrics(self) -> dict[str, float]:
        return self.info.metrics

    @property
    def lineage(self) -> dict[str, str]:
        return self.info.lineage

    @property
    def gate(self) -> dict[str, Any] | None:
        return recorded_gate(self.info)

    @property
    def is_champion(self) -> bool:
        return CHAMPION in self.aliases


@dataclass(frozen=True)
class Registry:
    """A model's versions (newest first) and who holds which alias."""

    versions: list[VersionRow]
    champion: VersionRow | None
    challenger: VersionRow | None

    def find(self, version: str | None) -> VersionRow | None:
        return next((row for row in self.versions if row.version == version), None)


def load_registry(services: ApiServices, name: str) -> Registry:
    with registry_errors(name):
        infos = services.registry.versions(name)
        holders = {alias: services.registry.alias_holder(name, alias) for alias in (CHAMPION, CHALLENGER)}
    held = {alias: holder.version for alias, holder in holders.items() if holder is not None}
    rows = [
        VersionRow(info, tuple(alias for alias, version in held.items() if version == info.version)) for info in infos
    ]
    by_version = {row.version: row for row in rows}
    return Registry(rows, by_version.get(held.get(CHAMPION, "")), by_version.get(held.get(CHALLENGER, "")))


def default_pair(registry: Registry) -> tuple[VersionRow | None, VersionRow | None]:
    """What to compare when nobody chose: the champion against the challenger, else against the newest other."""
    champion = registry.champion or (registry.versions[-1] if registry.versions else None)
    others = [row for row in registry.versions if champion is None or row.version != champion.version]
    challenger = registry.challenger if registry.challenger in others else None
    return champion, challenger or (others[0] if others else None)


def gate_candidate(a: VersionRow, b: VersionRow) -> VersionRow:
    """The side of a comparison whose promotion is in question: b, unless b already is the champion."""
    return a if b.is_champion and not a.is_champion else b


@dataclass(frozen=True)
class Badge:
    level: Level
    text: str


@dataclass
class ModelSummary:
    """A row of the models list: the model's health at a glance."""

    spec: ModelSpec
    registry: Registry | None
    latest_run: DagRun | None
    deployment: DeploymentOut | None
    errors: list[str] = field(default_factory=list)

    @property
    def badges(self) -> list[Badge]:
        return [*self._registry_badges(), self._run_badge(), self._serving_badge()]

    @property
    def level(self) -> Level:
        return max((badge.level for badge in self.badges), key=LEVEL_ORDER.index)

    def _registry_badges(self) -> list[Badge]:
        if self.registry is None:
            return [Badge("unknown", "registry unavailable")]
        champion, challenger = self.registry.champion, self.registry.challenger
        if champion is None:
            return [Badge("bad", "no champion" if self.registry.versions else "never trained")]
        primary = self.spec.primary_metric
        score = champion.metrics.get(primary)
        badges = [Badge("ok", f"champion v{champion.version}" + (f" · {primary} {score:.4f}" if score else ""))]
        if challenger is not None and challenger.version != champion.version:
            badges.append(Badge("warn", f"challenger v{challenger.version} not promoted"))
        return badges

    def _run_badge(self) -> Badge:
        run = self.latest_run
        if run is None:
            return Badge("unknown", "no training run" if not self.errors else "runs unavailable")
        level: Level = "ok" if run.state == "success" else "bad" if run.state == "failed" else "unknown"
        return Badge(level, f"last run {run.state}")

    def _serving_badge(self) -> Badge:
        deployment = self.deployment
        if deployment is None:
            return Badge("unknown", "not deployed")
        if deployment.ready:
            return Badge("ok", f"serving on {deployment.backend} at {deployment.url}")
        return Badge("bad", f"{deployment.backend} not ready")


def deployments_by_model(services: ApiServices) -> tuple[dict[str, DeploymentOut], str | None]:
    found, error = attempt("deployments", partial(list_deployments, services))
    return {item.model: item for item in found or []}, error


def model_summaries(services: ApiServices) -> list[ModelSummary]:
    deployments, deploy_error = deployments_by_model(services)
    summaries = []
    for spec in services.specs().values():
        registry, registry_error = attempt("registry", partial(load_registry, services, spec.name))
        runs, run_error = attempt("training runs", partial(training_runs, services, spec.name, 1))
        errors = [error for error in (registry_error, run_error, deploy_error) if error]
        latest = runs[0] if runs else None
        summaries.append(ModelSummary(spec, registry, latest, deployments.get(spec.name), errors))
    return summaries


@dataclass(frozen=True)
class LineageStep:
    """One link of the chain feature service -> data window -> DAG run -> MLflow version -> deployment."""

    title: str
    value: str
    facts: list[tuple[str, str]]
    href: str | None = None


def feature_views(lineage: dict[str, str]) -> list[str]:
    """The feature views behind the feature service, from the fingerprint recorded at training time."""
    try:
        recorded = json.loads(lineage.get("feature_views", "{}"))
    except json.JSONDecodeError:
        return []
    views = recorded.get("feast.feature_views", "") if isinstance(recorded, dict) else ""
    return [view for view in str(views).split(",") if view]


def lineage_chain(name: str, row: VersionRow, deployment: DeploymentOut | None) -> list[LineageStep]:
    lineage = row.lineage
    gate = row.gate
    return [
        LineageStep(
            "Feature service",
            lineage.get("feature_service", "—"),
            [("feature views", ", ".join(feature_views(lineage)) or "—")],
        ),
        LineageStep(
            "Training data",
            f"{lineage.get('data_window_start', '?')[:10]} → {lineage.get('data_window_end', '?')[:10]}",
            [("rows", lineage.get("row_count", "—")), ("data hash", lineage.get("data_hash", "—"))],
        ),
        LineageStep(
            "DAG run",
            lineage.get("dag_run_id") or "outside Airflow",
            [("DAG", lineage.get("dag_id") or "—"), ("reason", lineage.get("reason", "—"))],
            href=f"/runs?model={name}" if lineage.get("dag_run_id") else None,
        ),
        LineageStep(
            "MLflow version",
            f"v{row.version}",
            [
                ("run", row.info.run_id or "—"),
                ("spec hash", lineage.get("spec_hash", "—")),
                ("git commit", lineage.get("git_commit", "—")[:12]),
                ("gate", "passed" if gate and gate.get("passed") else "refused" if gate else "—"),
            ],
        ),
        _deployment_step(row, deployment),
    ]


def _deployment_step(row: VersionRow, deployment: DeploymentOut | None) -> LineageStep:
    if deployment is None:
        return LineageStep("Deployment", "not deployed", [])
    if not row.is_champion:
        return LineageStep("Deployment", "not served", [("serving", f"the champion on {deployment.backend}")])
    state = "ready" if deployment.ready else "running" if deployment.running else "stopped"
    return LineageStep(
        "Deployment",
        f"{deployment.backend} ({state})",
        [("url", deployment.url), ("deployed by", deployment.deployed_by or "—")],
    )


@dataclass
class ModelDetail:
    """Everything the model page shows."""

    spec: ModelSpec
    registry: Registry | None
    history: list[AliasEvent]
    runs: list[RunRow]
    deployment: DeploymentOut | None
    selected: VersionRow | None
    rollback_to: str | None
    errors: list[str]

    @property
    def lineage(self) -> list[LineageStep]:
        return lineage_chain(self.spec.name, self.selected, self.deployment) if self.selected else []


def model_detail(services: ApiServices, name: str, version: int | None) -> ModelDetail:
    spec = services.spec(name)
    registry, registry_error = attempt("registry", partial(load_registry, services, name))
    runs, run_error = attempt("training runs", partial(training_runs, services, name, 5))
    deployments, deploy_error = deployments_by_model(services)
    selected = rollback_to = None
    if registry is not None:
        selected = registry.find(str(version)) if version else registry.champion or next(iter(registry.versions), None)
        if registry.champion is not None:
            rollback_to = previous_champion(services, name, registry.champion.version)
    return ModelDetail(
        spec=spec,
        registry=registry,
        history=list(reversed(services.store.alias_history(name))),
        runs=attach_versions(name, runs or [], registry),
        deployment=deployments.get(name),
        selected=selected,
        rollback_to=rollback_to,
        errors=[error for error in (registry_error, run_error, deploy_error) if error],
    )


def table_metrics(spec: ModelSpec) -> list[str]:
    """The metrics the versions table shows: the primary one and those the gate has floors for."""
    return list(dict.fromkeys([spec.primary_metric, *sorted({**spec.gates.minimums, **spec.gates.maximums})]))


def quality_metrics(spec: ModelSpec, rows: list[VersionRow]) -> list[str]:
    """Metrics to chart: the primary, the gated ones, then other scores in [0, 1]."""
    names = {metric for row in rows for metric in row.metrics}
    ordered: list[str] = [spec.primary_metric, *sorted({**spec.gates.minimums, **spec.gates.maximums})]
    for metric in sorted(names):
        values = [row.metrics[metric] for row in rows if metric in row.metrics]
        if metric.startswith(NOT_QUALITY_PREFIXES) or not all(0.0 <= value <= 1.0 for value in values):
            continue
        ordered.append(metric)
    return [metric for index, metric in enumerate(ordered) if metric in names and metric not in ordered[:index]]


@dataclass
class RunRow:
    """A training run and the version it registered (matched by the lineage's DAG run id)."""

    model: str
    run: DagRun
    version: VersionRow | None

    @property
    def conf(self) -> dict[str, Any]:
        return self.run.conf or {}

    @property
    def finished(self) -> bool:
        return self.run.finished


def attach_versions(model: str, runs: list[DagRun], registry: Registry | None) -> list[RunRow]:
    by_run = {row.lineage.get("dag_run_id"): row for row in (registry.versions if registry else [])}
    return [RunRow(model, run, by_run.get(run.run_id)) for run in runs]


def run_rows(services: ApiServices, model: str | None, limit: int) -> tuple[list[RunRow], list[str]]:
    """Recent runs of one model or all, newest first, each with the version it produced (if any yet)."""
    specs = [services.spec(model)] if model else list(services.specs().values())
    rows: list[RunRow] = []
    errors: list[str] = []
    for spec in specs:
        runs, run_error = attempt(f"{spec.name} runs", partial(training_runs, services, spec.name, limit))
        registry, _ = attempt("registry", partial(load_registry, services, spec.name))
        if run_error:
            errors.append(run_error)
        rows.extend(attach_versions(spec.name, runs or [], registry))
    rows.sort(key=lambda row: row.run.queued_at or row.run.start_date or row.run.logical_date or EPOCH, reverse=True)
    return rows[:limit], errors


@dataclass
class RolloutView:
    """The model page's rollout section: the open rollout (else the last one), its evaluations and the latest."""

    rollout: Rollout
    evaluations: list[RolloutEvaluation]

    @property
    def latest(self) -> RolloutEvaluation | None:
        return self.evaluations[-1] if self.evaluations else None

    @property
    def min_effect(self) -> float:
        return float(self.rollout.policy.get("min_effect", 0.0))

    @property
    def metric(self) -> str:
        return str(self.rollout.policy.get("metric", "loss"))


def rollout_view(services: ApiServices, name: str) -> RolloutView | None:
    """The rollout the model page shows: the open one, else the most recent."""
    records = services.rollout_records
    rollout = records.open_for(name) or next(iter(records.recent(name, 1)), None)
    return None if rollout is None else RolloutView(rollout, records.evaluations(rollout.id))
