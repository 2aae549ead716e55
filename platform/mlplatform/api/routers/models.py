"""Models: versions with aliases, metrics and lineage (MLflow), comparison, promotion through the gate, rollback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from mlplatform.api.deps import Principal, get_services, permit, record, require
from mlplatform.api.problems import PROBLEM_RESPONSES, Problem
from mlplatform.api.schemas import (
    GateOut,
    PromoteOut,
    PromoteRequest,
    RollbackOut,
    RollbackRequest,
)
from mlplatform.api.services import ApiServices
from mlplatform.specs import NAME_PATTERN
from mlplatform.store.audit import RESULT_GATE_REFUSED, RESULT_OK, RESULT_OVERRIDDEN
from mlplatform.store.auth import role_allows
from mlplatform.training.gate import GateDecision, decide

if TYPE_CHECKING:
    from mlplatform.registry.mlflow_registry import VersionInfo
    from mlplatform.specs import ModelSpec

CHAMPION = "champion"
GATE_TAG = "mlplatform.gate"
ROLLBACK_PREFIX = "rollback: "
router = APIRouter(prefix="/api/v1/models", tags=["models"], responses=PROBLEM_RESPONSES)
NamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="Model name (as in its spec).")]
VersionPath = Annotated[int, Path(gt=0, le=10**9)]
Services = Annotated[ApiServices, Depends(get_services)]


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


@router.get("", summary="List models (from their specs)")
def list_models(services: Services, _: Annotated[Principal, Depends(require("viewer"))]) -> list[dict[str, Any]]:
    return [
        {
            "name": spec.name,
            "description": spec.description,
            "owner": spec.owner,
            "primary_metric": spec.metrics.primary,
            "training_dag_id": spec.training_dag_id,
            "schedule": spec.schedule,
        }
        for spec in services.specs().values()
    ]


@router.get("/{name}", summary="A model: aliases, versions with metrics and lineage, alias history")
def describe_model(
    name: NamePath, services: Services, _: Annotated[Principal, Depends(require("viewer"))]
) -> dict[str, Any]:
    services.spec(name)
    with registry_errors(name):
        return services.registry.describe(name)


@router.get("/{name}/versions/{version}", summary="One version: metrics, lineage, aliases, gate decision")
def get_version(
    name: NamePath, version: VersionPath, services: Services, _: Annotated[Principal, Depends(require("viewer"))]
) -> dict[str, Any]:
    services.spec(name)
    info = find_version(services, name, version)
    return _version_view(info)


def _version_view(info: VersionInfo) -> dict[str, Any]:
    gate = info.tags.get(GATE_TAG)
    return {
        "version": info.version,
        "run_id": info.run_id,
        "status": info.status,
        "created_at_ms": info.created_at_ms,
        "aliases": info.aliases,
        "metrics": info.metrics,
        "lineage": info.lineage,
        "gate": json.loads(gate) if gate else None,
    }


@router.get("/{name}/compare", summary="Two versions' metrics side by side")
def compare_versions(
    name: NamePath,
    services: Services,
    _: Annotated[Principal, Depends(require("data-scientist"))],
    a: Annotated[int, Query(gt=0, le=10**9, description="First version.")],
    b: Annotated[int, Query(gt=0, le=10**9, description="Second version.")],
) -> dict[str, Any]:
    services.spec(name)
    first, second = find_version(services, name, a), find_version(services, name, b)
    metric_names = sorted(set(first.metrics) | set(second.metrics))
    rows = []
    for metric in metric_names:
        left, right = first.metrics.get(metric), second.metrics.get(metric)
        difference = None if left is None or right is None else right - left
        rows.append({"metric": metric, "a": left, "b": right, "difference": difference})
    return {"model": name, "a": _version_view(first), "b": _version_view(second), "metrics": rows}


def champion_metrics_for(
    spec: ModelSpec, challenger: VersionInfo, champion: VersionInfo, versions: list[VersionInfo]
) -> tuple[dict[str, float], str]:
    """The champion's scores to gate against, and where they came from.

    The pipeline's gate decision (a version tag) holds the champion's score on the challenger's own holdout:
    the fair comparison.  Without it (or if the champion changed since), the champion's own run metrics are
    the best evidence there is, and the response says so.
    """
    recorded = challenger.tags.get(GATE_TAG)
    if recorded:
        decision = json.loads(recorded)
        if decision.get("champion_version") == champion.version and decision.get("champion_score") is not None:
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


@router.post("/{name}/promote", summary="Make a version champion through the gate (override: admin + reason)")
def promote(
    name: NamePath,
    body: PromoteRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("model.promote", "approver"))],
) -> PromoteOut:
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


@router.post("/{name}/rollback", summary="Move champion back to its previous holder")
def rollback(
    name: NamePath,
    body: RollbackRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("model.rollback", "approver"))],
) -> RollbackOut:
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
