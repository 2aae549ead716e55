"""A new model's multipart upload, read the same way for the API's ``POST /api/v1/models`` and the UI's form.

The upload is bounded before it is read: the request must declare its length (``Content-Length``) and stay under
``api.max_upload_mb``, else 411/413; the multipart parser is limited in files and fields.  Files are kept in a
temporary directory for the request only; ``onboarding.create_model`` copies what the contract accepts into the
model's data directory.  The work (contract, Feast, a sample fit) is blocking, so it runs in the thread pool.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Final

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from mlplatform.operations import onboarding
from mlplatform.operations.access import Principal, get_services
from mlplatform.operations.problems import Problem
from mlplatform.operations.schemas import NewModelOut, NewModelRequest
from mlplatform.operations.services import ApiServices

MAX_FEATURE_FILES: Final = 16
CHUNK: Final = 1 << 20
FORM_FIELDS: Final = tuple(NewModelRequest.model_fields)


def bounded_upload(request: Request) -> None:
    """Refuse an upload of unknown or excessive size before anything reads its body."""
    limit = get_services(request).settings.api.max_upload_mb * CHUNK
    declared = request.headers.get("content-length")
    if declared is None or not declared.isdigit():
        raise Problem(411, "send the upload with a Content-Length header", slug="length-required")
    if int(declared) > limit:
        raise Problem(413, f"the upload exceeds api.max_upload_mb ({limit // CHUNK} MiB)", slug="too-large")


async def upload_form(request: Request) -> FormData:
    """The multipart form, parsed with limits on files and fields (the CSRF field and one spare besides ours)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise Problem(415, "send the files as multipart/form-data", slug="unsupported-media-type")
    return await request.form(max_files=MAX_FEATURE_FILES + 1, max_fields=len(FORM_FIELDS) + 2)


async def create_from_upload(
    request: Request, services: ApiServices, principal: Principal, form: FormData
) -> NewModelOut:
    """Check the form's fields and files, then create the model from files saved for this request only."""
    body = new_model_request(form)
    feature_files = [item for item in form.getlist("features") if isinstance(item, UploadFile)]
    label_files = [item for item in form.getlist("labels") if isinstance(item, UploadFile)]
    if not feature_files:
        raise field_problem("features", "at least one feature table (parquet) is required")
    if len(label_files) != 1:
        raise field_problem("labels", "exactly one label table (parquet) is required")
    with tempfile.TemporaryDirectory(prefix="mlp-upload-") as scratch:
        features = [await _save(upload, Path(scratch), "features") for upload in feature_files]
        labels = await _save(label_files[0], Path(scratch), "labels")
        return await run_in_threadpool(onboarding.create_model, request, services, principal, body, features, labels)


def field_problem(field: str, message: str) -> Problem:
    return Problem(422, f"{field}: {message}", slug="validation", title="Invalid request")


def new_model_request(form: FormData) -> NewModelRequest:
    """The text fields as the request model; an empty field is an unset one (its default applies)."""
    values = {key: form.get(key) for key in FORM_FIELDS if form.get(key) not in (None, "")}
    if any(not isinstance(value, str) for value in values.values()):
        raise field_problem("form", "every field except the files must be text")
    try:
        return NewModelRequest.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        raise field_problem(".".join(str(part) for part in first["loc"]), first["msg"]) from None


async def _save(upload: UploadFile, folder: Path, field: str) -> Path:
    """The upload under its own base name in ``folder``; only ``.parquet`` names are accepted."""
    name = Path(upload.filename or "").name
    if not name.endswith(".parquet") or name.startswith("."):
        raise field_problem(field, f"{upload.filename!r} is not a .parquet file name")
    path = folder / name
    if path.exists():
        raise field_problem(field, f"two files are named {name!r}; rename one")
    with path.open("wb") as target:
        while chunk := await upload.read(CHUNK):
            target.write(chunk)
    return path
