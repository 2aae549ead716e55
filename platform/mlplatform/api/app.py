"""The app factory: ``create_app(settings)`` builds the API with its services; nothing happens at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mlplatform.api.problems import install_problem_handlers
from mlplatform.api.routers import alerts, audit, auth, deployments, drift, models, oidc, ops, training
from mlplatform.config import Settings
from mlplatform.monitoring.drift_metrics import serve_from_db
from mlplatform.monitoring.retrain import RetrainWorker
from mlplatform.operations.services import ApiServices
from mlplatform.ui import install_ui

API_VERSION = "1"


def create_app(settings: Settings, services: ApiServices | None = None) -> FastAPI:
    """The platform API; ``services`` lets tests substitute fakes for MLflow, Airflow and the deployer."""
    services = services or ApiServices.from_settings(settings)
    services.metrics.start_model_counters(services.model_names())
    retry_worker = RetrainWorker(services.retrain_policy, settings.alerts.worker_interval_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        retry_worker.start()  # retrain triggers Airflow did not take are retried while the API serves
        yield
        retry_worker.stop()
        services.close()

    app = FastAPI(
        title="mlplatform",
        version=API_VERSION,
        summary="Models, training, promotion, deployments and the audit log of the ML platform.",
        lifespan=lifespan,
    )
    app.state.services = services
    install_problem_handlers(app)
    app.middleware("http")(services.metrics.middleware)
    serve_from_db(services.metrics, services.store)  # drift gauges read from the DB at each scrape
    for module in (ops, auth, oidc, models, drift, training, deployments, audit, alerts):
        app.include_router(module.router)
    install_ui(app, services)  # the web UI at /, after the API so /api/v1 paths always win
    return app
