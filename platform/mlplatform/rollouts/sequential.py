"""The sequential test of a rollout: an always-valid confidence sequence for the difference of mean losses.

Why always-valid: a rollout is watched while it runs (the evaluator looks every interval, people look at the page),
and a classical test checked at every look is wrong far more often than its nominal rate.  A confidence sequence
covers the true difference at every look at once with probability at least ``1 - alpha``, so any rule that stops
when the sequence excludes a value keeps that error rate however often it looks.

The sequence is the Gaussian-mixture boundary (Howard et al. 2021, "Time-uniform, nonparametric, nonasymptotic
confidence sequences"; the asymptotic form of Waudby-Smith et al., "Time-uniform central limit theory"), written in
terms of the *information* ``I = 1 / Var(estimate)`` so one formula serves both designs:

* ``paired`` (shadow: both arms scored the same entities): the estimate is the mean of the per-entity differences
  ``loss(champion) - loss(candidate)``, and ``I = n / s_d^2``;
* ``independent`` (split: each entity answered by one arm): the difference of the arms' means, and
  ``I = 1 / (s_a^2 / n_a + s_b^2 / n_b)``.

The half width at information ``I`` is ``sqrt(2 (I eta + 1) / (I^2 eta) * log(sqrt(I eta + 1) / alpha))``.  Its
tuning ``eta`` is fixed before any data from the plan alone: the band is tightest at the *planned information*
``I*``, the information at which a true improvement of ``min_effect`` puts the lower bound above zero with
probability ``1 - beta`` (``I* = ((K + z_{1-beta}) / min_effect)^2``, ``K`` the half width's constant at ``I*``).
Information is in units of the loss's variance, so ``I*`` needs no variance guess; the number of outcomes it takes
follows from the variance the data shows (``samples_needed``).

Losses are lower-is-better, so a positive difference means the candidate is better.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np

Design = Literal["paired", "independent"]
Verdict = Literal["continue", "promote", "rollback", "inconclusive"]
PROBABILITY_CLIP = 1e-15
"""Probabilities are kept this far from 0 and 1, so one confident mistake costs a large but finite log loss."""


def _z(probability: float) -> float:
    return NormalDist().inv_cdf(probability)


@dataclass(frozen=True)
class TestPlan:
    """The test a rollout's policy asks for: error rate, power at the minimum effect, and the samples needed before
    the Gaussian approximation is trusted."""

    __test__ = False  # a plan, not a pytest test class

    alpha: float
    """Rate of wrong decisions (the sequence's two-sided level)."""
    beta: float
    """1 - power at ``min_effect``: what plans the information."""
    min_effect: float
    """The smallest improvement of the mean loss worth shipping, in the loss's units."""
    min_samples: int = 100
    """No verdict before this many samples on each arm (pairs, in the paired design)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be between 0 and 0.5, got {self.alpha}")
        if not 0.0 < self.beta < 0.5:
            raise ValueError(f"beta must be between 0 and 0.5, got {self.beta}")
        if not (math.isfinite(self.min_effect) and self.min_effect > 0.0):
            raise ValueError(f"min_effect must be a positive number, got {self.min_effect}")
        if self.min_samples < 2:
            raise ValueError(f"min_samples must be at least 2 (a variance needs two), got {self.min_samples}")

    @property
    def _mixture(self) -> float:
        """``eta * I*``: the tuning that makes the band tightest at the planned information."""
        log_alpha = 2.0 * math.log(1.0 / self.alpha)
        return log_alpha + math.log(1.0 + log_alpha)

    @property
    def planned_information(self) -> float:
        """``I*``: at this information a true effect of ``min_effect`` is detected with probability ``1 - beta``."""
        c = self._mixture
        constant = math.sqrt(2.0 * (c + 1.0) / c * math.log(math.sqrt(c + 1.0) / self.alpha))
        return ((constant + _z(1.0 - self.beta)) / self.min_effect) ** 2

    @property
    def eta(self) -> float:
        return self._mixture / self.planned_information

    def half_width(self, information: float) -> float:
        """Half the band's width at ``information`` (infinite without information)."""
        if not information > 0.0:
            return math.inf
        if math.isinf(information):
            return 0.0
        scaled = information * self.eta
        return math.sqrt(
            2.0 * (scaled + 1.0) / (information**2 * self.eta) * math.log(math.sqrt(scaled + 1.0) / self.alpha)
        )

    def samples_needed(self, design: Design, variance_a: float, variance_b: float = 0.0, share: float = 0.5) -> int:
        """Samples to reach the planned information: pairs (``paired``: ``variance_a`` is the differences'), or the
        total of both arms (``independent``: ``variance_a`` the champion's loss variance, ``variance_b`` the
        candidate's, ``share`` the candidate's part of the samples)."""
        return _samples(self.planned_information, design, variance_a, variance_b, share)


def fixed_horizon_samples(
    design: Design, plan: TestPlan, variance_a: float, variance_b: float = 0.0, share: float = 0.5
) -> int:
    """Samples a classical fixed-horizon two-sided z-test at the same alpha and beta needs for ``min_effect``,
    looked at once, at the end: what the benchmark compares the sequential test with."""
    information = ((_z(1.0 - plan.alpha / 2.0) + _z(1.0 - plan.beta)) / plan.min_effect) ** 2
    return _samples(information, design, variance_a, variance_b, share)


def _samples(information: float, design: Design, variance_a: float, variance_b: float, share: float) -> int:
    if design == "paired":
        return math.ceil(information * variance_a)
    if not 0.0 < share < 1.0:
        raise ValueError(f"share must be between 0 and 1, got {share}")
    return math.ceil(information * (variance_a / (1.0 - share) + variance_b / share))


@dataclass(frozen=True)
class ArmSummary:
    """Count, sum and sum of squares of one arm's losses (or of the pairs' differences): enough for the test, and
    addable batch by batch without keeping the samples."""

    count: int = 0
    total: float = 0.0
    total_squares: float = 0.0

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> ArmSummary:
        array = np.asarray(values, dtype=float)
        return cls(int(array.size), float(array.sum()), float(np.square(array).sum()))

    def add(self, other: ArmSummary) -> ArmSummary:
        return ArmSummary(self.count + other.count, self.total + other.total, self.total_squares + other.total_squares)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def variance(self) -> float:
        """The sample variance (0 with fewer than two values; rounding below zero is clamped)."""
        if self.count < 2:
            return 0.0
        centred = self.total_squares - self.total * self.total / self.count
        return max(centred / (self.count - 1), 0.0)


@dataclass(frozen=True)
class Evaluation:
    """One look at a rollout: the verdict, why in numbers, the estimate and its band, and how far along it is."""

    verdict: Verdict
    reason: str
    estimate: float | None
    lower: float | None
    upper: float | None
    information: float
    progress: float
    """Information over the planned information, capped at 1."""
    samples: tuple[int, int]
    """(champion, candidate); the paired design counts pairs on both sides."""


def evaluate_paired(plan: TestPlan, differences: ArmSummary, *, final: bool = False) -> Evaluation:
    """The test on per-entity differences ``loss(champion) - loss(candidate)`` (shadow rollouts)."""
    information = _information(differences.count, differences.variance)
    return _evaluate(plan, differences.mean, information, (differences.count, differences.count), final)


def evaluate_independent(
    plan: TestPlan, champion: ArmSummary, candidate: ArmSummary, *, final: bool = False
) -> Evaluation:
    """The test on the arms' mean losses from different entities (split rollouts)."""
    samples = (champion.count, candidate.count)
    if min(samples) == 0:
        return _evaluate(plan, math.nan, 0.0, samples, final)
    variance = champion.variance / champion.count + candidate.variance / candidate.count
    information = math.inf if variance == 0.0 else 1.0 / variance
    return _evaluate(plan, champion.mean - candidate.mean, information, samples, final)


def _information(count: int, variance: float) -> float:
    if count == 0:
        return 0.0
    return math.inf if variance == 0.0 else count / variance


def _evaluate(plan: TestPlan, estimate: float, information: float, samples: tuple[int, int], final: bool) -> Evaluation:
    progress = min(information / plan.planned_information, 1.0) if information > 0 else 0.0
    if min(samples) == 0:
        return Evaluation("continue", "no labelled outcomes on both arms yet", None, None, None, 0.0, 0.0, samples)
    width = plan.half_width(information)
    lower, upper = estimate - width, estimate + width
    band = f"{estimate:+.4g} [{lower:+.4g}, {upper:+.4g}] after {samples[0]}+{samples[1]} outcomes"
    reading = (estimate, lower, upper, information, progress, samples)
    if min(samples) < plan.min_samples:
        return Evaluation("continue", f"{band}: waiting for {plan.min_samples} outcomes per arm", *reading)
    if lower > 0.0:
        return Evaluation(
            "promote", f"{band}: the candidate's loss is lower (wrong at most {plan.alpha:.0%})", *reading
        )
    if upper < 0.0:
        return Evaluation("rollback", f"{band}: the candidate's loss is higher", *reading)
    if upper < plan.min_effect:
        why = f"the candidate is not better by the minimum effect {plan.min_effect:g}"
        return Evaluation("rollback", f"{band}: {why}", *reading)
    if final or progress >= 1.0:
        why = "the planned information is reached" if progress >= 1.0 else "the maximum duration is over"
        return Evaluation("inconclusive", f"{band}: undecided and {why}; a person decides", *reading)
    return Evaluation("continue", f"{band}: undecided ({progress:.0%} of the planned information)", *reading)


def log_loss_per_outcome(probability_of_positive: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Binary log loss of each outcome: ``-log p`` of the class that happened."""
    p = np.clip(np.asarray(probability_of_positive, dtype=float), PROBABILITY_CLIP, 1.0 - PROBABILITY_CLIP)
    y = np.asarray(label, dtype=float)
    return np.asarray(-(y * np.log(p) + (1.0 - y) * np.log1p(-p)), dtype=float)


def brier_per_outcome(probability_of_positive: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Squared error of the probability of class 1 against the outcome."""
    p = np.asarray(probability_of_positive, dtype=float)
    return np.asarray((p - np.asarray(label, dtype=float)) ** 2, dtype=float)


def absolute_error_per_outcome(prediction: np.ndarray, label: np.ndarray) -> np.ndarray:
    return np.asarray(np.abs(np.asarray(prediction, dtype=float) - np.asarray(label, dtype=float)), dtype=float)
