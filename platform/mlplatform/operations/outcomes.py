"""Late labels from the API and the CLI: ingest them (validated, deduplicated, audited), then measure the online
quality they make possible; read the latest quality."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, StringConstraints

from mlplatform.operations.access import Principal, record
from mlplatform.operations.problems import Problem
from mlplatform.operations.services import ApiServices
from mlplatform.store.audit import RESULT_OK
from mlplatform.store.outcomes import ConcurrentIngestError, OutcomeRecords

log = logging.getLogger(__name__)

MAX_LABELS_PER_REQUEST = 5_000
"""Rows of one API call (within the API's body limit); the CLI sends a file in batches of this size."""
LabelValue = StrictStr | StrictInt | Annotated[float, Field(strict=True, allow_inf_nan=False)] | None
LabelRow = Annotated[dict[Annotated[str, StringConstraints(max_length=64)], LabelValue], Field(max_length=8)]


class LabelsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: list[LabelRow] = Field(
        min_length=1,
        max_length=MAX_LABELS_PER_REQUEST,
        description="Rows with the model's entity key, its label column, and a request_id or the event time "
        "(the spec's label.timestamp_column, ISO 8601).",
    )
    source: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
        None, description="Where the labels come from (a file name, a system); kept with each label."
    )
    measure_quality: bool = Field(
        True,
        description="Measure the online quality after storing (it reads the quality window of the prediction log): "
        "a client sending a file in several requests asks for it with the last one only.",
    )


class IngestOut(BaseModel):
    model: str
    inserted: int
    duplicates: int
    conflicts: list[str] = Field(description="Labels that contradict stored ones: reported, not applied.")
    joined: dict[str, int] = Field(description="Labels of the quality window: matched, unknown, before_prediction.")
    quality: list[dict[str, Any]] = Field(description="Online quality per version and arm after this ingest.")


class QualityOut(BaseModel):
    model_version: str
    arm: str
    labelled: int
    metrics: dict[str, Any]
    window_start: str
    window_end: str
    computed_at: str


def ingest(request: Request, services: ApiServices, principal: Principal, name: str, body: LabelsRequest) -> IngestOut:
    """Store the labels once each, then measure the quality; a bad row refuses the whole request (422 naming it)."""
    import pandas as pd  # the API's other routes start without it

    from mlplatform.monitoring.outcomes import LabelError, normalise_labels

    spec = services.spec(name)
    source = body.source or f"api:{principal.username}"
    try:
        labels = normalise_labels(pd.DataFrame(body.labels), spec, "labels")
        stored = OutcomeRecords(services.store).add(name, labels, source)
    except LabelError as error:
        raise Problem(422, str(error), slug="invalid-labels", title="Invalid labels") from None
    except ConcurrentIngestError as error:
        raise Problem(409, str(error), slug="concurrent-ingest", title="Concurrent ingest") from None
    from mlplatform.monitoring.quality import refresh_quality

    quality, counts = refresh_quality(services.settings, services.store, spec) if body.measure_quality else ([], {})
    detail = {"inserted": stored.inserted, "duplicates": stored.duplicates, "conflicts": len(stored.conflicts)}
    record(request, principal.username, "outcomes.ingest", name, RESULT_OK, reason=source, detail=detail)
    return IngestOut(
        model=name,
        inserted=stored.inserted,
        duplicates=stored.duplicates,
        conflicts=stored.conflicts[:100],
        joined=counts,
        quality=quality,
    )


def latest_quality(services: ApiServices, name: str) -> list[QualityOut]:
    services.spec(name)
    return [
        QualityOut(
            model_version=item.version,
            arm=item.arm,
            labelled=item.labelled,
            metrics=item.metrics,
            window_start=item.window_start.isoformat(),
            window_end=item.window_end.isoformat(),
            computed_at=item.computed_at.isoformat(),
        )
        for item in OutcomeRecords(services.store).latest_quality(name)
    ]
