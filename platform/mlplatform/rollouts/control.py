"""Starting, pausing, resuming, stopping and deciding a rollout: the one place that changes a rollout, so a person at
the API, CLI or UI and the evaluator acting on its own do it the same way, with the same audit events.

Every change is made in the platform DB and published to the model servers as the registry's traffic plan
(``mlplatform.registry.traffic``).  Ends publish first (the candidate leaves the traffic at the servers' next poll,
even if the DB write then fails); a start records first (a plan is never published for a rollout the DB does not
know).  A promotion moves ``champion`` to the candidate through the spec's gate, like a promotion by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from mlplatform.registry.traffic import TrafficPlan
from mlplatform.store.audit import RESULT_GATE_REFUSED, RESULT_OK
from mlplatform.store.rollouts import (
    AWAITING_DECISION,
    PAUSED,
    PROMOTED,
    ROLLED_BACK,
    RUNNING,
    STOPPED,
    Rollout,
    RolloutConflictError,
    RolloutRecords,
)
from mlplatform.training.gate import champion_metrics_for, decide

if TYPE_CHECKING:
    from mlplatform.registry.mlflow_registry import VersionInfo
    from mlplatform.specs import ModelSpec, RolloutSpec
    from mlplatform.store.audit import AuditEvent, AuditLog
    from mlplatform.store.db import AliasEvent

log = logging.getLogger(__name__)

CHAMPION = "champion"
EVALUATOR = "rollout-evaluator"
"""The actor of the evaluator's own decisions in the audit log."""


class RolloutRegistry(Protocol):
    """What rollouts need of the model registry (``ModelRegistry`` provides it)."""

    def versions(self, name: str) -> list[VersionInfo]: ...

    def alias_holder(self, name: str, alias: str) -> VersionInfo | None: ...

    def move_alias(self, name: str, alias: str, version: str, *, actor: str, reason: str) -> AliasEvent | None: ...

    def publish_traffic_plan(self, name: str, plan: TrafficPlan | None) -> None: ...


class RolloutError(ValueError):
    """A rollout that cannot be started or decided as asked (no champion, an unknown candidate, the gate refuses);
    the message says why and what to do."""


class GateRefusedError(RolloutError):
    """The spec's promotion gate refuses the candidate: the rollout waits for a person."""


def overlay(policy: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``policy`` with ``overrides`` laid over it; a section (``guardrails``) is overridden field by field."""
    merged = dict(policy)
    for key, value in overrides.items():
        section = merged.get(key)
        merged[key] = {**section, **value} if isinstance(value, Mapping) and isinstance(section, Mapping) else value
    return merged


def _policy(spec: ModelSpec, overrides: Mapping[str, Any]) -> RolloutSpec:
    """The spec's rollout policy with this rollout's overrides, validated as a whole (a bad value or an unknown
    field is refused, naming it)."""
    from pydantic import ValidationError

    from mlplatform.specs import RolloutSpec

    try:
        return RolloutSpec.model_validate(overlay(spec.rollout.model_dump(), overrides))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'policy'}: {e['msg']}" for e in error.errors())
        raise RolloutError(f"rollout policy of {spec.name}: {problems}") from None


def plan_of(rollout: Rollout) -> TrafficPlan | None:
    """What servers follow for this rollout (``None`` once it has ended)."""
    if not rollout.open:
        return None
    paused = rollout.state == PAUSED
    return TrafficPlan(rollout.id, rollout.candidate_version, rollout.mode, rollout.share, paused=paused)  # type: ignore[arg-type]


class RolloutControl:
    """Changes rollouts: DB, traffic plan and audit log together."""

    def __init__(
        self,
        records: RolloutRecords,
        registry: RolloutRegistry,
        audit: AuditLog,
        counted: Callable[[AuditEvent], None] | None = None,
    ) -> None:
        self.records = records
        self.registry = registry
        self.audit = audit
        self._counted = counted or (lambda event: None)

    def start(
        self,
        spec: ModelSpec,
        candidate: str,
        *,
        actor: str,
        client: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        reason: str = "",
    ) -> Rollout:
        """Roll ``candidate`` (a version number or an alias such as ``challenger``) out against the champion under
        the spec's policy, with ``overrides`` of its fields for this rollout (e.g. ``mode``, ``share``), validated
        like the spec itself (``RolloutError`` names a bad one)."""
        version = self._candidate_version(spec.name, candidate)
        champion = self.registry.alias_holder(spec.name, CHAMPION)
        if champion is None:
            raise RolloutError(f"{spec.name} has no champion to roll {candidate} out against: promote a version first")
        if champion.version == version:
            raise RolloutError(f"version {version} is already the champion of {spec.name}")
        policy = _policy(spec, overrides or {})
        rollout = self.records.start(
            model=spec.name,
            candidate_version=version,
            champion_version=champion.version,
            mode=policy.mode,
            share=policy.share,
            policy={**policy.model_dump(mode="json"), "metric": spec.rollout_metric, "task": spec.task},
            actor=actor,
        )
        try:
            self.registry.publish_traffic_plan(spec.name, plan_of(rollout))
        except Exception as error:
            self.records.end(rollout.id, state=STOPPED, decision="stop", reason=f"not published: {error}", actor=actor)
            raise
        self._audit(
            actor,
            "rollout.start",
            rollout,
            client,
            reason=reason or f"{policy.mode} rollout",
            detail=policy.model_dump(mode="json"),
        )
        return rollout

    def pause(self, rollout_id: int, *, actor: str, client: str | None = None, reason: str = "") -> Rollout:
        """The champion answers everything again; the rollout keeps its data and can resume."""
        rollout = self.records.change(rollout_id, expected=(RUNNING,), state=PAUSED)
        self.registry.publish_traffic_plan(rollout.model, plan_of(rollout))
        self._audit(actor, "rollout.pause", rollout, client, reason=reason)
        return rollout

    def resume(self, rollout_id: int, *, actor: str, client: str | None = None, reason: str = "") -> Rollout:
        rollout = self.records.change(rollout_id, expected=(PAUSED,), state=RUNNING)
        self.registry.publish_traffic_plan(rollout.model, plan_of(rollout))
        self._audit(actor, "rollout.resume", rollout, client, reason=reason)
        return rollout

    def split(self, rollout: Rollout, *, actor: str, reason: str) -> Rollout:
        """A shadow rollout becomes a split of its policy's share (``split_after``)."""
        changed = self.records.change(rollout.id, expected=(RUNNING,), mode="split")
        self.registry.publish_traffic_plan(changed.model, plan_of(changed))
        self._audit(actor, "rollout.split", changed, None, reason=reason, from_value="shadow", to_value="split")
        return changed

    def await_decision(self, rollout: Rollout, recommendation: str, reason: str) -> Rollout:
        """The test has spoken (manual decisions) or the rollout ran out of time: a person decides; traffic stays as
        it is meanwhile."""
        changed = self.records.change(
            rollout.id,
            expected=(RUNNING, AWAITING_DECISION),
            state=AWAITING_DECISION,
            recommendation=recommendation[:32],
        )
        if rollout.state != AWAITING_DECISION:
            self._audit(EVALUATOR, "rollout.await_decision", changed, None, reason=reason, to_value=recommendation)
        return changed

    def stop(self, rollout_id: int, *, actor: str, client: str | None = None, reason: str = "") -> Rollout:
        """End the rollout with no decision: the candidate leaves the traffic, the champion stays."""
        return self._withdraw(rollout_id, STOPPED, "stop", actor, reason or "stopped", client, {})

    def rollback(
        self,
        rollout_id: int,
        *,
        actor: str,
        reason: str,
        evidence: dict[str, Any] | None = None,
        client: str | None = None,
    ) -> Rollout:
        """The candidate leaves the traffic, with the evidence in the audit log; the champion stays."""
        return self._withdraw(rollout_id, ROLLED_BACK, "rollback", actor, reason, client, evidence or {})

    def _withdraw(
        self,
        rollout_id: int,
        state: str,
        decision: str,
        actor: str,
        reason: str,
        client: str | None,
        evidence: dict[str, Any],
    ) -> Rollout:
        """The candidate out of the traffic first (servers follow at their next poll), then the rollout ended."""
        rollout = self._open(rollout_id)
        self.registry.publish_traffic_plan(rollout.model, None)
        ended = self.records.end(rollout.id, state=state, decision=decision, reason=reason, actor=actor)
        self._audit(actor, f"rollout.{decision}", ended, client, reason=reason, detail=evidence)
        return ended

    def promote(
        self,
        spec: ModelSpec,
        rollout_id: int,
        *,
        actor: str,
        reason: str,
        evidence: dict[str, Any] | None = None,
        client: str | None = None,
    ) -> Rollout:
        """Move ``champion`` to the candidate through the spec's gate, then end the rollout; a refusal by the gate
        is audited and raised (``GateRefusedError``), the rollout left open for a person."""
        rollout = self._open(rollout_id)
        versions = self.registry.versions(spec.name)
        candidate = next((info for info in versions if info.version == rollout.candidate_version), None)
        champion = self.registry.alias_holder(spec.name, CHAMPION)
        if candidate is None:
            raise RolloutError(f"version {rollout.candidate_version} of {spec.name} is no longer in the registry")
        metrics, _ = champion_metrics_for(spec, candidate, champion, versions) if champion else ({}, "")
        gate = decide(
            spec.gates, spec.primary_metric, candidate.metrics, metrics or None, champion.version if champion else None
        )
        detail = {**(evidence or {}), "gate": gate.reasons}
        if not gate.passed:
            self._audit(
                actor,
                "rollout.promote",
                rollout,
                client,
                result=RESULT_GATE_REFUSED,
                reason=gate.summary,
                detail=detail,
            )
            raise GateRefusedError(f"the promotion gate refuses version {rollout.candidate_version}: {gate.summary}")
        self.registry.move_alias(
            spec.name, CHAMPION, rollout.candidate_version, actor=actor, reason=f"rollout {rollout.id}: {reason}"
        )
        self.registry.publish_traffic_plan(spec.name, None)
        ended = self.records.end(rollout.id, state=PROMOTED, decision="promote", reason=reason, actor=actor)
        self._audit(actor, "rollout.promote", ended, client, reason=reason, detail=detail)
        return ended

    def _open(self, rollout_id: int) -> Rollout:
        rollout = self.records.get(rollout_id)
        if rollout is None:
            raise LookupError(f"no rollout {rollout_id}")
        if not rollout.open:
            raise RolloutConflictError(f"rollout {rollout_id} has ended ({rollout.state})")
        return rollout

    def _candidate_version(self, name: str, candidate: str) -> str:
        if candidate.isdigit():
            if not any(info.version == candidate for info in self.registry.versions(name)):
                raise RolloutError(f"{name} has no version {candidate}")
            return candidate
        holder = self.registry.alias_holder(name, candidate)
        if holder is None:
            raise RolloutError(f"no version of {name} holds the alias {candidate!r}")
        return holder.version

    def _audit(
        self,
        actor: str,
        action: str,
        rollout: Rollout,
        client: str | None,
        *,
        result: str = RESULT_OK,
        reason: str = "",
        from_value: str | None = None,
        to_value: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        event = self.audit.record(
            actor=actor,
            action=action,
            target=f"{rollout.model}/rollout/{rollout.id}",
            result=result,
            reason=reason,
            from_value=from_value or f"v{rollout.champion_version}",
            to_value=to_value or f"v{rollout.candidate_version}",
            client=client,
            detail={"rollout": rollout.id, "state": rollout.state, **(detail or {})},
        )
        self._counted(event)
