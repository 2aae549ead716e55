"""What the platform does when asked: log in, train, compare, promote, roll back, deploy.

The REST routers and the web UI both call these functions, so a promotion from a browser form and one from
``curl`` pass the same gate, write the same audit events and refuse in the same words.  Each function takes the
request (for the client address in the audit log) and the already authorised ``Principal``; refusals are raised
as ``Problem`` (the REST API answers them as problem documents, the UI shows them as messages).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response

from mlplatform.api.deps import Principal, client_address, record
from mlplatform.api.problems import Problem
from mlplatform.api.schemas import (
    CanaryRequest,
    DeploymentOut,
    DeployRequest,
    GateOut,
    PromoteOut,
    PromoteRequest,
    RollbackOut,
    RollbackRequest,
    TrainRequest,
    UndeployRequest,
)
from mlplatform.api.services import ApiServices
from mlplatform.registry.lineage import Lineage
from mlplatform.store.audit import (
    RESULT_DENIED,
    RESULT_FAILED,
    RESULT_GATE_REFUSED,
    RESULT_OK,
    RESULT_OVERRIDDEN,
)
from mlplatform.store.auth import User, role_allows
from mlplatform.training.gate import GateDecision, decide

if TYPE_CHECKING:
    from mlplatform.api.security import SessionData
    from mlplatform.deploy.base import Deployment
    from mlplatform.orchestration.airflow_client import DagRun
    from mlplatform.registry.mlflow_registry import VersionInfo
    from mlplatform.specs import ModelSpec
    from mlplatform.store.drift import DriftCheck

log = logging.getLogger(__name__)
CHAMPION = "champion"
CHALLENGER = "challenger"
ROLLBACK_PREFIX = "rollback: "


# ------------------------------------------------------------------------------------------------------ sessions


def login(
    request: Request, response: Response, services: ApiServices, username: str, password: str
) -> tuple[User, SessionData]:
    """Check a password under the rate limit and start a session on ``response``; every attempt is audited."""
    client = client_address(request) or "unknown"
    wait = services.limiter.retry_after(username, client)
    if wait:
        services.metrics.login_failures.labels("rate_limited").inc()
        record(request, username, "session.login", username, RESULT_DENIED, reason="rate limited")
        raise Problem(
            429, "too many failed logins; try again later", slug="rate-limited", headers={"Retry-After": str(wait)}
        )
    user = services.auth.verify_password(username, password)
    if user is None:
        services.limiter.failed(username, client)
        services.metrics.login_failures.labels("bad_credentials").inc()
        record(request, username, "session.login", username, RESULT_FAILED, reason="bad credentials")
        raise Problem(401, "unknown user or wrong password", slug="unauthenticated")
    services.limiter.succeeded(username, client)
    session = services.sessions.start(response, user.id)
    record(request, user.username, "session.login", user.username, RESULT_OK)
    return user, session


def logout(request: Request, response: Response, services: ApiServices, principal: Principal) -> None:
    services.sessions.end(response)
    record(request, principal.username, "session.logout", principal.username, RESULT_OK)


# ------------------------------------------------------------------------------------------------------ registry


@contextmanager
def registry_errors(name: str) -> Iterator[None]:
    """MLflow outages are 503s and unknown models 404s, whichever registry call hits them."""
    from mlplatform.registry.mlflow_registry import RegistryUnavailableError

    try:
        yield
    except RegistryUnavailableError as error:
        raise Problem(503, str(error), slug="registry-unavailable", title="Model registry unavailable") from None
    except LookupError:
        raise Problem(404, f"model {name!r} has no registered versions", slug="unknown-model") from None


def find_version(services: ApiServices, name: str, version: int) -> VersionInfo:
    with registry_errors(name):
        found = [info for info in services.registry.versions(name) if info.version == str(version)]
    if not found:
        raise Problem(404, f"model {name!r} has no version {version}", slug="unknown-version", title="Unknown version")
    return found[0]


def recorded_gate(info: VersionInfo) -> dict[str, Any] | None:
    """The pipeline's gate decision stored on the version, if any."""
    gate = info.tags.get(Lineage.GATE_TAG)
    decision: dict[str, Any] | None = json.loads(gate) if gate else None
    return decision


def version_view(info: VersionInfo) -> dict[str, Any]:
    return {
        "version": info.version,
        "run_id": info.run_id,
        "status": info.status,
        "created_at_ms": info.created_at_ms,
        "aliases": info.aliases,
        "metrics": info.metrics,
        "lineage": info.lineage,
        "gate": recorded_gate(info),
    }


def compare_versions(services: ApiServices, name: str, a: int, b: int) -> dict[str, Any]:
    """Two versions and their metrics side by side (``difference`` is b - a)."""
    services.spec(name)
    first, second = find_version(services, name, a), find_version(services, name, b)
    return {"model": name, "a": version_view(first), "b": version_view(second), "metrics": metric_rows(first, second)}


def metric_rows(first: VersionInfo, second: VersionInfo) -> list[dict[str, Any]]:
    """Every metric either version has, both values and the difference (second - first)."""
    rows = []
    for metric in sorted(set(first.metrics) | set(second.metrics)):
        left, right = first.metrics.get(metric), second.metrics.get(metric)
        difference = None if left is None or right is None else right - left
        rows.append({"metric": metric, "a": left, "b": right, "difference": difference})
    return rows


def champion_metrics_for(
    spec: ModelSpec, challenger: VersionInfo, champion: VersionInfo, versions: list[VersionInfo]
) -> tuple[dict[str, float], str]:
    """The champion's scores to gate against, and where they came from.

    The pipeline's gate decision (a version tag) holds the champion's score on the challenger's own holdout:
    the fair comparison.  Without it (or if the champion changed since), the champion's own run metrics are
    the best evidence there is, and the response says so.
    """
    decision = recorded_gate(challenger)
    if decision and decision.get("champion_version") == champion.version and decision.get("champion_score") is not None:
        return {spec.metrics.primary: float(decision["champion_score"])}, "challenger holdout (pipeline gate)"
    own = [info for info in versions if info.version == champion.version]
    return (own[0].metrics if own else {}), "champion's own run metrics"


def gate_decision(services: ApiServices, spec: ModelSpec, challenger: VersionInfo) -> tuple[GateDecision, str]:
    """The pipeline's gate applied to stored metrics."""
    with registry_errors(spec.name):
        champion = services.registry.alias_holder(spec.name, CHAMPION)
        if champion is None or champion.version == challenger.version:
            return decide(spec.gates, spec.metrics.primary, challenger.metrics, None), "no champion to compare"
        versions = services.registry.versions(spec.name)
    metrics, source = champion_metrics_for(spec, challenger, champion, versions)
    return decide(spec.gates, spec.metrics.primary, challenger.metrics, metrics, champion.version), source


def promote(
    request: Request, services: ApiServices, principal: Principal, name: str, body: PromoteRequest
) -> PromoteOut:
    """Make a version champion if the gate passes (or an admin overrides it with a reason)."""
    spec = services.spec(name)
    target, version = f"{name}/v{body.version}", str(body.version)
    if body.override:
        _check_override(request, principal, target, body.reason)
    challenger = find_version(services, name, body.version)
    with registry_errors(name):
        current = services.registry.alias_holder(name, CHAMPION)
    previous = current.version if current else None
    decision, source = gate_decision(services, spec, challenger)
    gate = GateOut(**asdict(decision), champion_metrics_source=source)
    reason = body.reason or decision.summary
    if previous == version:
        return PromoteOut(
            model=name, version=version, previous_champion=previous, promoted=False, overridden=False, gate=gate
        )
    if not decision.passed and not body.override:
        record(
            request,
            principal.username,
            "model.promote",
            target,
            RESULT_GATE_REFUSED,
            from_value=previous,
            to_value=version,
            reason=reason,
            detail={"gate": decision.reasons},
        )
        raise Problem(
            409, decision.summary, slug="gate-refused", title="Refused by the promotion gate", reasons=decision.reasons
        )
    with registry_errors(name):
        services.registry.move_alias(name, CHAMPION, version, actor=principal.username, reason=reason)
    overridden = not decision.passed
    record(
        request,
        principal.username,
        "model.promote",
        target,
        RESULT_OVERRIDDEN if overridden else RESULT_OK,
        from_value=previous,
        to_value=version,
        reason=reason,
        detail={"gate": decision.reasons},
    )
    return PromoteOut(
        model=name, version=version, previous_champion=previous, promoted=True, overridden=overridden, gate=gate
    )


def _check_override(request: Request, principal: Principal, target: str, reason: str | None) -> None:
    """An override skips the gate: only admins may, and they must say why."""
    if not role_allows(principal.role, "admin"):
        record(request, principal.username, "model.promote", target, "denied", reason="override needs role admin")
        raise Problem(403, "overriding the gate needs the admin role", slug="forbidden")
    if not reason:
        raise Problem(
            422,
            "an override needs a reason",
            slug="validation",
            title="Invalid request",
            errors=[{"loc": ["body", "reason"], "msg": "required with override", "type": "missing"}],
        )


def previous_champion(services: ApiServices, name: str, current: str) -> str | None:
    """The version that held ``champion`` before ``current``, replaying the platform's alias history as a stack.

    A normal move pushes the new holder and a rollback pops the one rolled back from, so repeated rollbacks walk
    further back instead of swinging between two versions.  If the alias was moved outside the platform (the
    replayed top is not the current holder), the last move onto ``current`` decides.
    """
    history = services.store.alias_history(name, CHAMPION)
    stack: list[str] = []
    for event in history:
        if event.reason.startswith(ROLLBACK_PREFIX):
            if stack:
                stack.pop()
        else:
            if not stack and event.from_version is not None:
                stack.append(event.from_version)
            if event.to_version is not None:
                stack.append(event.to_version)
    if stack and stack[-1] == current:
        return stack[-2] if len(stack) > 1 else None
    for event in reversed(history):
        if event.to_version == current:
            return event.from_version
    return None


def rollback(
    request: Request, services: ApiServices, principal: Principal, name: str, body: RollbackRequest
) -> RollbackOut:
    """Move ``champion`` back to the version that held it before; refused when there is none."""
    services.spec(name)
    with registry_errors(name):
        current = services.registry.alias_holder(name, CHAMPION)
    previous = previous_champion(services, name, current.version) if current else None
    if current is None or previous is None:
        record(
            request,
            principal.username,
            "model.rollback",
            name,
            "refused",
            reason=body.reason,
            from_value=current.version if current else None,
        )
        raise Problem(
            409,
            f"model {name!r} has no previous champion to roll back to",
            slug="no-previous-champion",
            title="Nothing to roll back to",
        )
    with registry_errors(name):
        services.registry.move_alias(
            name, CHAMPION, previous, actor=principal.username, reason=f"{ROLLBACK_PREFIX}{body.reason}"
        )
    record(
        request,
        principal.username,
        "model.rollback",
        name,
        RESULT_OK,
        from_value=current.version,
        to_value=previous,
        reason=body.reason,
    )
    return RollbackOut(model=name, from_version=current.version, to_version=previous)


# ------------------------------------------------------------------------------------------------------ training


@contextmanager
def airflow_errors() -> Iterator[None]:
    """Airflow's own 404 stays a 404; anything else it says (or its silence) is a 502/503 for our caller."""
    from mlplatform.orchestration.airflow_client import AirflowError, AirflowUnreachableError

    try:
        yield
    except AirflowUnreachableError:
        raise Problem(503, "Airflow is unreachable", slug="orchestrator-unavailable") from None
    except AirflowError as error:
        if error.status_code == 404:
            raise Problem(404, "no such training run or DAG in Airflow", slug="unknown-run") from None
        raise Problem(502, f"Airflow refused: {error.airflow_message or error}", slug="orchestrator-error") from None


def trigger_training(
    request: Request, services: ApiServices, principal: Principal, name: str, body: TrainRequest
) -> DagRun:
    """Start the model's training DAG with the caller's overrides; the run and its conf are audited."""
    spec = services.spec(name)
    conf: dict[str, Any] = {
        "estimator_params": dict(body.estimator_params),
        "reason": body.reason,
        "requested_by": principal.username,
    }
    if body.window_days is not None:
        conf["window_days"] = body.window_days
    try:
        with airflow_errors():
            run = services.orchestrator.trigger(spec.training_dag_id, conf)
    except Problem as problem:
        record(
            request,
            principal.username,
            "training.trigger",
            name,
            RESULT_FAILED,
            reason=body.reason,
            detail={"conf": conf, "error": problem.detail},
        )
        raise
    record(
        request,
        principal.username,
        "training.trigger",
        name,
        RESULT_OK,
        to_value=run.run_id,
        reason=body.reason,
        detail={"conf": conf},
    )
    return run


def training_runs(services: ApiServices, name: str, limit: int) -> list[DagRun]:
    spec = services.spec(name)
    with airflow_errors():
        return services.orchestrator.list_runs(spec.training_dag_id, limit)


# --------------------------------------------------------------------------------------------------- deployments


@contextmanager
def deploy_errors(request: Request, actor: str, action: str, model: str, reason: str) -> Iterator[None]:
    """A deployer failure is audited as failed and answered as a problem."""
    from mlplatform.deploy.base import DeployError

    try:
        yield
    except DeployError as error:
        record(request, actor, action, model, RESULT_FAILED, reason=reason, detail={"error": str(error)})
        raise Problem(409, str(error), slug="deploy-failed", title="Deployment failed") from None
    except NotImplementedError as error:
        record(request, actor, action, model, RESULT_FAILED, reason=reason, detail={"error": str(error)})
        raise Problem(501, str(error), slug="not-supported", title="Not supported by this deployer") from None


def deployment_out(services: ApiServices, deployment: Deployment) -> DeploymentOut:
    stored = services.deployments.get(deployment.model)
    return DeploymentOut(
        model=deployment.model,
        backend=deployment.backend,
        url=deployment.url,
        running=deployment.running,
        ready=deployment.ready,
        detail=deployment.detail,
        canary_percent=stored.canary_percent if stored else 0,
        deployed_by=stored.deployed_by if stored else None,
    )


def deployments(services: ApiServices) -> list[DeploymentOut]:
    return [deployment_out(services, deployment) for deployment in services.deployer.list()]


def deploy(request: Request, services: ApiServices, principal: Principal, body: DeployRequest) -> DeploymentOut:
    """Serve the model's champion on a backend; returns once the server is ready."""
    services.spec(body.model)
    backend = body.backend or services.settings.serving.backend
    reason = body.reason or "deploy via API"
    with deploy_errors(request, principal.username, "deployment.create", body.model, reason):
        deployment = services.deployer.deploy(body.model, backend)
    services.deployments.upsert(model=body.model, backend=backend, url=deployment.url, deployed_by=principal.username)
    record(request, principal.username, "deployment.create", body.model, RESULT_OK, to_value=backend, reason=reason)
    return deployment_out(services, deployment)


def undeploy(
    request: Request, services: ApiServices, principal: Principal, model: str, body: UndeployRequest | None
) -> bool:
    """Stop serving the model; returns whether a server was running."""
    services.spec(model)
    reason = (body.reason if body else None) or "undeploy via API"
    with deploy_errors(request, principal.username, "deployment.delete", model, reason):
        was_running = services.deployer.undeploy(model)
    stored = services.deployments.get(model)
    services.deployments.remove(model)
    record(
        request,
        principal.username,
        "deployment.delete",
        model,
        RESULT_OK,
        from_value=stored.backend if stored else None,
        reason=reason,
    )
    return was_running


def set_canary(
    request: Request, services: ApiServices, principal: Principal, model: str, body: CanaryRequest
) -> DeploymentOut:
    services.spec(model)
    reason = body.reason or "canary via API"
    before = services.deployments.get(model)
    with deploy_errors(request, principal.username, "deployment.canary", model, reason):
        deployment = services.deployer.set_canary(model, body.percent)
    services.deployments.set_canary(model, body.percent)
    record(
        request,
        principal.username,
        "deployment.canary",
        model,
        RESULT_OK,
        from_value=str(before.canary_percent) if before else None,
        to_value=str(body.percent),
        reason=reason,
    )
    return deployment_out(services, deployment)


# ---------------------------------------------------------------------------------------------------- monitoring


def check_drift(request: Request, services: ApiServices, principal: Principal, name: str) -> DriftCheck:
    """Run the model's drift check now: the same ``run_drift_check`` as the CLI and the monitoring DAG, audited.

    A window with too few rows is a result (``insufficient_data``), not a refusal; no champion is a 409.
    """
    from mlplatform.monitoring import drift_check
    from mlplatform.registry.mlflow_registry import RegistryUnavailableError

    services.spec(name)
    actor = principal.username
    try:
        check = drift_check.run_drift_check(services.settings, name, actor=actor, store=services.store)
    except drift_check.DriftCheckError as error:
        record(request, actor, "drift.check", name, RESULT_FAILED, detail={"error": str(error)})
        raise Problem(409, str(error), slug="drift-check-impossible", title="Drift check impossible") from None
    except RegistryUnavailableError as error:
        record(request, actor, "drift.check", name, RESULT_FAILED, detail={"error": str(error)})
        raise Problem(503, str(error), slug="registry-unavailable", title="Model registry unavailable") from None
    except Exception as error:  # the prediction log or Evidently failed: say so, details in the server log
        log.exception("drift check of %s failed", name)
        record(request, actor, "drift.check", name, RESULT_FAILED, detail={"error": type(error).__name__})
        raise Problem(500, "the drift check failed; see the API server log", slug="drift-check-failed") from None
    detail = {"check_id": check.id, "rows": check.rows, "drift_share": check.drift_share}
    record(request, actor, "drift.check", name, RESULT_OK, to_value=check.status, detail=detail)
    return check
