"""What the API acts on, behind small ports so tests can replace MLflow, Airflow and the deployer with fakes.

``ApiServices.from_settings`` wires the real adapters; each is built lazily on first use, so the app starts (and
``/healthz`` answers) without MLflow or Airflow being importable or reachable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mlplatform.operations.metrics import ApiMetrics
from mlplatform.operations.problems import Problem
from mlplatform.operations.security import SessionManager, session_secret
from mlplatform.specs import (
    NAME_PATTERN,
    SPEC_FILE,
    ModelSpec,
    SpecError,
    find_spec,
    load_spec,
    load_specs,
    model_folders,
)
from mlplatform.store.audit import AuditLog, DeploymentRecords
from mlplatform.store.auth import AuthRepository
from mlplatform.store.db import AliasEvent, PlatformStore
from mlplatform.store.logins import LoginRateLimiter
from mlplatform.store.retrains import RetrainRecords
from mlplatform.store.sessions import SessionRecords

if TYPE_CHECKING:
    from pwdlib import PasswordHash

    from mlplatform.config import Settings
    from mlplatform.deploy.base import Deployer
    from mlplatform.onboarding.validate import ValidationReport
    from mlplatform.orchestration.airflow_client import AirflowClient, DagRun
    from mlplatform.registry.mlflow_registry import VersionInfo
    from mlplatform.registry.traffic import TrafficPlan
    from mlplatform.retraining.policy import RetrainOrchestrator, RetrainPolicy
    from mlplatform.rollouts.control import RolloutControl
    from mlplatform.rollouts.evaluator import RolloutEvaluator
    from mlplatform.store.audit import AuditEvent
    from mlplatform.store.rollouts import RolloutRecords


class RegistryPort(Protocol):
    """The part of ``ModelRegistry`` the API uses."""

    def describe(self, name: str) -> dict[str, Any]: ...

    def versions(self, name: str) -> list[VersionInfo]: ...

    def alias_holder(self, name: str, alias: str) -> VersionInfo | None: ...

    def move_alias(self, name: str, alias: str, version: str, *, actor: str, reason: str) -> AliasEvent | None: ...

    def traffic_plan(self, name: str) -> TrafficPlan | None: ...

    def publish_traffic_plan(self, name: str, plan: TrafficPlan | None) -> None: ...


class OrchestratorPort(Protocol):
    """Training runs: trigger one, list and read them."""

    def trigger(self, dag_id: str, conf: Mapping[str, Any], run_id: str | None = None) -> DagRun: ...

    def list_runs(self, dag_id: str, limit: int) -> list[DagRun]: ...

    def get_run(self, dag_id: str, run_id: str) -> DagRun: ...


class AirflowOrchestrator:
    """``OrchestratorPort`` over ``AirflowClient``; a client per call keeps no login state between requests."""

    def __init__(self, settings: Settings, timeout: float = 15.0) -> None:
        self.settings = settings
        self.timeout = timeout

    def _client(self) -> AirflowClient:
        from mlplatform.stack.embedded import airflow_client

        return airflow_client(self.settings, timeout=self.timeout)

    def trigger(self, dag_id: str, conf: Mapping[str, Any], run_id: str | None = None) -> DagRun:
        """Start a run unless an operator paused the DAG (``DagPausedError``): a trigger never unpauses it."""
        from mlplatform.orchestration.airflow_client import DagPausedError

        with self._client() as client:
            if client.is_paused(dag_id):
                raise DagPausedError(
                    f"{dag_id} is paused in Airflow (an operator paused it); no run was started: unpause it in "
                    "Airflow to allow runs again"
                )
            return client.trigger(dag_id, conf, run_id=run_id)

    def list_runs(self, dag_id: str, limit: int) -> list[DagRun]:
        """Recent runs; a failed one carries its reason (one more request per failed run)."""
        with self._client() as client:
            return [
                run.model_copy(update={"failure_reason": client.failure_reason(dag_id, run.run_id)})
                if run.state == "failed"
                else run
                for run in client.list_runs(dag_id, limit)
            ]

    def get_run(self, dag_id: str, run_id: str) -> DagRun:
        with self._client() as client:
            return client.get_run(dag_id, run_id)


def _default_registry(settings: Settings, store: PlatformStore) -> RegistryPort:
    from mlplatform.registry.mlflow_registry import ModelRegistry

    return ModelRegistry(settings, store=store)


def _default_deployer(settings: Settings) -> Deployer:
    """``deploy.target`` picks the deployer; ``auto`` means Kubernetes inside a pod (a mounted service account)."""
    from mlplatform.deploy.kubernetes.deployer import in_cluster

    target = settings.deploy.target
    if target == "kubernetes" or (target == "auto" and in_cluster()):
        from mlplatform.deploy.kubernetes import KubernetesDeployer

        return KubernetesDeployer(settings)
    from mlplatform.deploy.local import LocalProcessDeployer

    return LocalProcessDeployer(settings)


@dataclass
class ApiServices:
    """Everything a request handler needs, built once per app."""

    settings: Settings
    store: PlatformStore
    auth: AuthRepository
    audit: AuditLog
    deployments: DeploymentRecords
    sessions: SessionManager
    limiter: LoginRateLimiter
    metrics: ApiMetrics
    registry_factory: Callable[[], RegistryPort]
    orchestrator_factory: Callable[[], OrchestratorPort]
    deployer_factory: Callable[[], Deployer]
    retrains: RetrainRecords
    retrain_orchestrator_factory: Callable[[], RetrainOrchestrator]
    model_validator: Callable[[str], ValidationReport] | None = None
    """Validates a model by name (``mlplatform.onboarding.validate``); tests without Feast pass a stand-in."""
    _cache: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        store: PlatformStore | None = None,
        password_hash: PasswordHash | None = None,
        registry_factory: Callable[[], RegistryPort] | None = None,
        orchestrator_factory: Callable[[], OrchestratorPort] | None = None,
        deployer_factory: Callable[[], Deployer] | None = None,
        model_validator: Callable[[str], ValidationReport] | None = None,
    ) -> ApiServices:
        store = store or PlatformStore.connect(settings.db_url)
        api = settings.api
        return cls(
            settings=settings,
            store=store,
            auth=AuthRepository(store, password_hash),
            audit=AuditLog(store),
            deployments=DeploymentRecords(store),
            sessions=SessionManager(
                session_secret(settings), api.session_ttl_s, api.secure_cookies, SessionRecords(store)
            ),
            limiter=LoginRateLimiter(store, api.login_attempts_per_minute),
            metrics=ApiMetrics(),
            registry_factory=registry_factory or (lambda: _default_registry(settings, store)),
            orchestrator_factory=orchestrator_factory or (lambda: AirflowOrchestrator(settings)),
            deployer_factory=deployer_factory or (lambda: _default_deployer(settings)),
            retrains=RetrainRecords(store),
            # Injected orchestrators (tests) serve retrains too; the real one gets the webhook's shorter timeout.
            retrain_orchestrator_factory=orchestrator_factory
            or (lambda: AirflowOrchestrator(settings, timeout=settings.alerts.trigger_timeout_s)),
            model_validator=model_validator,
        )

    @property
    def registry(self) -> RegistryPort:
        if "registry" not in self._cache:
            self._cache["registry"] = self.registry_factory()
        registry: RegistryPort = self._cache["registry"]
        return registry

    @property
    def orchestrator(self) -> OrchestratorPort:
        if "orchestrator" not in self._cache:
            self._cache["orchestrator"] = self.orchestrator_factory()
        orchestrator: OrchestratorPort = self._cache["orchestrator"]
        return orchestrator

    @property
    def deployer(self) -> Deployer:
        if "deployer" not in self._cache:
            self._cache["deployer"] = self.deployer_factory()
        deployer: Deployer = self._cache["deployer"]
        return deployer

    @property
    def retrain_policy(self) -> RetrainPolicy:
        """The drift-alert retraining policy (``mlplatform.retraining.policy``), over these services."""
        if "retrain_policy" not in self._cache:
            from mlplatform.retraining.policy import RetrainPolicy

            self._cache["retrain_policy"] = RetrainPolicy(
                records=self.retrains,
                audit=self.audit,
                orchestrator=self._retrain_orchestrator,
                training_dag=self._training_dag,
                settings=self.settings.alerts,
                triggers_counter=self.metrics.retrain_triggers,
                audit_counter=self.metrics.audit_events,
            )
        policy: RetrainPolicy = self._cache["retrain_policy"]
        return policy

    @property
    def rollout_records(self) -> RolloutRecords:
        from mlplatform.store.rollouts import RolloutRecords

        return RolloutRecords(self.store)

    @property
    def rollout_control(self) -> RolloutControl:
        """Changes rollouts: DB, the registry's traffic plan and the audit log together."""
        from mlplatform.rollouts.control import RolloutControl

        def counted(event: AuditEvent) -> None:
            self.metrics.audit_events.labels(event.result).inc()

        return RolloutControl(self.rollout_records, self.registry, self.audit, counted)

    @property
    def rollout_evaluator(self) -> RolloutEvaluator:
        """The evaluator of open rollouts (the API process's rollout worker ticks it)."""
        from mlplatform.rollouts.evaluator import RolloutEvaluator
        from mlplatform.rollouts.outcomes import outcome_join, prediction_window

        return RolloutEvaluator(
            self.rollout_records,
            self.rollout_control,
            lambda name: find_spec(self.settings.model_roots, name),
            prediction_window(self.settings),
            outcome_join(self.store),
        )

    def _retrain_orchestrator(self) -> RetrainOrchestrator:
        if "retrain_orchestrator" not in self._cache:
            self._cache["retrain_orchestrator"] = self.retrain_orchestrator_factory()
        orchestrator: RetrainOrchestrator = self._cache["retrain_orchestrator"]
        return orchestrator

    def _training_dag(self, model: str) -> str | None:
        """The model's training DAG id; None when no valid spec names it (its alerts are not acted on)."""
        try:
            return find_spec(self.settings.model_roots, model).training_dag_id
        except SpecError:
            return None

    def validate_model(self, name: str) -> ValidationReport:
        """Every check a training run would fail on, for model ``name`` (spec, estimator, features, labels, a fit)."""
        if self.model_validator is not None:
            return self.model_validator(name)
        from mlplatform.onboarding.validate import validate_model

        return validate_model(self.settings, name)

    def model_names(self) -> list[str]:
        """Names of the models with a spec; empty when the specs folder is missing or invalid."""
        try:
            return sorted(load_specs(self.settings.model_roots))
        except SpecError:
            return []

    def spec(self, name: str) -> ModelSpec:
        """The model's spec; an unknown model is a 404 problem."""
        if not re.fullmatch(NAME_PATTERN, name):
            raise Problem(422, f"invalid model name {name!r}", slug="validation", title="Invalid request")
        try:
            folder = model_folders(self.settings.model_roots).get(name)
            if folder is None:
                known = ", ".join(sorted(model_folders(self.settings.model_roots))) or "none"
                detail = f"no model named {name!r}; known models: {known}"
                raise Problem(404, detail, slug="unknown-model", title="Unknown model")
            return load_spec(folder / SPEC_FILE)
        except SpecError as error:
            raise Problem(500, str(error), slug="spec-error", title="Invalid model spec") from None

    def specs(self) -> dict[str, ModelSpec]:
        try:
            return load_specs(self.settings.model_roots)
        except SpecError as error:
            raise Problem(500, str(error), slug="spec-error", title="Invalid model specs") from None

    def close(self) -> None:
        self.store.dispose()
