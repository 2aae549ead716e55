"""The audit log, newest first, filterable."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from mlplatform.api.problems import PROBLEM_RESPONSES
from mlplatform.operations.access import Principal, get_services, require
from mlplatform.operations.schemas import MAX_ROW_ID, AuditEventOut
from mlplatform.operations.services import ApiServices

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=PROBLEM_RESPONSES)


@router.get("", summary="Audit events, newest first")
def list_audit_events(
    services: Annotated[ApiServices, Depends(get_services)],
    _: Annotated[Principal, Depends(require("viewer"))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(gt=0, le=MAX_ROW_ID, description="Page: events older than this id.")] = None,
    actor: Annotated[str | None, Query(max_length=128)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    target: Annotated[str | None, Query(max_length=255, description="A model (with its versions) or user.")] = None,
    result: Annotated[str | None, Query(max_length=32)] = None,
) -> list[AuditEventOut]:
    events = services.audit.query(
        limit=limit, actor=actor, action=action, target=target, result=result, before_id=before_id
    )
    return [AuditEventOut.model_validate(event) for event in events]
