"""Deployments through the Deployer port: deploy, undeploy, canary share, list."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Path, Request

from mlplatform.api.deps import Principal, get_services, permit, record, require
from mlplatform.api.problems import PROBLEM_RESPONSES, Problem
from mlplatform.api.schemas import CanaryRequest, DeploymentOut, DeployRequest, UndeployRequest
from mlplatform.api.services import ApiServices
from mlplatform.specs import NAME_PATTERN
from mlplatform.store.audit import RESULT_FAILED, RESULT_OK

if TYPE_CHECKING:
    from mlplatform.deploy.base import Deployment

router = APIRouter(prefix="/api/v1/deployments", tags=["deployments"], responses=PROBLEM_RESPONSES)
ModelPath = Annotated[str, Path(pattern=NAME_PATTERN)]
Services = Annotated[ApiServices, Depends(get_services)]


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


def _out(services: ApiServices, deployment: Deployment) -> DeploymentOut:
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


@router.get("", summary="Deployments the deployer knows of")
def list_deployments(services: Services, _: Annotated[Principal, Depends(require("viewer"))]) -> list[DeploymentOut]:
    return [_out(services, deployment) for deployment in services.deployer.list()]


@router.post("", status_code=201, summary="Deploy a model (its champion) on a serving backend")
def deploy(
    body: DeployRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("deployment.create", "approver"))],
) -> DeploymentOut:
    services.spec(body.model)
    backend = body.backend or services.settings.serving.backend
    reason = body.reason or "deploy via API"
    with deploy_errors(request, principal.username, "deployment.create", body.model, reason):
        deployment = services.deployer.deploy(body.model, backend)
    services.deployments.upsert(model=body.model, backend=backend, url=deployment.url, deployed_by=principal.username)
    record(request, principal.username, "deployment.create", body.model, RESULT_OK, to_value=backend, reason=reason)
    return _out(services, deployment)


@router.delete("/{model}", summary="Stop serving a model")
def undeploy(
    model: ModelPath,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("deployment.delete", "approver"))],
    body: UndeployRequest | None = None,
) -> dict[str, object]:
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
    return {"model": model, "was_running": was_running}


@router.put("/{model}/canary", summary="Send a percentage of traffic to the challenger")
def set_canary(
    model: ModelPath,
    body: CanaryRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("deployment.canary", "approver"))],
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
    return _out(services, deployment)
