"""New models from uploaded tables (``POST /api/v1/models``, multipart) and validation of a model.

The upload is read as the UI's "New model" form reads it (``mlplatform.operations.uploads``): bounded in size
before it is read (411/413), limited in files and fields, files kept for the request only.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam

from mlplatform.api.problems import PROBLEM_RESPONSES, problem_responses
from mlplatform.operations import onboarding
from mlplatform.operations.access import Principal, get_services, permit
from mlplatform.operations.schemas import NewModelOut, NewModelRequest, ValidationOut
from mlplatform.operations.services import ApiServices
from mlplatform.operations.uploads import bounded_upload, create_from_upload, upload_form
from mlplatform.specs import NAME_PATTERN

router = APIRouter(prefix="/api/v1/models", tags=["models"], responses=PROBLEM_RESPONSES)
UPLOAD_PATH = "/api/v1/models"  # POST: a new model's upload, which gets api.max_upload_mb instead of max_body_kb
Services = Annotated[ApiServices, Depends(get_services)]
UPLOAD_SCHEMA: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "entity_key", "label", "features", "labels"],
                    "properties": {
                        **NewModelRequest.model_json_schema()["properties"],
                        "features": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "Feature tables (parquet), one or more.",
                        },
                        "labels": {"type": "string", "format": "binary", "description": "Label table (parquet)."},
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=201,
    responses=problem_responses(409, 411, 413, 415, 500),
    openapi_extra=UPLOAD_SCHEMA,
    summary="Create a model from a feature table and a label table (multipart upload)",
)
async def create_model(
    request: Request,
    services: Services,
    _size: Annotated[None, Depends(bounded_upload)],
    principal: Annotated[Principal, Depends(permit("model.create", "data-scientist"))],
) -> NewModelOut:
    form = await upload_form(request)
    return await create_from_upload(request, services, principal, form)


@router.post(
    "/{name}/validate",
    responses=problem_responses(503),
    summary="Check a model as a training run would: spec, estimator, features, labels, a sample fit",
)
def validate_model(
    name: Annotated[str, PathParam(pattern=NAME_PATTERN)],
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("model.validate", "data-scientist"))],
) -> ValidationOut:
    return onboarding.validate(request, services, principal, name)
