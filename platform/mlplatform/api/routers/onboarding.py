"""New models from uploaded tables (``POST /api/v1/models``, multipart) and validation of a model.

The upload is bounded before it is read: the request must declare its length (``Content-Length``) and stay under
``api.max_upload_mb``, else 411/413; the multipart parser is limited in files and fields.  Files are kept in a
temporary directory for the request only; the operation copies what the contract accepts into the model's data
directory.  The work (contract, Feast, a sample fit) is blocking, so it runs in the thread pool.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from mlplatform.api.problems import PROBLEM_RESPONSES, problem_responses
from mlplatform.operations import onboarding
from mlplatform.operations.access import Principal, get_services, permit
from mlplatform.operations.problems import Problem
from mlplatform.operations.schemas import NewModelOut, NewModelRequest, ValidationOut
from mlplatform.operations.services import ApiServices
from mlplatform.specs import NAME_PATTERN

router = APIRouter(prefix="/api/v1/models", tags=["models"], responses=PROBLEM_RESPONSES)
Services = Annotated[ApiServices, Depends(get_services)]
MAX_FEATURE_FILES: Final = 16
CHUNK: Final = 1 << 20
FORM_FIELDS: Final = tuple(NewModelRequest.model_fields)
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


def bounded_upload(request: Request) -> None:
    """Refuse an upload of unknown or excessive size before anything reads its body."""
    limit = get_services(request).settings.api.max_upload_mb * CHUNK
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise Problem(411, "send the upload with a Content-Length header", slug="length-required")
    if int(declared) > limit:
        raise Problem(413, f"the upload exceeds api.max_upload_mb ({limit // CHUNK} MiB)", slug="too-large")


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
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise Problem(415, "send the files as multipart/form-data", slug="unsupported-media-type")
    form = await request.form(max_files=MAX_FEATURE_FILES + 1, max_fields=len(FORM_FIELDS) + 2)
    body = _fields(form)
    feature_files = [item for item in form.getlist("features") if isinstance(item, UploadFile)]
    label_files = [item for item in form.getlist("labels") if isinstance(item, UploadFile)]
    if not feature_files:
        raise _field_problem("features", "at least one feature table (parquet) is required")
    if len(label_files) != 1:
        raise _field_problem("labels", "exactly one label table (parquet) is required")
    with tempfile.TemporaryDirectory(prefix="mlp-upload-") as scratch:
        features = [await _save(upload, Path(scratch), "features") for upload in feature_files]
        labels = await _save(label_files[0], Path(scratch), "labels")
        return await run_in_threadpool(onboarding.create_model, request, services, principal, body, features, labels)


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


def _field_problem(field: str, message: str) -> Problem:
    return Problem(422, f"{field}: {message}", slug="validation", title="Invalid request")


def _fields(form: Any) -> NewModelRequest:
    values = {key: form.get(key) for key in FORM_FIELDS if form.get(key) not in (None, "")}
    if any(not isinstance(value, str) for value in values.values()):
        raise _field_problem("form", "every field except the files must be text")
    try:
        return NewModelRequest.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        raise _field_problem(".".join(str(part) for part in first["loc"]), first["msg"]) from None


async def _save(upload: UploadFile, folder: Path, field: str) -> Path:
    """The upload under its own base name in ``folder``; only ``.parquet`` names are accepted."""
    name = Path(upload.filename or "").name
    if not name.endswith(".parquet") or name.startswith("."):
        raise _field_problem(field, f"{upload.filename!r} is not a .parquet file name")
    path = folder / name
    if path.exists():
        raise _field_problem(field, f"two files are named {name!r}; rename one")
    with path.open("wb") as target:
        while chunk := await upload.read(CHUNK):
            target.write(chunk)
    return path
