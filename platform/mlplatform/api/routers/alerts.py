"""The Alertmanager webhook (drift alerts may trigger a retrain) and each model's retrain records.

The webhook authenticates with its own bearer token (``mlplatform.retraining.alertmanager.webhook_token``), not a
user's API token: it may do this one thing only, and user tokens are not accepted here.  The token is checked
before the body is read, and a body that is not an Alertmanager v4 payload is a 400 (the request is malformed,
not a valid request for something unprocessable), so Alertmanager logs it instead of retrying it forever.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from mlplatform import bodies
from mlplatform.api.problems import PROBLEM_RESPONSES, problem_responses
from mlplatform.operations.access import ROLE_ATTRIBUTE, Principal, client_address, get_services, require
from mlplatform.operations.problems import Problem
from mlplatform.operations.schemas import AlertsReceivedOut, RetrainOut
from mlplatform.operations.services import ApiServices
from mlplatform.retraining.alertmanager import WebhookPayload, webhook_token
from mlplatform.specs import NAME_PATTERN
from mlplatform.store.audit import RESULT_UNAUTHENTICATED

MAX_BODY_BYTES = 4 * 1024 * 1024
WEBHOOK_PATH = "/api/v1/alerts/alertmanager"
WEBHOOK_ROLE = "webhook-token"  # not a user role: only the webhook's own token opens this route
Services = Annotated[ApiServices, Depends(get_services)]
NamePath = Annotated[str, Path(pattern=NAME_PATTERN)]


def webhook_caller(request: Request) -> None:
    """401 (audited) unless the request carries the webhook's bearer token; compared in constant time.

    A dependency, so it runs before the route reads the body: without the token nothing is parsed.
    """
    services = get_services(request)
    authorization = request.headers.get("authorization")
    if bodies.bearer_matches(authorization, webhook_token(services.settings).encode()):
        return
    why = "no credentials" if not (authorization or "").partition(" ")[2] else "wrong webhook token"
    services.audit.record(
        actor="anonymous",
        action="alert.receive",
        target=WEBHOOK_PATH,
        result=RESULT_UNAUTHENTICATED,
        reason=why,
        client=client_address(request),
    )
    services.metrics.audit_events.labels(RESULT_UNAUTHENTICATED).inc()
    raise Problem(
        401,
        "the webhook needs 'Authorization: Bearer <webhook token>' (alerts.webhook_token)",
        slug="unauthenticated",
        headers={"WWW-Authenticate": 'Bearer realm="mlplatform-alerts"'},
    )


setattr(webhook_caller, ROLE_ATTRIBUTE, WEBHOOK_ROLE)  # the API reference names what the route checks


def _parse(body: bytes) -> WebhookPayload:
    """The payload, or a 400 naming what is wrong (locations and messages only, never the values)."""
    try:
        return WebhookPayload.model_validate(bodies.load_json(body))
    except bodies.UnparsableJsonError as error:
        raise Problem(400, f"not an Alertmanager webhook payload: {error}", slug="malformed-alert") from None
    except ValidationError as error:
        errors = [
            {"loc": [str(part) for part in item["loc"]], "msg": item["msg"], "type": item["type"]}
            for item in error.errors(include_input=False, include_url=False)
        ]
        summary = "; ".join(f"{'.'.join(e['loc']) or 'body'}: {e['msg']}" for e in errors[:5])
        raise Problem(
            400,
            f"not an Alertmanager webhook payload (version 4): {summary}",
            slug="malformed-alert",
            errors=errors,
        ) from None


router = APIRouter(prefix="/api/v1", tags=["alerts"], responses=PROBLEM_RESPONSES)


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """The payload's JSON schema with its ``$defs`` inlined: an ``openapi_extra`` body cannot register components."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


_PAYLOAD_SCHEMA = _inlined(WebhookPayload.model_json_schema(by_alias=True))


@router.post(
    WEBHOOK_PATH.removeprefix("/api/v1"),
    summary="Alertmanager webhook: firing drift alerts trigger a retrain",
    description="Authenticated with the webhook token (Authorization: Bearer), not a user's API token. Each alert "
    "is recorded with the retraining policy's decision: a firing DatasetDriftDetected, FeatureDriftDetected or "
    "ModelQualityDropped alert with a known `model` label triggers the model's training DAG unless it is a "
    "duplicate (same fingerprint and startsAt), the model is in cooldown or a retrain is in flight. When Airflow is "
    "down the trigger is kept pending and retried with backoff.",
    responses=problem_responses(413),
    dependencies=[Depends(webhook_caller)],
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _PAYLOAD_SCHEMA}}}},
)
async def alertmanager_webhook(request: Request, services: Services) -> AlertsReceivedOut:
    """The body is read and validated here, not by FastAPI: a malformed one is a 400, not FastAPI's 422; one past
    MAX_BODY_BYTES is refused from its Content-Length or as it streams in, never held whole."""
    try:
        body = await bodies.read_capped(request.stream(), request.headers.get("content-length"), MAX_BODY_BYTES)
    except bodies.OversizedBodyError as error:
        raise Problem(413, str(error), slug="too-large") from None
    payload = _parse(body)
    # The policy talks to the DB and to Airflow (blocking calls): off the event loop.
    records = await run_in_threadpool(services.retrain_policy.handle, payload, client_address(request))
    return AlertsReceivedOut(received=len(records), retrains=[RetrainOut.model_validate(r) for r in records])


@router.get("/models/{name}/retrains", summary="Retrain triggers of a model (from drift alerts), newest first")
def list_retrains(
    name: NamePath,
    services: Services,
    _: Annotated[Principal, Depends(require("viewer"))],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[RetrainOut]:
    services.spec(name)
    return [RetrainOut.model_validate(record) for record in services.retrains.list(name, limit)]
