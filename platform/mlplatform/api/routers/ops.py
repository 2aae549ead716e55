"""Liveness, readiness and Prometheus metrics: unauthenticated, as probes and scrapers expect."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from sqlalchemy import text

from mlplatform.api.problems import problem_responses
from mlplatform.operations.access import get_services
from mlplatform.operations.metrics import CONTENT_TYPE
from mlplatform.operations.problems import Problem
from mlplatform.operations.services import ApiServices

router = APIRouter(tags=["operations"])
Services = Annotated[ApiServices, Depends(get_services)]


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses=problem_responses(503), summary="Readiness: the platform database answers")
def readyz(services: Services) -> dict[str, str]:
    try:
        with services.store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        raise Problem(503, "the platform database does not answer", slug="not-ready") from None
    return {"status": "ready"}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(services: Services) -> Response:
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
