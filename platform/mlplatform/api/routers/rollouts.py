"""Rollouts: a candidate version against the champion, shadowed or split, decided by the sequential test."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from mlplatform.api.problems import PROBLEM_RESPONSES, problem_responses
from mlplatform.operations import rollouts
from mlplatform.operations.access import Principal, get_services, permit, require
from mlplatform.operations.rollouts import (
    DecideRequest,
    RolloutActionRequest,
    RolloutDetailOut,
    RolloutOut,
    StartRolloutRequest,
)
from mlplatform.operations.services import ApiServices
from mlplatform.specs import NAME_PATTERN

router = APIRouter(prefix="/api/v1", tags=["rollouts"], responses=PROBLEM_RESPONSES)
NamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="Model name (as in its spec).")]
RolloutPath = Annotated[int, Path(gt=0, le=2**31 - 1, description="Rollout id.")]
Services = Annotated[ApiServices, Depends(get_services)]
CHANGE_PROBLEMS = problem_responses(404, 409, 422, 503)


@router.get("/models/{name}/rollouts", summary="A model's rollouts, newest first")
def list_rollouts(
    name: NamePath,
    services: Services,
    _: Annotated[Principal, Depends(require("viewer"))],
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> list[RolloutOut]:
    return rollouts.list_rollouts(services, name, limit)


@router.post(
    "/models/{name}/rollouts",
    status_code=201,
    responses=CHANGE_PROBLEMS,
    summary="Start a shadow or split rollout of a candidate (default: the challenger) against the champion",
)
def start_rollout(
    name: NamePath,
    body: StartRolloutRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("rollout.start", "data-scientist"))],
) -> RolloutOut:
    return rollouts.start(request, services, principal, name, body)


@router.get("/rollouts/{rollout_id}", responses=problem_responses(404), summary="A rollout with its evaluations")
def get_rollout(
    rollout_id: RolloutPath, services: Services, _: Annotated[Principal, Depends(require("viewer"))]
) -> RolloutDetailOut:
    return rollouts.get_rollout(services, rollout_id)


@router.post(
    "/rollouts/{rollout_id}/decide",
    responses=CHANGE_PROBLEMS,
    summary="Promote the candidate (through the gate) or roll it back: a person's decision",
)
def decide_rollout(
    rollout_id: RolloutPath,
    body: DecideRequest,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("rollout.decide", "approver"))],
) -> RolloutOut:
    return rollouts.decide(request, services, principal, rollout_id, body)


@router.post(
    "/rollouts/{rollout_id}/evaluate",
    responses=CHANGE_PROBLEMS,
    summary="Evaluate the rollout now (and act on the verdict as the policy says) instead of at its next interval",
)
def evaluate_rollout(
    rollout_id: RolloutPath,
    services: Services,
    _: Annotated[Principal, Depends(permit("rollout.evaluate", "data-scientist"))],
) -> RolloutDetailOut:
    return rollouts.evaluate_now(services, rollout_id)


@router.post(
    "/rollouts/{rollout_id}/{action}",
    responses=CHANGE_PROBLEMS,
    summary="pause (the champion answers everything), resume, or stop (end undecided; the champion stays)",
)
def change_rollout(
    rollout_id: RolloutPath,
    action: Annotated[Literal["pause", "resume", "stop"], Path(description="What to do with the rollout.")],
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("rollout.change", "data-scientist"))],
    body: RolloutActionRequest | None = None,
) -> RolloutOut:
    return rollouts.act(request, services, principal, rollout_id, action, body)
