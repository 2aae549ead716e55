"""Model versions: read them, compare them, promote one through the gate, roll the champion back.

A promotion from a browser form and one from ``curl`` pass the same gate, write the same audit events and refuse
in the same words, because both call these functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from fastapi import Request

from mlplatform.operations.access import Principal, record
from mlplatform.operations.problems import Problem
from mlplatform.operations.schemas import GateOut, PromoteOut, PromoteRequest, RollbackOut, RollbackRequest
from mlplatform.operations.services import ApiServices
from mlplatform.store.audit import RESULT_GATE_REFUSED, RESULT_OK, RESULT_OVERRIDDEN
from mlplatform.store.auth import role_allows
from mlplatform.training.gate import GateDecision, champion_metrics_for, decide, recorded_gate

if TYPE_CHECKING:
    from mlplatform.registry.mlflow_registry import VersionInfo
    from mlplatform.specs import ModelSpec

CHAMPION = "champion"
CHALLENGER = "challenger"
ROLLBACK_PREFIX = "rollback: "


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


def gate_decision(services: ApiServices, spec: ModelSpec, challenger: VersionInfo) -> tuple[GateDecision, str]:
    """The pipeline's gate applied to stored metrics."""
    with registry_errors(spec.name):
        champion = services.registry.alias_holder(spec.name, CHAMPION)
        if champion is None or champion.version == challenger.version:
            return decide(spec.gates, spec.primary_metric, challenger.metrics, None), "no champion to compare"
        versions = services.registry.versions(spec.name)
    metrics, source = champion_metrics_for(spec, challenger, champion, versions)
    return decide(spec.gates, spec.primary_metric, challenger.metrics, metrics, champion.version), source


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
