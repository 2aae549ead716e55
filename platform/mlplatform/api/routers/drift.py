"""Drift checks of a model: recorded results (newest first, paged) and each check's Evidently HTML report."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from mlplatform.api.problems import PROBLEM_RESPONSES
from mlplatform.operations.access import Principal, get_services, require
from mlplatform.operations.drift import report_html, report_url
from mlplatform.operations.schemas import MAX_ROW_ID
from mlplatform.operations.services import ApiServices
from mlplatform.specs import NAME_PATTERN
from mlplatform.store.drift import MAX_LIMIT, DriftCheck, DriftResults

router = APIRouter(prefix="/api/v1/models", tags=["drift"], responses=PROBLEM_RESPONSES)
NamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="Model name (as in its spec).")]
CheckPath = Annotated[int, Path(gt=0, le=2**62, description="Id of the drift check.")]
Services = Annotated[ApiServices, Depends(get_services)]
# The report is Evidently's own HTML with inline scripts: sandboxed, it runs as an opaque origin that cannot read
# the platform's cookies or call its API with the viewer's session.
REPORT_HEADERS = {"Content-Security-Policy": "sandbox allow-scripts", "X-Content-Type-Options": "nosniff"}


class FeatureDriftOut(BaseModel):
    feature: str
    method: str | None = Field(description="Evidently's drift method for this column (type and sample size).")
    threshold: float | None
    score: float | None = Field(description="Evidently's drift_score: a p-value or a distance, per method.")
    drifted: bool | None
    missing_count: int
    out_of_range_count: int = Field(description="Values outside the reference's [min, max].")
    reference_min: float | None
    reference_max: float | None


class DriftCheckOut(BaseModel):
    id: int
    model: str
    model_version: str = Field(description="Champion version whose training reference was compared.")
    reference_run_id: str
    status: Literal["no_drift", "drift", "insufficient_data"]
    window_start: datetime
    window_end: datetime
    rows: int = Field(description="Logged predictions in the window.")
    rows_compared: int = Field(description="Rows compared (a uniform sample when the window is larger).")
    min_rows: int
    reference_rows: int
    drift_share_threshold: float
    drift_share: float | None
    dataset_drift: bool | None
    prediction_method: str | None
    prediction_drift_score: float | None
    prediction_drifted: bool | None
    actor: str
    started_at: datetime
    finished_at: datetime
    report_url: str | None = Field(description="The HTML report, when one was written.")
    features: list[FeatureDriftOut]


_COMPUTED = ("report_url", "features")


def _check_out(check: DriftCheck) -> DriftCheckOut:
    assert check.id is not None  # read from the DB
    return DriftCheckOut.model_validate(
        {
            **{name: getattr(check, name) for name in DriftCheckOut.model_fields if name not in _COMPUTED},
            "report_url": report_url(check),
            "features": [FeatureDriftOut.model_validate(f, from_attributes=True) for f in check.features],
        }
    )


@router.get("/{name}/drift", summary="Drift checks of a model, newest first, with per-feature results")
def list_drift_checks(
    name: NamePath,
    services: Services,
    _: Annotated[Principal, Depends(require("viewer"))],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    before_id: Annotated[int | None, Query(gt=0, le=MAX_ROW_ID, description="Page: checks older than this id.")] = None,
) -> list[DriftCheckOut]:
    services.spec(name)
    checks = DriftResults(services.store).for_model(name, limit=limit, before_id=before_id)
    return [_check_out(check) for check in checks]


@router.get(
    "/{name}/drift/{check_id}/report",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}, "description": "Evidently's HTML report of the check."}},
    summary="The HTML report of one drift check",
)
def drift_report(
    name: NamePath, check_id: CheckPath, services: Services, _: Annotated[Principal, Depends(require("viewer"))]
) -> Response:
    services.spec(name)
    return Response(report_html(services, name, check_id), media_type="text/html", headers=REPORT_HEADERS)
