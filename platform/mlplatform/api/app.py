"""The REST API alone: ``create_api(services)``; ``mlplatform.webapp.create_app`` joins it with the UI."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import Lifespan

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
    training,
)
from mlplatform.operations.services import ApiServices

API_VERSION = "1"


def create_api(services: ApiServices, lifespan: Lifespan[FastAPI] | None = None) -> FastAPI:
    """The API's routes, error handling and request metrics over ``services``; its OpenAPI document is docs/api.md."""
    app = FastAPI(
        title="mlplatform",
        version=API_VERSION,
        summary="Models, training, promotion, deployments and the audit log of the ML platform.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_problem_handlers(app)
    app.middleware("http")(services.metrics.middleware)
    for module in (ops, auth, oidc, onboarding, models, drift, training, deployments, audit, alerts):
        app.include_router(module.router)
    return app
