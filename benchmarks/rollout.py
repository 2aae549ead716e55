"""Rollouts: what routing costs a request, and how many labelled outcomes the sequential test needs to decide.

Usage: uv run python benchmarks/rollout.py [--rollouts 2000] [--seed 7]
           [--servers bentoml kserve] [--rate 200] [--duration 15] [--reps 3]
``--servers`` with no names skips part 3 (parts 1 and 2 take seconds; part 3 about 8 minutes on two cores).

1. **Routing, in process.** The per-request work a rollout adds in the Predictor, timed alone (median of many
   calls): reading the traffic plan and assigning entities by the salted hash of their key (``split_rows``), and
   putting a split answer back together from its two arms (``merged``), for 1 and 32 entities.  Target: at most
   20 µs for a single-entity request.
2. **Outcomes to a decision.** Simulated rollouts of the paired (shadow) test with real per-outcome log losses,
   looked at every 25 outcomes: the median and 90th percentile of the outcomes it took to decide for improvements
   of 0.5, 1, 2 and 4 times the minimum effect, the share promoted, and the samples a fixed-horizon z-test with the
   same alpha and beta needs (looked at once, at the end).
3. **Server overhead, end to end.** The platform's real servers (the serving benchmark's world, servers and
   open-loop load generator, ``benchmarks/serving.py``), each measured in the same run with no rollout (today's
   server), in shadow and in a 50 % split of the other registered version: single-entity requests at ``--rate``,
   p50 and p99 as the load generator sees them and the server's CPU per request from its process tree, the median
   of ``--reps`` repetitions taken in rotating order, and the ratio to no rollout.  Shadow must cost at most one
   extra scoring: its CPU per request is set against the bare scoring's.
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
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks import serving as bench  # noqa: E402
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


STATES = ("none", "shadow", "split")


def publish(settings: Any, state: str, candidate: str) -> None:
    """The traffic plan servers follow at their next alias poll (what ``RolloutControl`` publishes)."""
    from mlplatform.registry.mlflow_registry import ModelRegistry

    plan = None if state == "none" else TrafficPlan(1, candidate, state, 0.5)  # type: ignore[arg-type]
    ModelRegistry(settings).publish_traffic_plan(bench.MODEL, plan)


def following(server: Any, state: str) -> bool:
    """Whether the server's metrics show it following ``state`` (the rollout share gauge names the mode)."""
    from urllib.parse import urlsplit

    import httpx

    parts = urlsplit(server.url)
    text = httpx.get(f"{parts.scheme}://{parts.netloc}/metrics", timeout=10).text
    shares = [line for line in text.splitlines() if line.startswith("mlplatform_serving_rollout_share{")]
    return not shares if state == "none" else any(f'mode="{state}"' in line for line in shares)


def enter(server: Any, settings: Any, state: str, candidate: str, args: argparse.Namespace) -> None:
    """Publish the plan and wait (under a light load, which also warms the candidate) until the server follows."""
    publish(settings, state, candidate)
    deadline = time.monotonic() + 60
    while not following(server, state):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not follow the {state} plan within 60 s")
        bench.load(server.url, server.bodies[0], rate=50, duration=2, cpu_split=args.cpu_split)
    bench.load(server.url, server.bodies[0], rate=args.rate, duration=3, cpu_split=args.cpu_split)


def overhead(
    settings: Any, backend: str, entities: list[dict[str, Any]], supervisor: Any, args: argparse.Namespace
) -> dict[str, list[dict[str, Any]]]:
    from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry

    registry = ModelRegistry(settings)
    champion = registry.alias_holder(bench.MODEL, CHAMPION)
    assert champion is not None
    candidate = next(v.version for v in registry.versions(bench.MODEL) if v.version != champion.version)
    runs: dict[str, list[dict[str, Any]]] = {state: [] for state in STATES}
    with bench.start_server(backend, settings, entities, supervisor) as server:
        try:
            for repetition in range(args.reps):
                order = STATES[repetition % 3 :] + STATES[: repetition % 3]  # no state always runs first
                for state in order:
                    enter(server, settings, state, candidate, args)
                    run = bench.single_run(server, args.rate, args.duration, args.cpu_split)
                    runs[state].append(run)
                    print(
                        f"  {backend} rep {repetition + 1} {state:>6}: p50 {run['p50_ms']:.2f} ms, p99 "
                        f"{run['p99_ms']:.2f} ms, {run['failed']} failed, {run['server_cpu_ms']:.2f} ms CPU/request",
                        flush=True,
                    )
        finally:
            publish(settings, "none", candidate)
    return runs


def scoring_ms(settings: Any, entities: list[dict[str, Any]]) -> float:
    """CPU milliseconds of one single-row scoring of the champion with the servers' own scorer, in process: the
    most a shadow may add."""
    from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry
    from mlplatform.serving.compiled_trees import positive_scorer
    from mlplatform.training.pipeline import load_version

    champion = ModelRegistry(settings).alias_holder(bench.MODEL, CHAMPION)
    assert champion is not None
    scorer, _ = positive_scorer(load_version(settings, bench.MODEL, champion.version), champion.version)
    _, inputs = bench.champion_files(settings)
    singles, _ = bench.bare_bodies(settings, entities[:200], inputs)
    rows = [np.asarray(body["features"], dtype=np.float64) for body in singles]
    began = time.process_time()
    for _ in range(5):
        for row in rows:
            scorer(row)
    return (time.process_time() - began) * 1000.0 / (5 * len(rows))


def servers(args: argparse.Namespace) -> None:
    import os

    from mlplatform.stack.embedded import mlflow_argv, mlflow_env
    from mlplatform.stack.supervisor import Supervisor
    from tests.support.environment import free_port

    settings = bench.settings_for(free_port(), free_port())
    os.environ["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_REGISTRY_URI"] = settings.mlflow.resolved_tracking_uri()
    supervisor = Supervisor(settings.state_dir)
    if args.cpu_split:
        os.sched_setaffinity(0, {0})  # servers started from here inherit CPU 0; the load generator runs on CPU 1
    supervisor.start("mlflow", mlflow_argv(settings), mlflow_env(settings), cwd=settings.layout.mlflow_dir)
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    try:
        supervisor.wait_healthy("mlflow", f"{settings.mlflow.resolved_tracking_uri()}/health", timeout=120)
        bench.build_world(settings)
        entities = bench.request_entities(settings, 2000)
        scoring = scoring_ms(settings, entities)
        for backend in args.servers:
            print(f"{backend}: starting", flush=True)
            results[backend] = overhead(settings, backend, entities, supervisor, args)
    finally:
        supervisor.stop("mlflow")
    print(f"\nserver overhead of a rollout, single-entity requests at {args.rate:.0f}/s, median of {args.reps} reps")
    print(f"(one scoring of the model alone: {scoring:.2f} ms CPU)")
    heads = ("p50 ms", "p99 ms", "CPU ms", "p50 x", "p99 x", "CPU x")
    print(f"  {'server':<8} {'state':>6}  " + "  ".join(f"{head:>7}" for head in heads))
    for backend, runs in results.items():
        base = {
            key: statistics.median(run[key] for run in runs["none"]) for key in ("p50_ms", "p99_ms", "server_cpu_ms")
        }
        for state in STATES:
            value = {key: statistics.median(run[key] for run in runs[state]) for key in base}
            ratios = "  ".join(f"{value[key] / base[key]:>6.2f}x" for key in base)
            failed = sum(run["failed"] for run in runs[state])
            note = f"  ({failed} failed)" if failed else ""
            print(
                f"  {backend:<8} {state:>6}  {value['p50_ms']:>7.2f}  {value['p99_ms']:>7.2f}  "
                f"{value['server_cpu_ms']:>7.2f}  {ratios}{note}"
            )


def main() -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rollouts", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--servers", nargs="*", default=["bentoml", "kserve"], choices=["bentoml", "kserve"])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cpu-split", action=argparse.BooleanOptionalAction, default=(os.cpu_count() or 1) >= 2)
    args = parser.parse_args()
    routing()
    outcomes_to_decide(args.rollouts, args.seed)
    if args.servers:
        servers(args)


if __name__ == "__main__":
    main()
