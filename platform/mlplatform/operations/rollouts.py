"""Rollouts from the API, the CLI and the UI: start one, pause, resume or stop it, decide it, read it with its
evaluations; each change audited by ``RolloutControl``, each refusal answered with what to do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mlplatform.operations.access import Principal, client_address
from mlplatform.operations.problems import Problem
from mlplatform.operations.promotion import registry_errors
from mlplatform.operations.schemas import Reason
from mlplatform.operations.services import ApiServices
from mlplatform.rollouts.control import GateRefusedError, RolloutError
from mlplatform.store.rollouts import Rollout, RolloutConflictError, RolloutEvaluation

Candidate = Annotated[str, StringConstraints(pattern=r"^([1-9][0-9]{0,8}|[a-z][a-z0-9_-]{0,31})$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRolloutRequest(_Body):
    candidate: Candidate = Field("challenger", description="A version number, or an alias (default: challenger).")
    mode: Literal["shadow", "split"] | None = Field(None, description="Default: the spec's rollout.mode.")
    share: float | None = Field(None, gt=0.0, le=0.5, description="split: the candidate's share. Default: the spec's.")
    reason: Reason | None = None


class RolloutActionRequest(_Body):
    reason: Reason | None = None


class DecideRequest(_Body):
    decision: Literal["promote", "rollback"]
    reason: Reason


class RolloutOut(BaseModel):
    """A rollout, as the API answers it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    model: str
    candidate_version: str
    champion_version: str
    mode: str
    share: float
    state: str
    policy: dict[str, Any]
    started_by: str
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    decision: str | None
    decision_reason: str | None
    decided_by: str | None
    recommendation: str | None
    next_evaluation_at: datetime


class EvaluationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    evaluated_at: datetime
    champion_samples: int
    candidate_samples: int
    estimate: float | None
    lower: float | None
    upper: float | None
    verdict: str
    reason: str
    detail: dict[str, Any]


class RolloutDetailOut(RolloutOut):
    evaluations: list[EvaluationOut] = Field(description="Oldest first; the last is the current reading.")


def rollout_out(rollout: Rollout) -> RolloutOut:
    return RolloutOut.model_validate(rollout)


def detail_out(rollout: Rollout, evaluations: list[RolloutEvaluation]) -> RolloutDetailOut:
    return RolloutDetailOut(
        **rollout_out(rollout).model_dump(), evaluations=[EvaluationOut.model_validate(asdict(e)) for e in evaluations]
    )


@contextmanager
def rollout_problems(name: str) -> Iterator[None]:
    """Refusals as problems: conflicts 409, impossible requests 422, unknown rollouts 404, registry outages 503."""
    try:
        with registry_errors(name):
            yield
    except GateRefusedError as error:
        raise Problem(409, str(error), slug="gate-refused", title="Refused by the promotion gate") from None
    except RolloutConflictError as error:
        raise Problem(409, str(error), slug="rollout-conflict", title="Rollout conflict") from None
    except RolloutError as error:
        raise Problem(422, str(error), slug="rollout-refused", title="Rollout refused") from None


def _find(services: ApiServices, rollout_id: int) -> Rollout:
    rollout = services.rollout_records.get(rollout_id)
    if rollout is None:
        raise Problem(404, f"no rollout {rollout_id}", slug="unknown-rollout", title="Unknown rollout")
    return rollout


def list_rollouts(services: ApiServices, name: str, limit: int) -> list[RolloutOut]:
    services.spec(name)
    return [rollout_out(rollout) for rollout in services.rollout_records.recent(name, limit)]


def get_rollout(services: ApiServices, rollout_id: int) -> RolloutDetailOut:
    rollout = _find(services, rollout_id)
    return detail_out(rollout, services.rollout_records.evaluations(rollout.id))


def start(
    request: Request, services: ApiServices, principal: Principal, name: str, body: StartRolloutRequest
) -> RolloutOut:
    spec = services.spec(name)
    with rollout_problems(name):
        rollout = services.rollout_control.start(
            spec,
            body.candidate,
            actor=principal.username,
            client=client_address(request),
            overrides={key: value for key, value in (("mode", body.mode), ("share", body.share)) if value is not None},
            reason=body.reason or "",
        )
    return rollout_out(rollout)


def act(
    request: Request,
    services: ApiServices,
    principal: Principal,
    rollout_id: int,
    action: Literal["pause", "resume", "stop"],
    body: RolloutActionRequest | None,
) -> RolloutOut:
    """Pause, resume or stop a rollout (the candidate leaves the traffic while paused and once stopped)."""
    rollout = _find(services, rollout_id)
    control = services.rollout_control
    change = {"pause": control.pause, "resume": control.resume, "stop": control.stop}[action]
    reason = body.reason if body and body.reason else f"{action} via API"
    with rollout_problems(rollout.model):
        changed = change(rollout.id, actor=principal.username, client=client_address(request), reason=reason)
    return rollout_out(changed)


def decide(
    request: Request, services: ApiServices, principal: Principal, rollout_id: int, body: DecideRequest
) -> RolloutOut:
    """A person's decision: promote the candidate (through the gate) or roll it back, with the latest evidence."""
    rollout = _find(services, rollout_id)
    evaluations = services.rollout_records.evaluations(rollout.id, limit=1)
    evidence = {"latest_evaluation": evaluations[-1].detail if evaluations else None, "decided_by": "person"}
    control = services.rollout_control
    with rollout_problems(rollout.model):
        if body.decision == "promote":
            changed = control.promote(
                services.spec(rollout.model),
                rollout.id,
                actor=principal.username,
                reason=body.reason,
                evidence=evidence,
                client=client_address(request),
            )
        else:
            changed = control.rollback(
                rollout.id,
                actor=principal.username,
                reason=body.reason,
                evidence=evidence,
                client=client_address(request),
            )
    return rollout_out(changed)


def evaluate_now(services: ApiServices, rollout_id: int) -> RolloutDetailOut:
    """Evaluate (and act on) a rollout now rather than at its next interval."""
    rollout = _find(services, rollout_id)
    with rollout_problems(rollout.model):
        services.rollout_evaluator.evaluate(rollout.id)
    return get_rollout(services, rollout_id)
