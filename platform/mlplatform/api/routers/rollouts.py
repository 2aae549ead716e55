"""Rollouts: a candidate version against the champion, shadowed or split, decided by the sequential test."""

from __future__ import annotations

from typing import Annotated

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


@router.post("/rollouts/{rollout_id}/pause", responses=CHANGE_PROBLEMS, summary="Champion only until resumed")
def pause_rollout(
    rollout_id: RolloutPath,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("rollout.pause", "data-scientist"))],
    body: RolloutActionRequest | None = None,
) -> RolloutOut:
    return rollouts.act(request, services, principal, rollout_id, "pause", body)


@router.post("/rollouts/{rollout_id}/resume", responses=CHANGE_PROBLEMS, summary="Route to the candidate again")
def resume_rollout(
    rollout_id: RolloutPath,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("rollout.resume", "data-scientist"))],
    body: RolloutActionRequest | None = None,
) -> RolloutOut:
    return rollouts.act(request, services, principal, rollout_id, "resume", body)


@router.post(
    "/rollouts/{rollout_id}/stop", responses=CHANGE_PROBLEMS, summary="End the rollout undecided; the champion stays"
)
def stop_rollout(
    rollout_id: RolloutPath,
    request: Request,
    services: Services,
    principal: Annotated[Principal, Depends(permit("rollout.stop", "data-scientist"))],
    body: RolloutActionRequest | None = None,
) -> RolloutOut:
    return rollouts.act(request, services, principal, rollout_id, "stop", body)


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
