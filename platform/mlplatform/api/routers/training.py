"""Training runs: trigger the model's DAG with overrides, list runs and their status (Airflow)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from mlplatform.api.deps import Principal, get_services, permit, record, require
from mlplatform.api.problems import PROBLEM_RESPONSES, Problem
from mlplatform.api.schemas import TrainingRunOut, TrainRequest
from mlplatform.api.services import ApiServices
from mlplatform.specs import NAME_PATTERN
from mlplatform.store.audit import RESULT_FAILED, RESULT_OK

if TYPE_CHECKING:
    pass

router = APIRouter(prefix="/api/v1/models", tags=["training"], responses=PROBLEM_RESPONSES)
NamePath = Annotated[str, Path(pattern=NAME_PATTERN)]
RunIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:+\-]{1,250}$")]
Services = Annotated[ApiServices, Depends(get_services)]


@contextmanager
def airflow_errors() -> Iterator[None]:
    """Airflow's own 404 stays a 404; anything else it says (or its silence) is a 502/503 for our caller."""
    from mlplatform.orchestration.airflow_client import AirflowError, AirflowUnreachableError

    try:
        yield
    except AirflowUnreachableError:
        raise Problem(503, "Airflow is unreachable", slug="orchestrator-unavailable") from None
    except AirflowError as error:
        if error.status_code == 404:
            raise Problem(404, "no such training run or DAG in Airflow", slug="unknown-run") from None
        raise Problem(502, f"Airflow refused: {error.airflow_message or error}", slug="orchestrator-error") from None


@router.post("/{name}/training-runs", status_code=202, summary="Trigger training with parameter overrides")
def trigger_training(
    name: NamePath,
    body: TrainRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("training.trigger", "data-scientist"))],
) -> TrainingRunOut:
    spec = services.spec(name)
    conf: dict[str, Any] = {
        "estimator_params": dict(body.estimator_params),
        "reason": body.reason,
        "requested_by": principal.username,
    }
    if body.window_days is not None:
        conf["window_days"] = body.window_days
    try:
        with airflow_errors():
            run = services.orchestrator.trigger(spec.training_dag_id, conf)
    except Problem as problem:
        record(
            request,
            principal.username,
            "training.trigger",
            name,
            RESULT_FAILED,
            reason=body.reason,
            detail={"conf": conf, "error": problem.detail},
        )
        raise
    record(
        request,
        principal.username,
        "training.trigger",
        name,
        RESULT_OK,
        to_value=run.run_id,
        reason=body.reason,
        detail={"conf": conf},
    )
    return TrainingRunOut.model_validate(run)


@router.get("/{name}/training-runs", summary="Recent training runs with status")
def list_training_runs(
    name: NamePath,
    services: Services,
    _: Annotated[Principal, Depends(require("viewer"))],
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> list[TrainingRunOut]:
    spec = services.spec(name)
    with airflow_errors():
        return [
            TrainingRunOut.model_validate(run) for run in services.orchestrator.list_runs(spec.training_dag_id, limit)
        ]


@router.get("/{name}/training-runs/{run_id}", summary="One training run's status")
def get_training_run(
    name: NamePath, run_id: RunIdPath, services: Services, _: Annotated[Principal, Depends(require("viewer"))]
) -> TrainingRunOut:
    spec = services.spec(name)
    with airflow_errors():
        return TrainingRunOut.model_validate(services.orchestrator.get_run(spec.training_dag_id, run_id))
