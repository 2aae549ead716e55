"""Models: versions with aliases, metrics and lineage (MLflow), comparison, promotion through the gate, rollback."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from mlplatform.api.problems import PROBLEM_RESPONSES, problem_responses
from mlplatform.operations import promotion
from mlplatform.operations.access import Principal, get_services, permit, require
from mlplatform.operations.promotion import find_version, registry_errors, version_view
from mlplatform.operations.schemas import PromoteOut, PromoteRequest, RollbackOut, RollbackRequest
from mlplatform.operations.services import ApiServices
from mlplatform.specs import NAME_PATTERN

router = APIRouter(prefix="/api/v1/models", tags=["models"], responses=PROBLEM_RESPONSES)
NamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="Model name (as in its spec).")]
VersionPath = Annotated[int, Path(gt=0, le=10**9)]
Services = Annotated[ApiServices, Depends(get_services)]


@router.get("", summary="List models (from their specs)")
def list_models(services: Services, _: Annotated[Principal, Depends(require("viewer"))]) -> list[dict[str, Any]]:
    return [
        {
            "name": spec.name,
            "description": spec.description,
            "owner": spec.owner,
            "primary_metric": spec.primary_metric,
            "training_dag_id": spec.training_dag_id,
            "schedule": spec.schedule,
        }
        for spec in services.specs().values()
    ]


@router.get(
    "/{name}",
    responses=problem_responses(503),
    summary="A model: aliases, versions with metrics and lineage, alias history",
)
def describe_model(
    name: NamePath, services: Services, _: Annotated[Principal, Depends(require("viewer"))]
) -> dict[str, Any]:
    spec = services.spec(name)
    with registry_errors(name):
        described = services.registry.describe(name)
    return {**described, "task": spec.task, "primary_metric": spec.primary_metric}


@router.get(
    "/{name}/versions/{version}",
    responses=problem_responses(503),
    summary="One version: metrics, lineage, aliases, gate decision",
)
def get_version(
    name: NamePath, version: VersionPath, services: Services, _: Annotated[Principal, Depends(require("viewer"))]
) -> dict[str, Any]:
    services.spec(name)
    return version_view(find_version(services, name, version))


@router.get("/{name}/compare", responses=problem_responses(503), summary="Two versions' metrics side by side")
def compare_versions(
    name: NamePath,
    services: Services,
    _: Annotated[Principal, Depends(require("data-scientist"))],
    a: Annotated[int, Query(gt=0, le=10**9, description="First version.")],
    b: Annotated[int, Query(gt=0, le=10**9, description="Second version.")],
) -> dict[str, Any]:
    return promotion.compare_versions(services, name, a, b)


@router.post(
    "/{name}/promote",
    responses=problem_responses(409, 503),
    summary="Make a version champion through the gate (override: admin + reason)",
)
def promote(
    name: NamePath,
    body: PromoteRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("model.promote", "approver"))],
) -> PromoteOut:
    return promotion.promote(request, services, principal, name, body)


@router.post(
    "/{name}/rollback", responses=problem_responses(409, 503), summary="Move champion back to its previous holder"
)
def rollback(
    name: NamePath,
    body: RollbackRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("model.rollback", "approver"))],
) -> RollbackOut:
    return promotion.rollback(request, services, principal, name, body)
