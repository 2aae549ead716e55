"""The rollout evaluator: one process of the platform reads the prediction log and the labels, checks the
guardrails, runs the sequential test and acts on its verdict; model servers only follow the traffic plan.

``assess`` is the judgement, a pure function of the rollout, its policy, its logged predictions and the labels
(tested by simulation and by hand); ``RolloutEvaluator`` reads, records each assessment as an evaluation (the page
draws them) and acts through ``RolloutControl``:

* a breached guardrail rolls the candidate back at once, in every decision mode;
* the test's promote or rollback is carried out when the policy says ``auto`` (a promotion still passes the spec's
  gate), else the rollout waits for a person with the test's recommendation;
* undecided by ``max_duration`` (or, in shadow without labels, with guardrails held to the end): a person decides;
* a shadow rollout with ``split_after`` becomes a split once guardrails have held that long.

The test's design follows the mode: a pure shadow rollout pairs the two arms' losses on the same labelled entity
(``paired``, the stronger test); a split, or a shadow that will split, compares the arms as independent samples
from the start (valid throughout, since one test runs the whole rollout).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from mlplatform.predictions.records import CANDIDATE_ARM, CHAMPION_ARM
from mlplatform.rollouts.control import EVALUATOR, GateRefusedError, RolloutControl
from mlplatform.rollouts.guardrails import GuardrailCheck, check_guardrails
from mlplatform.rollouts.sequential import (
    ArmSummary,
    Evaluation,
    TestPlan,
    absolute_error_per_outcome,
    brier_per_outcome,
    evaluate_independent,
    evaluate_paired,
    log_loss_per_outcome,
)
from mlplatform.specs import RolloutSpec
from mlplatform.store.rollouts import AWAITING_DECISION, RUNNING, Rollout, RolloutEvaluation, RolloutRecords

if TYPE_CHECKING:
    import pandas as pd

    from mlplatform.specs import ModelSpec

log = logging.getLogger(__name__)

BREACH = "breach"
NO_OUTCOMES = "no_outcomes"
POLICY_EXTRAS = ("metric", "task")
"""Keys a rollout's stored policy adds to the spec's ``rollout`` section (the metric and task it was started with)."""


@dataclass(frozen=True)
class ArmView:
    """One arm as the page shows it: its traffic and its mean loss with an always-valid band."""

    arm: str
    version: str
    entities: int
    failures: int
    p99_latency_s: float | None
    labelled: int
    mean_loss: float | None
    lower: float | None
    upper: float | None


@dataclass(frozen=True)
class Assessment:
    """What one evaluation found: the verdict with its reason, the test, the guardrails and the arms."""

    verdict: str
    """continue, promote, rollback, inconclusive, breach (a guardrail) or no_outcomes (shadow, no labels, time up)."""
    reason: str
    design: str
    metric: str
    test: Evaluation | None
    guardrails: list[GuardrailCheck]
    arms: list[ArmView]
    labels: dict[str, int] = field(default_factory=dict)
    split_due: bool = False

    def detail(self) -> dict[str, Any]:
        """The evidence as stored with the evaluation and the audit events."""
        test = None if self.test is None else {**asdict(self.test), "samples": list(self.test.samples)}
        return {
            "design": self.design,
            "metric": self.metric,
            "test": test,
            "guardrails": [check.as_dict() for check in self.guardrails],
            "arms": [asdict(arm) for arm in self.arms],
            "labels": self.labels,
        }


def stored_policy(rollout: Rollout) -> tuple[RolloutSpec, str, str]:
    """The policy a rollout runs under, with its metric and task."""
    policy = RolloutSpec.model_validate({k: v for k, v in rollout.policy.items() if k not in POLICY_EXTRAS})
    metric = str(rollout.policy.get("metric") or "log_loss")
    task = str(rollout.policy.get("task") or "binary")
    return policy, metric, task


def per_outcome_losses(metric: str, scores: np.ndarray, predicted: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """The test's per-outcome loss (lower is better) of each labelled prediction."""
    if metric == "log_loss":
        return log_loss_per_outcome(scores, outcomes)
    if metric == "brier":
        return brier_per_outcome(scores, outcomes)
    if metric == "top_label_brier":  # the log holds only the predicted class's probability
        correct = (predicted == outcomes).astype(float)
        return np.asarray((scores - correct) ** 2, dtype=float)
    if metric == "absolute_error":
        return absolute_error_per_outcome(scores, outcomes)
    raise ValueError(f"unknown rollout metric {metric!r}")


def assess(
    rollout: Rollout,
    predictions: pd.DataFrame,
    joined: pd.DataFrame,
    entity_key: str,
    now: datetime,
    label_counts: dict[str, int] | None = None,
) -> Assessment:
    """Judge a rollout on its logged predictions (``predictions``, the rollout's window) and their labelled
    outcomes (``joined``: logged rows with an ``outcome`` column, from ``monitoring.outcomes.join_outcomes``)."""
    policy, metric, _ = stored_policy(rollout)
    champion, candidate = _arm_rows(predictions, rollout)
    checks, traffic = check_guardrails(champion, candidate, policy.guardrails)
    plan = TestPlan(policy.alpha, policy.beta, policy.min_effect, policy.min_samples)
    design = "paired" if policy.mode == "shadow" and policy.split_after is None else "independent"
    losses = {
        arm: _losses(rows, metric)
        for arm, rows in zip((CHAMPION_ARM, CANDIDATE_ARM), _arm_rows(joined, rollout), strict=True)
    }
    elapsed = (now - rollout.started_at).total_seconds()
    final = elapsed >= policy.max_duration
    test = _test(plan, design, losses, entity_key, final) if any(len(frame) for frame in losses.values()) else None
    arms = [
        _arm_view(arm, version, traffic[arm], losses[arm], plan)
        for arm, version in ((CHAMPION_ARM, rollout.champion_version), (CANDIDATE_ARM, rollout.candidate_version))
    ]
    breached = [check for check in checks if check.breached]
    split_due = (
        policy.split_after is not None
        and rollout.mode == "shadow"
        and elapsed >= policy.split_after
        and all(check.judged and not check.breached for check in checks)
    )
    verdict, reason = _verdict(policy, test, breached, elapsed, final)
    return Assessment(verdict, reason, design, metric, test, checks, arms, dict(label_counts or {}), split_due)


def _verdict(
    policy: RolloutSpec, test: Evaluation | None, breached: list[GuardrailCheck], elapsed: float, final: bool
) -> tuple[str, str]:
    if breached:
        return BREACH, "guardrail breached: " + "; ".join(check.summary for check in breached)
    if test is None:
        if final:
            return NO_OUTCOMES, "no labelled outcomes by the end of the rollout; the guardrails held throughout"
        return "continue", "no labelled outcomes yet: deciding on guardrails only until labels arrive"
    if test.verdict in ("promote", "rollback") and elapsed < policy.min_duration:
        left = timedelta(seconds=int(policy.min_duration - elapsed))
        return "continue", f"{test.reason} (the test would {test.verdict}; the minimum duration ends in {left})"
    return test.verdict, test.reason


def _arm_rows(frame: pd.DataFrame, rollout: Rollout) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of the rollout's two arms: each arm's own version only (a champion moved meanwhile is not it)."""
    if frame.empty:
        return frame, frame
    versions = frame["model_version"].astype(str)
    champion = frame[(frame["arm"] == CHAMPION_ARM) & (versions == rollout.champion_version)]
    candidate = frame[(frame["arm"] == CANDIDATE_ARM) & (versions == rollout.candidate_version)]
    return champion, candidate


def _losses(joined: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The labelled rows with their per-outcome loss (failures carry no prediction and no loss)."""
    if joined.empty:
        return joined.assign(loss=np.array([], dtype=float))
    rows = joined[joined["error"].isna()] if "error" in joined.columns else joined
    predicted = rows["label"].to_numpy(dtype=float, na_value=np.nan)
    losses = per_outcome_losses(
        metric, rows["score"].to_numpy(dtype=float), predicted, rows["outcome"].to_numpy(dtype=float)
    )
    return rows.assign(loss=losses)


def _test(plan: TestPlan, design: str, losses: dict[str, pd.DataFrame], entity_key: str, final: bool) -> Evaluation:
    champion, candidate = losses[CHAMPION_ARM], losses[CANDIDATE_ARM]
    if design == "paired":
        pairs = champion.merge(candidate, on=["request_id", entity_key], suffixes=("_champion", "_candidate"))
        differences = (pairs["loss_champion"] - pairs["loss_candidate"]).to_numpy(dtype=float)
        return evaluate_paired(plan, ArmSummary.of(differences), final=final)
    return evaluate_independent(
        plan,
        ArmSummary.of(champion["loss"].to_numpy(dtype=float)),
        ArmSummary.of(candidate["loss"].to_numpy(dtype=float)),
        final=final,
    )


def _arm_view(arm: str, version: str, traffic: Any, losses: pd.DataFrame, plan: TestPlan) -> ArmView:
    summary = ArmSummary.of(losses["loss"].to_numpy(dtype=float)) if len(losses) else ArmSummary()
    mean = summary.mean if summary.count else None
    width = plan.half_width(summary.count / summary.variance) if summary.count >= 2 and summary.variance > 0 else None
    return ArmView(
        arm,
        version,
        traffic.entities,
        traffic.failures,
        traffic.p99_latency_s,
        summary.count,
        mean,
        None if mean is None or width is None else mean - width,
        None if mean is None or width is None else mean + width,
    )


Reader = Callable[[str, datetime, datetime], "pd.DataFrame"]


class RolloutEvaluator:
    """Evaluates open rollouts when due and acts on the verdicts (see the module docstring)."""

    def __init__(
        self,
        records: RolloutRecords,
        control: RolloutControl,
        spec: Callable[[str], ModelSpec],
        predictions: Reader,
        join: Callable[[ModelSpec, pd.DataFrame, datetime, datetime, float], tuple[pd.DataFrame, dict[str, int]]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.records = records
        self.control = control
        self.spec = spec
        self.predictions = predictions
        self.join = join
        self.clock = clock

    def tick(self) -> int:
        """Evaluate every open rollout whose evaluation is due (and that this process claims); returns how many."""
        done = 0
        now = self.clock()
        for rollout in self.records.open_rollouts():
            if rollout.next_evaluation_at > now:
                continue
            policy, _, _ = stored_policy(rollout)
            if not self.records.claim(rollout, now + timedelta(seconds=policy.evaluation_interval)):
                continue  # another replica took it
            try:
                self.evaluate(rollout.id)
                done += 1
            except Exception:  # one rollout's failure must not stop the others; the next tick tries again
                log.exception("evaluating rollout %s of %s failed", rollout.id, rollout.model)
        return done

    def evaluate(self, rollout_id: int, *, act: bool = True) -> tuple[Rollout, Assessment]:
        """Assess the rollout now, record the evaluation and (``act``) carry out what it calls for."""
        rollout = self.records.get(rollout_id)
        if rollout is None:
            raise LookupError(f"no rollout {rollout_id}")
        spec = self.spec(rollout.model)
        policy, _, _ = stored_policy(rollout)
        now = self.clock()
        predictions = self.predictions(rollout.model, rollout.started_at, now)
        joined, counts = self.join(spec, predictions, rollout.started_at, now, policy.label_tolerance)
        assessment = assess(rollout, predictions, joined, spec.entity_key, now, counts)
        self._record(rollout, assessment, now)
        if act and rollout.open:
            rollout = self._act(spec, rollout, policy, assessment)
        return rollout, assessment

    def _record(self, rollout: Rollout, assessment: Assessment, now: datetime) -> None:
        test = assessment.test
        samples = test.samples if test is not None else (0, 0)
        self.records.add_evaluation(
            RolloutEvaluation(
                id=0,
                rollout_id=rollout.id,
                evaluated_at=now,
                champion_samples=samples[0],
                candidate_samples=samples[1],
                estimate=None if test is None else test.estimate,
                lower=None if test is None else test.lower,
                upper=None if test is None else test.upper,
                verdict=assessment.verdict,
                reason=assessment.reason,
                detail=assessment.detail(),
            )
        )

    def _act(self, spec: ModelSpec, rollout: Rollout, policy: RolloutSpec, assessment: Assessment) -> Rollout:
        verdict, reason, evidence = assessment.verdict, assessment.reason, assessment.detail()
        if verdict == BREACH:  # guardrails stop a rollout at once, whoever decides otherwise
            return self.control.rollback(rollout.id, actor=EVALUATOR, reason=reason, evidence=evidence)
        if rollout.state not in (RUNNING, AWAITING_DECISION):
            return rollout  # paused: the evidence is recorded, nothing is decided
        if verdict in ("promote", "rollback"):
            if policy.decision == "manual" or rollout.state == AWAITING_DECISION:
                return self.control.await_decision(rollout, verdict, reason)
            if verdict == "rollback":
                return self.control.rollback(rollout.id, actor=EVALUATOR, reason=reason, evidence=evidence)
            try:
                return self.control.promote(spec, rollout.id, actor=EVALUATOR, reason=reason, evidence=evidence)
            except GateRefusedError as refused:
                return self.control.await_decision(rollout, "promote", f"{reason}; but {refused}")
        if verdict in ("inconclusive", NO_OUTCOMES):
            return self.control.await_decision(rollout, verdict, reason)
        if assessment.split_due and rollout.state == RUNNING:
            return self.control.split(rollout, actor=EVALUATOR, reason="guardrails held for the policy's split_after")
        return rollout
