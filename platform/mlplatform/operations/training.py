"""Training runs: start the model's training DAG in Airflow (audited) and list its runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Request

from mlplatform.operations.access import Principal, record
from mlplatform.operations.problems import Problem
from mlplatform.operations.schemas import TrainRequest
from mlplatform.operations.services import ApiServices
from mlplatform.store.audit import RESULT_FAILED, RESULT_OK

if TYPE_CHECKING:
    from mlplatform.orchestration.airflow_client import DagRun


@contextmanager
def airflow_errors() -> Iterator[None]:
    """Airflow's own 404 stays a 404 and a DAG an operator paused is a 409; anything else it says (or its silence)
    is a 502/503 for our caller."""
    from mlplatform.orchestration.airflow_client import AirflowError, AirflowUnreachableError, DagPausedError

    try:
        yield
    except DagPausedError as error:
        raise Problem(409, str(error), slug="dag-paused", title="Training DAG paused") from None
    except AirflowUnreachableError:
        raise Problem(503, "Airflow is unreachable", slug="orchestrator-unavailable") from None
    except AirflowError as error:
        if error.status_code == 404:
            raise Problem(404, "no such training run or DAG in Airflow", slug="unknown-run") from None
        raise Problem(502, f"Airflow refused: {error.airflow_message or error}", slug="orchestrator-error") from None


def trigger_training(
    request: Request, services: ApiServices, principal: Principal, name: str, body: TrainRequest
) -> DagRun:
    """Start the model's training DAG with the caller's overrides; the run and its conf are audited.

    The overrides must be ones the spec lists as ``overridable``, within its bounds (a ``max_iter`` of 10**12 would
    hold the training slot for days); then the model is validated (spec, estimator, features, labels, a sample
    fit). A mistake is a 422 naming it, in seconds, instead of a failed or endless Airflow run.
    """
    spec = services.spec(name)
    problems = spec.override_problems(dict(body.estimator_params))
    if problems:
        refused = [f"{key}: {problem}" for key, problem in problems.items()]
        _record_trigger(request, principal, name, body, RESULT_FAILED, {"failures": refused})
        errors = [
            {"loc": ["body", "estimator_params", key], "msg": text} for key, text in zip(problems, refused, strict=True)
        ]
        raise Problem(
            422, "estimator_params: " + "; ".join(refused), slug="validation", title="Invalid request", errors=errors
        )
    report = services.validate_model(name)
    if not report.passed:
        _record_trigger(request, principal, name, body, RESULT_FAILED, {"failures": report.failures})
        raise Problem(
            422,
            f"{name} does not validate, so no training run was started: " + "; ".join(report.failures),
            slug="model-invalid",
            title="Model does not validate",
        )
    conf: dict[str, Any] = {
        "estimator_params": dict(body.estimator_params),
        "promote": body.promote,
        "reason": body.reason,
        "requested_by": principal.username,
    }
    if body.window_days is not None:
        conf["window_days"] = body.window_days
    try:
        with airflow_errors():
            run = services.orchestrator.trigger(spec.training_dag_id, conf)
    except Problem as problem:
        _record_trigger(request, principal, name, body, RESULT_FAILED, {"conf": conf, "error": problem.detail})
        raise
    _record_trigger(request, principal, name, body, RESULT_OK, {"conf": conf}, run_id=run.run_id)
    return run


def _record_trigger(
    request: Request,
    principal: Principal,
    name: str,
    body: TrainRequest,
    result: str,
    detail: dict[str, Any],
    run_id: str | None = None,
) -> None:
    """The audit event of one trigger attempt: refused, failed at Airflow, or started (with its run id)."""
    record(
        request,
        principal.username,
        "training.trigger",
        name,
        result,
        to_value=run_id,
        reason=body.reason,
        detail=detail,
    )


def training_runs(services: ApiServices, name: str, limit: int) -> list[DagRun]:
    spec = services.spec(name)
    with airflow_errors():
        return services.orchestrator.list_runs(spec.training_dag_id, limit)
