"""Training runs: trigger the model's DAG with overrides, list runs and their status (Airflow)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from mlplatform.api.problems import PROBLEM_RESPONSES, problem_responses
from mlplatform.operations import training
from mlplatform.operations.access import Principal, get_services, permit, require
from mlplatform.operations.schemas import TrainingRunOut, TrainRequest
from mlplatform.operations.services import ApiServices
from mlplatform.operations.training import airflow_errors
from mlplatform.specs import NAME_PATTERN

router = APIRouter(prefix="/api/v1/models", tags=["training"], responses=PROBLEM_RESPONSES)
NamePath = Annotated[str, Path(pattern=NAME_PATTERN)]
RunIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:+\-]{1,250}$")]
Services = Annotated[ApiServices, Depends(get_services)]
AIRFLOW_PROBLEMS = problem_responses(502, 503)  # Airflow refused, or did not answer


@router.post(
    "/{name}/training-runs",
    status_code=202,
    responses=AIRFLOW_PROBLEMS,
    summary="Trigger training with parameter overrides",
)
def trigger_training(
    name: NamePath,
    body: TrainRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("training.trigger", "data-scientist"))],
) -> TrainingRunOut:
    return TrainingRunOut.model_validate(training.trigger_training(request, services, principal, name, body))


@router.get("/{name}/training-runs", responses=AIRFLOW_PROBLEMS, summary="Recent training runs with status")
def list_training_runs(
    name: NamePath,
    services: Services,
    _: Annotated[Principal, Depends(require("viewer"))],
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> list[TrainingRunOut]:
    return [TrainingRunOut.model_validate(run) for run in training.training_runs(services, name, limit)]


@router.get("/{name}/training-runs/{run_id}", responses=AIRFLOW_PROBLEMS, summary="One training run's status")
def get_training_run(
    name: NamePath, run_id: RunIdPath, services: Services, _: Annotated[Principal, Depends(require("viewer"))]
) -> TrainingRunOut:
    spec = services.spec(name)
    with airflow_errors():
        return TrainingRunOut.model_validate(services.orchestrator.get_run(spec.training_dag_id, run_id))
