"""Outcomes: late labels of served predictions, and the online quality they measure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from mlplatform.api.problems import PROBLEM_RESPONSES, problem_responses
from mlplatform.operations import outcomes
from mlplatform.operations.access import Principal, get_services, permit, require
from mlplatform.operations.outcomes import IngestOut, LabelsRequest, QualityOut
from mlplatform.operations.services import ApiServices
from mlplatform.specs import NAME_PATTERN

router = APIRouter(prefix="/api/v1/models", tags=["outcomes"], responses=PROBLEM_RESPONSES)
NamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="Model name (as in its spec).")]
Services = Annotated[ApiServices, Depends(get_services)]


@router.post(
    "/{name}/labels",
    responses=problem_responses(404, 409, 422),
    summary="Ingest late labels (by request id or entity and event time), then measure the online quality",
)
def ingest_labels(
    name: NamePath,
    body: LabelsRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("outcomes.ingest", "data-scientist"))],
) -> IngestOut:
    return outcomes.ingest(request, services, principal, name, body)


@router.get(
    "/{name}/quality", responses=problem_responses(404), summary="The latest online quality per version and arm"
)
def quality(
    name: NamePath, services: Services, _: Annotated[Principal, Depends(require("viewer"))]
) -> list[QualityOut]:
    return outcomes.latest_quality(services, name)
