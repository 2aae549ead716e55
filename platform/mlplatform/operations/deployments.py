"""Deployments: serve a model's champion on a backend, stop it, shift canary traffic; each change audited."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fastapi import Request

from mlplatform.operations.access import Principal, record
from mlplatform.operations.problems import Problem
from mlplatform.operations.schemas import CanaryRequest, DeploymentOut, DeployRequest, UndeployRequest
from mlplatform.operations.services import ApiServices
from mlplatform.store.audit import RESULT_FAILED, RESULT_OK

if TYPE_CHECKING:
    from mlplatform.deploy.base import Deployment


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


def list_deployments(services: ApiServices) -> list[DeploymentOut]:
    return [deployment_out(services, deployment) for deployment in services.deployer.list()]


def deploy(request: Request, services: ApiServices, principal: Principal, body: DeployRequest) -> DeploymentOut:
    """Serve the model's champion on a backend (on ``body.port`` when given); returns once the server is ready."""
    services.spec(body.model)
    backend = body.backend or services.settings.serving.backend
    reason = body.reason or "deploy via API"
    with deploy_errors(request, principal.username, "deployment.create", body.model, reason):
        deployment = services.deployer.deploy(body.model, backend, body.port)
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
