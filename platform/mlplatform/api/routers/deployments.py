"""Deployments through the Deployer port: deploy, undeploy, canary share, list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from mlplatform.api.problems import PROBLEM_RESPONSES, problem_responses
from mlplatform.operations import deployments
from mlplatform.operations.access import Principal, get_services, permit, require
from mlplatform.operations.schemas import CanaryRequest, DeploymentOut, DeployRequest, UndeployRequest
from mlplatform.operations.services import ApiServices
from mlplatform.specs import NAME_PATTERN

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"], responses=PROBLEM_RESPONSES)
ModelPath = Annotated[str, Path(pattern=NAME_PATTERN)]
Services = Annotated[ApiServices, Depends(get_services)]
DEPLOYER_PROBLEMS = problem_responses(409, 501)  # the deployer refused, or cannot do this at all


@router.get("", summary="Deployments the deployer knows of")
def list_deployments(services: Services, _: Annotated[Principal, Depends(require("viewer"))]) -> list[DeploymentOut]:
    return deployments.list_deployments(services)


@router.post(
    "", status_code=201, responses=DEPLOYER_PROBLEMS, summary="Deploy a model (its champion) on a serving backend"
)
def deploy(
    body: DeployRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("deployment.create", "approver"))],
) -> DeploymentOut:
    return deployments.deploy(request, services, principal, body)


@router.delete("/{model}", responses=DEPLOYER_PROBLEMS, summary="Stop serving a model")
def undeploy(
    model: ModelPath,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("deployment.delete", "approver"))],
    body: UndeployRequest | None = None,
) -> dict[str, object]:
    was_running = deployments.undeploy(request, services, principal, model, body)
    return {"model": model, "was_running": was_running}


@router.put("/{model}/canary", responses=DEPLOYER_PROBLEMS, summary="Send a percentage of traffic to the challenger")
def set_canary(
    model: ModelPath,
    body: CanaryRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("deployment.canary", "approver"))],
) -> DeploymentOut:
    return deployments.set_canary(request, services, principal, model, body)
