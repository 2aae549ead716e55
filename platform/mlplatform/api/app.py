"""The REST API alone: ``create_api(services)``; ``mlplatform.webapp.create_app`` joins it with the UI."""

from __future__ import annotations

from collections.abc import Collection

from fastapi import FastAPI
from starlette.types import Lifespan

from mlplatform import bodies, logs
from mlplatform.api.early_auth import AuthenticateBeforeBody
from mlplatform.api.problems import install_problem_handlers
from mlplatform.api.routers import (
    alerts,
    audit,
    auth,
    deployments,
    drift,
    models,
    oidc,
    onboarding,
    ops,
    outcomes,
    rollouts,
    training,
)
from mlplatform.operations.services import ApiServices

API_VERSION = "1"


def create_api(
    services: ApiServices,
    lifespan: Lifespan[FastAPI] | None = None,
    upload_paths: Collection[str] = (),
) -> FastAPI:
    """The API's routes, error handling and request metrics over ``services``; its OpenAPI document is docs/api.md.

    Request bodies are limited to ``api.max_body_kb`` before any route reads them (``bodies.BodyLimit``), except
    on the routes that bound their bodies themselves: the upload routes (the API's and ``upload_paths``, the UI's
    form: ``api.max_upload_mb``) and the alert webhook.
    """
    app = FastAPI(
        title="mlplatform",
        version=API_VERSION,
        summary="Models, training, promotion, deployments and the audit log of the ML platform.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_problem_handlers(app)
    # The uploads and the webhook bound their bodies themselves (api.max_upload_mb, the webhook's 4 MiB).
    exempt = [("POST", path) for path in (onboarding.UPLOAD_PATH, alerts.WEBHOOK_PATH, *upload_paths)]
    app.add_middleware(AuthenticateBeforeBody)  # inside BodyLimit: a body too large is refused before anything
    app.add_middleware(bodies.BodyLimit, limit=services.settings.api.max_body_kb * 1024, exempt=exempt)
    app.middleware("http")(services.metrics.middleware)  # outside the body limit: it counts the 413s too
    # Outermost: the request id is set before anything else runs and returned on every answer.
    app.add_middleware(logs.RequestLog, sample=lambda: services.settings.api.access_log)
    for module in (
        ops,
        auth,
        oidc,
        onboarding,
        models,
        drift,
        training,
        deployments,
        rollouts,
        outcomes,
        audit,
        alerts,
    ):
        app.include_router(module.router)
    return app
