"""RFC 9457 problem details: the one error shape of the API.

Every error, whether raised by a route (``Problem``), by FastAPI's validation (422), by routing (404/405) or by a
bug (500), leaves as ``application/problem+json`` with ``type``, ``title``, ``status``, ``detail`` and
``instance``.  Clients and the UI then need a single error path.  Nothing from a request body is echoed back:
validation errors name the field and the rule, never the value (it may be a password).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from mlplatform import bodies, logs
from mlplatform.operations.problems import TYPE_BASE, Problem

PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_INSTANCE_CHARS = 256
"""A problem's ``instance`` is the request path, cut to this: a client may send a path of many kilobytes."""
log = logging.getLogger(__name__)


class ProblemDetails(BaseModel):
    """The error body (RFC 9457); extension members such as ``errors`` or ``reasons`` may be present."""

    type: str = Field("about:blank", description="URI reference naming the problem type.")
    title: str
    status: int
    detail: str = ""
    instance: str = Field("", description="The request path the problem occurred at.")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for problem documents with these statuses, schema under their real media type.

    ``model`` registers the ``ProblemDetails`` component (FastAPI also lists it under application/json); the
    explicit schema under ``application/problem+json`` is what lets clients and fuzzers check the error bodies.
    """
    schema = {"$ref": "#/components/schemas/ProblemDetails"}
    return {
        status: {
            "model": ProblemDetails,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": schema}},
            "description": HTTPStatus(status).phrase,
        }
        for status in statuses
    }


# Any request may be malformed (400: a body that is not text), unauthenticated, forbidden, aimed at nothing, or invalid.
PROBLEM_RESPONSES = problem_responses(400, 401, 403, 404, 422)


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    type_: str = "about:blank",
    title: str | None = None,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> JSONResponse:
    logs.note_error(detail)  # the reason on the request's access line
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": _instance(request.url.path),
        **(extensions or {}),
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _instance(path: str) -> str:
    return path if len(path) <= MAX_INSTANCE_CHARS else f"{path[:MAX_INSTANCE_CHARS]}..."


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(
        request,
        exc.status,
        exc.detail,
        type_=exc.type,
        title=exc.title,
        headers=exc.headers,
        extensions=exc.extensions,
    )


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, ValueError | RecursionError):
        return _unparsable_body(request, bodies.json_refusal(cause))
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(request, exc.status_code, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (RFC 9110 section 15.5.6).

    Starlette's own ``Allow`` names only the first route whose path matched, and FastAPI registers one route per
    method, so ``OPTIONS /api/v1/session`` would claim only POST is allowed.
    """
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Location, message and type of each error; input values are deliberately left out."""
    return [
        {
            "loc": [str(part) for part in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
            "type": error.get("type"),
        }
        for error in exc.errors()
    ]


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    summary = "; ".join(f"{'.'.join(error['loc'])}: {error['msg']}" for error in errors[:5])
    return problem_response(
        request,
        422,
        summary or "the request is invalid",
        type_=f"{TYPE_BASE}validation",
        title="Invalid request",
        extensions={"errors": errors},
    )


def _unparsable_body(request: Request, why: str) -> JSONResponse:
    """FastAPI's generic 400 for a JSON body its parser raised on (not UTF-8, nested too deeply, a number beyond
    range) as the 422 its other parse errors get, saying why."""
    return problem_response(
        request,
        422,
        why,
        type_=f"{TYPE_BASE}validation",
        title="Invalid request",
        extensions={"errors": [{"loc": ["body"], "msg": why.removeprefix("body: "), "type": "json_invalid"}]},
    )


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(request, 500, "an internal error occurred; see the server log", type_="about:blank")


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(Exception, _on_unexpected)
