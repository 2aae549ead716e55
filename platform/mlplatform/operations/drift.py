"""Drift checks on demand, and where the API serves a check's report."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastapi import Request

from mlplatform.operations.access import Principal, record
from mlplatform.operations.problems import Problem
from mlplatform.operations.services import ApiServices
from mlplatform.store.audit import RESULT_FAILED, RESULT_OK

if TYPE_CHECKING:
    from mlplatform.store.drift import DriftCheck

log = logging.getLogger(__name__)


def check_drift(request: Request, services: ApiServices, principal: Principal, name: str) -> DriftCheck:
    """Run the model's drift check now: the same ``run_drift_check`` as the CLI and the monitoring DAG, audited.

    A window with too few rows is a result (``insufficient_data``), not a refusal; no champion is a 409.
    """
    from mlplatform.monitoring import drift_check
    from mlplatform.registry.mlflow_registry import RegistryUnavailableError

    services.spec(name)
    actor = principal.username
    try:
        check = drift_check.run_drift_check(services.settings, name, actor=actor, store=services.store)
    except drift_check.DriftCheckError as error:
        record(request, actor, "drift.check", name, RESULT_FAILED, detail={"error": str(error)})
        raise Problem(409, str(error), slug="drift-check-impossible", title="Drift check impossible") from None
    except RegistryUnavailableError as error:
        record(request, actor, "drift.check", name, RESULT_FAILED, detail={"error": str(error)})
        raise Problem(503, str(error), slug="registry-unavailable", title="Model registry unavailable") from None
    except Exception as error:  # the prediction log or Evidently failed: say so, details in the server log
        log.exception("drift check of %s failed", name)
        record(request, actor, "drift.check", name, RESULT_FAILED, detail={"error": type(error).__name__})
        raise Problem(500, "the drift check failed; see the API server log", slug="drift-check-failed") from None
    detail = {"check_id": check.id, "rows": check.rows, "drift_share": check.drift_share}
    record(request, actor, "drift.check", name, RESULT_OK, to_value=check.status, detail=detail)
    return check


def report_html(services: ApiServices, name: str, check_id: int) -> bytes:
    """A check's HTML report, read through the report store the settings name (the one the checks write to)."""
    from mlplatform.monitoring.reports import open_report_store
    from mlplatform.registry.mlflow_registry import RegistryUnavailableError
    from mlplatform.store.drift import DriftResults

    check = DriftResults(services.store).get(name, check_id)
    if check is None or check.id is None:
        raise Problem(404, f"{name} has no drift check {check_id}", slug="unknown-drift-check", title="Not found")
    try:
        report = open_report_store(services.settings).get(check) if check.has_report else None
    except RegistryUnavailableError as error:
        raise Problem(503, str(error), slug="registry-unavailable", title="Model registry unavailable") from None
    if report is None:
        raise Problem(404, f"drift check {check_id} of {name} has no report", slug="no-drift-report", title="Not found")
    return report


def report_url(check: DriftCheck) -> str | None:
    """The API's report endpoint (served with a sandboxing CSP), when the check wrote a report."""
    if not check.has_report or check.id is None:
        return None
    return f"/api/v1/models/{check.model}/drift/{check.id}/report"
