"""Rollouts: what routing costs a request, and how many labelled outcomes the sequential test needs to decide.

Usage: uv run python benchmarks/rollout.py [--rollouts 2000] [--seed 7]

1. **Routing, in process.** The per-request work a rollout adds in the Predictor, timed alone (median of many
   calls): reading the traffic plan and assigning entities by the salted hash of their key (``split_rows``), and
   putting a split answer back together from its two arms (``merged``), for 1 and 32 entities.  Target: at most
   20 µs for a single-entity request.  (Shadow adds one scoring on the shadow thread and no second online-store
   read; the end-to-end ratio against today's server is measured with the serving benchmark's load generator.)
2. **Outcomes to a decision.** Simulated rollouts of the paired (shadow) test with real per-outcome log losses,
   looked at every 25 outcomes: the median and 90th percentile of the outcomes it took to decide for improvements
   of 0.5, 1, 2 and 4 times the minimum effect, the share promoted, and the samples a fixed-horizon z-test with the
   same alpha and beta needs (looked at once, at the end).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))

import numpy as np  # noqa: E402

from mlplatform.registry.traffic import TrafficPlan  # noqa: E402
from mlplatform.rollouts.sequential import TestPlan, fixed_horizon_samples, log_loss_per_outcome  # noqa: E402
from mlplatform.serving.predictor import merged  # noqa: E402
from mlplatform.serving.rollout import split_rows  # noqa: E402
from mlplatform.serving.scoring import EntityPrediction, PredictionResult  # noqa: E402

LOOK_EVERY = 25
MIN_EFFECT = 0.02


def time_call(call: Any, repeat: int = 20_000) -> float:
    """Median microseconds of ``call`` over batches of 100 calls."""
    samples = []
    for _ in range(repeat // 100):
        began = time.perf_counter()
        for _ in range(100):
            call()
        samples.append((time.perf_counter() - began) / 100 * 1e6)
    return statistics.median(samples)


def answer(entities: list[dict[str, Any]], count: int, version: str) -> PredictionResult:
    """One arm's part of a split request's answer."""
    predictions = [EntityPrediction(index, entities[index], 0.5, 0) for index in range(count)]
    return PredictionResult("m", version, "r", predictions, [])


def routing() -> None:
    plan = TrafficPlan(1, "7", "split", 0.5)
    print("routing in process (median µs per request)")
    print(f"  {'entities':>8}  {'assign':>8}  {'merge':>8}  {'total':>8}")
    for size in (1, 32):
        keys: list[object] = list(range(10_000, 10_000 + size))
        entities = [{"customer_id": key} for key in keys]
        chosen = split_rows(plan, keys)
        rest = [index for index in range(size) if index not in set(chosen)]
        parts = [(answer(entities, len(chosen), "7"), chosen), (answer(entities, len(rest), "6"), rest)]
        assign = time_call(lambda: split_rows(plan, keys))  # noqa: B023
        merge = time_call(lambda: merged(parts, set()))  # noqa: B023
        print(f"  {size:>8}  {assign:>8.2f}  {merge:>8.2f}  {assign + merge:>8.2f}")


def losses(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    truth = rng.beta(1.0, 6.0, shape)
    outcome = rng.random(shape) < truth
    logit = np.log(truth / (1 - truth)) + rng.normal(0.0, 0.6, shape)
    return log_loss_per_outcome(1 / (1 + np.exp(-logit)), outcome)


def outcomes_to_decide(rollouts: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    plan = TestPlan(0.05, 0.2, MIN_EFFECT)
    pilot = losses(rng, (400_000,)) - losses(rng, (400_000,))
    variance = float(pilot.var())
    horizon = plan.samples_needed("paired", variance)
    fixed = fixed_horizon_samples("paired", plan, variance)
    print(f"\noutcomes to a decision, paired (shadow) test: alpha 0.05, power 0.8 at min_effect {MIN_EFFECT} log loss")
    print(f"  planned horizon {horizon} pairs; a fixed-horizon z-test needs {fixed} (looked at once, at the end)")
    print(f"  {'effect':>10}  {'promoted':>8}  {'median':>7}  {'p90':>7}  {'vs fixed':>8}")
    for multiple in (0.5, 1.0, 2.0, 4.0):
        effect = multiple * MIN_EFFECT
        needed = []
        promoted = 0
        for start in range(0, rollouts, 250):
            count = min(250, rollouts - start)
            differences = losses(rng, (count, horizon)) - losses(rng, (count, horizon)) + effect
            looks = np.arange(LOOK_EVERY, horizon + 1, LOOK_EVERY)
            total = np.cumsum(differences, axis=1)[:, looks - 1]
            squares = np.cumsum(differences**2, axis=1)[:, looks - 1]
            variance_at = (squares - total**2 / looks) / (looks - 1)
            estimate, information = total / looks, looks / variance_at
            scaled = information * plan.eta
            width = np.sqrt(2 * (scaled + 1) / (information**2 * plan.eta) * np.log(np.sqrt(scaled + 1) / plan.alpha))
            ready = looks >= plan.min_samples
            promote = ready & (estimate - width > 0)
            decided = promote | (ready & (estimate + width < plan.min_effect))
            first = np.where(decided.any(axis=1), decided.argmax(axis=1), len(looks) - 1)
            needed.extend(looks[first].tolist())
            promoted += int(promote[np.arange(count), first].sum())
        median, p90 = int(np.median(needed)), int(np.quantile(needed, 0.9))
        print(f"  {multiple:>4.1f}x min  {promoted / rollouts:>8.0%}  {median:>7}  {p90:>7}  {median / fixed:>7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    routing()
    outcomes_to_decide(args.rollouts, args.seed)


if __name__ == "__main__":
    main()
