"""The rollout's sequential test, by simulation (seeded, vectorised: a few seconds) and by hand.

Over 1,000 A/A rollouts looked at after every batch the test promotes wrongly at most alpha of the time, where a
classical z-test looked at as often would not; with a true improvement of the minimum effect it promotes with at
least the planned power by the planned horizon; a candidate worse by it is rolled back.  Losses are real per-outcome
log losses of noisy probabilities (skewed, heavy-tailed), not Gaussians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from mlplatform.rollouts.sequential import (
    ArmSummary,
    TestPlan,
    absolute_error_per_outcome,
    brier_per_outcome,
    evaluate_independent,
    evaluate_paired,
    fixed_horizon_samples,
    log_loss_per_outcome,
)

ROLLOUTS = 1_000
ALPHA, BETA = 0.05, 0.2
BATCH = 25
MIN_EFFECT = 0.08
"""In log loss (a mean of about 0.37 here): large enough that a thousand rollouts simulate in seconds."""
"""Outcomes per arm between two looks: the evaluator looks after every batch."""


def log_losses(rng: np.random.Generator, shape: tuple[int, ...], noise: float = 0.6) -> np.ndarray:
    """Per-outcome log losses of a model whose probabilities are the truth blurred by ``noise`` (on the log-odds)."""
    truth = rng.beta(1.0, 6.0, shape)
    outcome = rng.random(shape) < truth
    logit = np.log(truth / (1 - truth)) + rng.normal(0.0, noise, shape)
    return log_loss_per_outcome(1 / (1 + np.exp(-logit)), outcome)


@dataclass(frozen=True)
class Runs:
    """How simulated rollouts ended: the share promoted, rolled back, and undecided at the horizon."""

    promoted: float
    rolled_back: float
    undecided: float


def run_rollouts(plan: TestPlan, estimate: np.ndarray, information: np.ndarray, looks: np.ndarray) -> Runs:
    """The evaluator's rule applied at every look of every rollout (rows): the first verdict ends a rollout."""
    width = half_widths(plan, information)
    ready = looks[None, :] >= plan.min_samples
    promote = ready & (estimate - width > 0)
    rollback = ready & (estimate + width < plan.min_effect)
    decided = promote | rollback
    first = np.where(decided.any(axis=1), decided.argmax(axis=1), -1)
    ended = first >= 0
    promoted = ended & promote[np.arange(len(first)), np.maximum(first, 0)]
    return Runs(promoted.mean(), (ended & ~promoted).mean(), (~ended).mean())


def half_widths(plan: TestPlan, information: np.ndarray) -> np.ndarray:
    """``TestPlan.half_width`` over an array (``test_the_vectorised_rule_is_the_modules_rule`` holds them equal)."""
    scaled = information * plan.eta
    return np.sqrt(2 * (scaled + 1) / (information**2 * plan.eta) * np.log(np.sqrt(scaled + 1) / plan.alpha))


def paired_looks(differences: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate and information at each look (every ``BATCH`` pairs) of each row of differences."""
    looks = np.arange(BATCH, differences.shape[1] + 1, BATCH)
    total = np.cumsum(differences, axis=1)[:, looks - 1]
    squares = np.cumsum(differences**2, axis=1)[:, looks - 1]
    variance = (squares - total**2 / looks) / (looks - 1)
    return total / looks, looks / variance, looks


def independent_looks(champion: np.ndarray, candidate: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate and information at each look of two arms growing ``BATCH`` outcomes each between looks."""
    looks = np.arange(BATCH, champion.shape[1] + 1, BATCH)
    means, variances = [], []
    for arm in (champion, candidate):
        total = np.cumsum(arm, axis=1)[:, looks - 1]
        squares = np.cumsum(arm**2, axis=1)[:, looks - 1]
        means.append(total / looks)
        variances.append((squares - total**2 / looks) / (looks - 1))
    return means[0] - means[1], 1 / (variances[0] / looks + variances[1] / looks), looks


def test_the_vectorised_rule_is_the_modules_rule() -> None:
    """The simulations below apply the module's formulas to many rollouts at once; on single rollouts they agree
    with ``evaluate_paired`` and ``evaluate_independent`` look by look."""
    rng = np.random.default_rng(7)
    plan = TestPlan(ALPHA, BETA, 0.05, min_samples=50)
    differences = log_losses(rng, (1, 400)) - log_losses(rng, (1, 400)) + 0.04
    estimate, information, looks = paired_looks(differences)
    for column, look in enumerate(looks):
        reading = evaluate_paired(plan, ArmSummary.of(differences[0, :look]))
        assert reading.estimate == pytest.approx(estimate[0, column])
        assert reading.lower == pytest.approx(estimate[0, column] - plan.half_width(information[0, column]))
        assert half_widths(plan, information[:, column])[0] == pytest.approx(plan.half_width(information[0, column]))
    champion, candidate = log_losses(rng, (1, 300)), log_losses(rng, (1, 300)) - 0.05
    estimate, information, looks = independent_looks(champion, candidate)
    for column, look in enumerate(looks):
        reading = evaluate_independent(plan, ArmSummary.of(champion[0, :look]), ArmSummary.of(candidate[0, :look]))
        assert reading.upper == pytest.approx(estimate[0, column] + plan.half_width(information[0, column]))


def _aa_paired(rng: np.random.Generator, plan: TestPlan) -> tuple[Runs, float]:
    pilot = log_losses(rng, (200_000,)) - log_losses(rng, (200_000,))
    horizon = 2 * plan.samples_needed("paired", float(pilot.var()))  # twice the planned horizon: more looks
    differences = log_losses(rng, (ROLLOUTS, horizon)) - log_losses(rng, (ROLLOUTS, horizon))
    estimate, information, looks = paired_looks(differences)
    naive = (estimate * np.sqrt(information) > 1.959964)[:, looks >= plan.min_samples].any(axis=1).mean()
    return run_rollouts(plan, estimate, information, looks), float(naive)


def test_aa_rollouts_watched_after_every_batch_promote_wrongly_at_most_alpha() -> None:
    rng = np.random.default_rng(2026)
    plan = TestPlan(ALPHA, BETA, min_effect=MIN_EFFECT)
    paired, naive = _aa_paired(rng, plan)
    assert paired.promoted <= ALPHA, paired
    assert naive > 2 * ALPHA  # a fixed-horizon z-test looked at as often promotes far more often: peeking is real
    arm_variance = float(log_losses(rng, (200_000,)).var())
    per_arm = plan.samples_needed("independent", arm_variance, arm_variance) // 2
    estimate, information, looks = independent_looks(
        log_losses(rng, (ROLLOUTS, 2 * per_arm)), log_losses(rng, (ROLLOUTS, 2 * per_arm))
    )
    independent = run_rollouts(plan, estimate, information, looks)
    assert independent.promoted <= ALPHA, independent


@pytest.mark.parametrize("design", ["paired", "independent"])
def test_an_improvement_of_the_minimum_effect_is_promoted_with_the_planned_power(design: str) -> None:
    rng = np.random.default_rng(11 if design == "paired" else 12)
    plan = TestPlan(ALPHA, BETA, min_effect=MIN_EFFECT)
    if design == "paired":
        pilot = log_losses(rng, (200_000,)) - log_losses(rng, (200_000,))
        horizon = plan.samples_needed("paired", float(pilot.var()))
        differences = log_losses(rng, (ROLLOUTS, horizon)) - log_losses(rng, (ROLLOUTS, horizon)) + plan.min_effect
        better = run_rollouts(plan, *paired_looks(differences))
        worse = run_rollouts(plan, *paired_looks(differences - 2 * plan.min_effect))
    else:
        variance = float(log_losses(rng, (200_000,)).var())
        per_arm = plan.samples_needed("independent", variance, variance) // 2
        champion = log_losses(rng, (ROLLOUTS, per_arm))
        candidate = log_losses(rng, (ROLLOUTS, per_arm))
        better = run_rollouts(plan, *independent_looks(champion, candidate - plan.min_effect))
        worse = run_rollouts(plan, *independent_looks(champion, candidate + plan.min_effect))
    assert better.promoted >= 1 - BETA, better
    assert worse.rolled_back >= 1 - BETA and worse.promoted <= ALPHA, worse


def test_the_planned_information_by_hand() -> None:
    plan = TestPlan(0.05, 0.2, 0.01)
    c = 2 * math.log(20) + math.log(1 + 2 * math.log(20))
    constant = math.sqrt(2 * (c + 1) / c * math.log(math.sqrt(c + 1) / 0.05))
    assert plan.planned_information == pytest.approx(((constant + 0.8416212) / 0.01) ** 2, rel=1e-6)
    # at the planned information, min_effect - half width is z_{1-beta} standard errors: the final look's power
    margin = plan.min_effect - plan.half_width(plan.planned_information)
    assert margin * math.sqrt(plan.planned_information) == pytest.approx(0.8416212, rel=1e-6)
    widths = [plan.half_width(information) for information in (10.0, 1e3, 1e5, 1e7)]
    assert widths == sorted(widths, reverse=True) and plan.half_width(0.0) == math.inf
    # always valid costs samples at the planned horizon (and saves them when the effect is larger)
    assert fixed_horizon_samples("paired", plan, 0.3) < plan.samples_needed("paired", 0.3)
    assert plan.samples_needed("independent", 0.2, 0.2, share=0.1) > plan.samples_needed("independent", 0.2, 0.2)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": 0.5}, "alpha"),
        ({"beta": 0.6}, "beta"),
        ({"min_effect": 0.0}, "min_effect"),
        ({"min_effect": math.nan}, "min_effect"),
        ({"min_samples": 1}, "min_samples"),
    ],
)
def test_bad_plans_name_the_field(fields: dict[str, float], field: str) -> None:
    values = {"alpha": 0.05, "beta": 0.2, "min_effect": 0.01, **fields}
    with pytest.raises(ValueError, match=field):
        TestPlan(**values)  # type: ignore[arg-type]


def test_summaries_add_up_and_edge_cases_never_leak_nan() -> None:
    first, second = [0.1, 0.5, 0.9], [0.2, 0.4]
    assert ArmSummary.of(first).add(ArmSummary.of(second)) == ArmSummary.of(first + second)
    assert ArmSummary.of(first + second).variance == pytest.approx(np.var(first + second, ddof=1))
    assert ArmSummary.of([1.0]).variance == 0.0
    plan = TestPlan(ALPHA, BETA, 0.01, min_samples=10)
    empty = evaluate_independent(plan, ArmSummary(), ArmSummary.of(first))
    assert (empty.verdict, empty.estimate, empty.lower) == ("continue", None, None)
    early = evaluate_paired(plan, ArmSummary.of([5.0, 5.1, 4.9]))  # a huge effect on three pairs: too few
    assert early.verdict == "continue" and "waiting for 10" in early.reason
    same = evaluate_paired(plan, ArmSummary.of([0.0] * 20))  # zero variance: the band is the point 0
    assert (same.verdict, same.lower, same.upper) == ("rollback", 0.0, 0.0)
    better = evaluate_independent(plan, ArmSummary.of([1.0] * 20), ArmSummary.of([0.5] * 20))
    assert better.verdict == "promote" and better.estimate == 0.5
    undecided = evaluate_paired(plan, ArmSummary.of(np.random.default_rng(1).normal(0.01, 1.0, 50)), final=True)
    assert undecided.verdict == "inconclusive" and "maximum duration" in undecided.reason
    for reading in (early, same, better, undecided):
        assert all(value is None or math.isfinite(value) for value in (reading.estimate, reading.lower, reading.upper))


def test_losses_by_hand() -> None:
    assert log_loss_per_outcome(np.array([0.8, 0.8]), np.array([1, 0])) == pytest.approx(
        [-math.log(0.8), -math.log(0.2)]
    )
    assert math.isfinite(log_loss_per_outcome(np.array([0.0]), np.array([1]))[0])  # clipped, never infinite
    assert brier_per_outcome(np.array([0.8, 0.3]), np.array([1, 0])) == pytest.approx([0.04, 0.09])
    assert absolute_error_per_outcome(np.array([2.5, -1.0]), np.array([2.0, 1.0])) == pytest.approx([0.5, 2.0])
