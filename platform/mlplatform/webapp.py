"""The web app: the REST API and the UI over one operations layer, joined here and nowhere else.

``mlplatform.api`` and ``mlplatform.ui`` each know only ``mlplatform.operations`` below them; ``create_app`` mounts
both on one FastAPI app and adds what belongs to the process rather than to either: the retry worker for retrain
triggers and the drift metrics read from the platform DB.  Nothing happens at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mlplatform.api.app import create_api
from mlplatform.config import Settings
from mlplatform.monitoring.drift_metrics import DriftCollector
from mlplatform.operations.services import ApiServices
from mlplatform.retraining.worker import RetrainWorker
from mlplatform.store.drift import DriftResults
from mlplatform.ui import install_ui
from mlplatform.ui.pages import NEW_MODEL_PATH


def create_app(settings: Settings, services: ApiServices | None = None) -> FastAPI:
    """The platform's API and UI; ``services`` lets tests substitute fakes for MLflow, Airflow and the deployer."""
    services = services or ApiServices.from_settings(settings)
    services.metrics.start_model_counters(services.model_names())
    retry_worker = RetrainWorker(services.retrain_policy, settings.alerts.worker_interval_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        retry_worker.start()  # retrain triggers Airflow did not take are retried while the API serves
        yield
        retry_worker.stop()
        services.close()

    app = create_api(services, lifespan, upload_paths=[NEW_MODEL_PATH])
    services.metrics.registry.register(DriftCollector(DriftResults(services.store)))  # read at each scrape
    install_ui(app, services)  # the web UI at /, after the API so /api/v1 paths always win
    return app
