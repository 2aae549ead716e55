"""The web app: the REST API and the UI over one operations layer, joined here and nowhere else.

``mlplatform.api`` and ``mlplatform.ui`` each know only ``mlplatform.operations`` below them; ``create_app`` mounts
both on one FastAPI app and adds what belongs to the process rather than to either: the retry worker for retrain
triggers, the rollout evaluator, and the drift and online-quality metrics read from the platform DB.  Nothing
happens at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mlplatform.api.app import create_api
from mlplatform.config import Settings
from mlplatform.monitoring.drift_metrics import DriftCollector
from mlplatform.monitoring.quality_metrics import QualityCollector
from mlplatform.operations.services import ApiServices
from mlplatform.store.drift import DriftResults
from mlplatform.store.outcomes import OutcomeRecords
from mlplatform.ui import install_ui
from mlplatform.ui.pages import NEW_MODEL_PATH
from mlplatform.waiting import Periodic


def create_app(settings: Settings, services: ApiServices | None = None) -> FastAPI:
    """The platform's API and UI; ``services`` lets tests substitute fakes for MLflow, Airflow and the deployer."""
    services = services or ApiServices.from_settings(settings)
    services.metrics.start_model_counters(services.model_names())
    # Retrain triggers Airflow did not take are retried, and due rollouts evaluated, while the API serves.
    workers = [
        Periodic("retrain-worker", services.retrain_policy.retry_due, settings.alerts.worker_interval_s),
        Periodic("rollout-evaluator", lambda: services.rollout_evaluator.tick(), settings.monitoring.rollout_tick_s),
    ]

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        for worker in workers:
            worker.start()
        yield
        for worker in workers:
            worker.stop()
        services.close()

    app = create_api(services, lifespan, upload_paths=[NEW_MODEL_PATH])
    services.metrics.registry.register(DriftCollector(DriftResults(services.store)))  # read at each scrape
    services.metrics.registry.register(QualityCollector(OutcomeRecords(services.store)))
    install_ui(app, services)  # the web UI at /, after the API so /api/v1 paths always win
    return app
