"""Closed-loop time: from the first drifted request to the new champion serving, step by step.

Usage: uv run python benchmarks/loop.py [--runs 3] [--customers 2000] [--days 90] [--scrape-interval 2]
       [--evaluation-interval 2] [--group-wait 1] [--group-interval 10] [--poll-interval 2] [--rate 50]
       [--production-intervals] [--same-stack] [--end 2026-12-05] [--state-dir DIR]

Starts its own embedded stack (MLflow, Airflow, platform API, Prometheus, Alertmanager) in a temporary state
directory on free ports, prepares the demo world (``mlplatform.loop.driver.prepare``: data, features, a first
champion, the model served), then runs the loop with ``mlplatform.loop.driver.run_loop`` (what `mlplatform loop run`
calls); each of the ``--runs`` runs on a stack of its own.  ``--same-stack`` runs them all on one stack instead, as
a second `make demo` would: each run after the first starts by restoring the pre-drift champion and resolving the
earlier alert (that includes waiting for Alertmanager to deliver the resolution at the webhook route's
group_interval, before the drifted traffic); the retrain policy's cooldown is 0 so every run may retrain.  A run
that stalls is reported with the step and message, after the runs before it, and the benchmark exits non-zero.

The alerting intervals are the demo's (``make demo`` sets the same ones), shorter than the production defaults
(Prometheus scrape and evaluation 15 s, the webhook route's group_wait 10 s and group_interval 5 min, the server's
alias poll 10 s); ``--production-intervals`` runs with those instead.  Both sets are printed beside the figure.

Prints each run's timeline, then per step the median seconds over the runs, the median total and the median of
the headline figure (first drifted request -> new champion serving); writes JSON to ``--out``.  Needs the Debian
packages prometheus and prometheus-alertmanager.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import statistics
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Intervals:
    """The intervals the loop waits on that the platform sets: alerting (Prometheus, Alertmanager) and the swap."""

    scrape_s: int
    evaluation_s: int
    group_wait_s: int
    group_interval_s: int
    poll_s: float

    def describe(self) -> str:
        return (
            f"Prometheus scrape {self.scrape_s}s and evaluation {self.evaluation_s}s, Alertmanager webhook route "
            f"group_wait {self.group_wait_s}s and group_interval {self.group_interval_s}s, server alias poll "
            f"{self.poll_s:g}s"
        )


def production_intervals() -> Intervals:
    """The defaults, for the line printed beside the figure: read from the settings and the committed Alertmanager
    routing (the webhook route's own timing, else its parent's), so the line cannot drift from them."""
    from mlplatform.config import PrometheusSettings, ServingSettings
    from mlplatform.specs import duration_seconds
    from mlplatform.stack.prometheus import WEBHOOK_RECEIVER, committed_alertmanager_config

    prometheus, serving = PrometheusSettings(), ServingSettings()
    routing = committed_alertmanager_config(REPO / prometheus.config_dir)["route"]
    webhook = next(route for route in routing.get("routes", []) if route.get("receiver") == WEBHOOK_RECEIVER)
    return Intervals(
        scrape_s=prometheus.scrape_interval_s,
        evaluation_s=prometheus.evaluation_interval_s or prometheus.scrape_interval_s,
        group_wait_s=int(duration_seconds(webhook.get("group_wait", routing["group_wait"]))),
        group_interval_s=int(duration_seconds(webhook.get("group_interval", routing["group_interval"]))),
        poll_s=serving.poll_interval_s,
    )


def bench_settings(state_dir: Path, intervals: Intervals | None) -> Any:
    """The benchmark's stack; ``intervals`` None: the production defaults, untouched."""
    from mlplatform.config import get_settings

    prometheus: dict[str, Any] = {"port": free_port(), "alertmanager_port": free_port()}
    serving: dict[str, Any] = {"port": free_port()}
    if intervals is not None:
        prometheus.update(
            scrape_interval_s=intervals.scrape_s,
            evaluation_interval_s=intervals.evaluation_s,
            webhook_group_wait_s=intervals.group_wait_s,
            webhook_group_interval_s=intervals.group_interval_s,
        )
        serving["poll_interval_s"] = intervals.poll_s
    return get_settings(
        state_dir=state_dir,
        bundled_models_dir=REPO / "pipelines" / "models",
        feast={"repo_path": REPO / "feature_repo", "project": "mlp_bench_loop"},
        airflow={"dags_folder": REPO / "pipelines" / "dags", "port": free_port()},
        mlflow={"port": free_port()},
        api={"port": free_port()},
        serving=serving,
        prometheus=prometheus,
        alerts={"cooldown_s": 0},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--scrape-interval", type=int, default=2, help="Prometheus scrape interval, seconds")
    parser.add_argument("--evaluation-interval", type=int, default=2, help="Prometheus rule evaluation, seconds")
    parser.add_argument("--group-wait", type=int, default=1, help="Alertmanager webhook route group_wait, seconds")
    parser.add_argument(
        "--group-interval", type=int, default=10, help="Alertmanager webhook route group_interval, seconds"
    )
    parser.add_argument("--poll-interval", type=float, default=2.0, help="server alias poll, seconds")
    parser.add_argument(
        "--production-intervals", action="store_true", help="the production defaults instead of the flags above"
    )
    parser.add_argument("--requests", type=int, default=400, help="drifted requests per run")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second of the drifted traffic")
    parser.add_argument(
        "--end",
        type=datetime.fromisoformat,
        help="where the generated data ends, ISO date (default: today at midnight UTC, as `make demo`)",
    )
    parser.add_argument(
        "--same-stack",
        action="store_true",
        help="every run on one stack, as a second `make demo` (runs after the first restore the pre-drift champion "
        "and resolve the earlier alert first), instead of a stack (state, first champion) per run",
    )
    parser.add_argument("--state-dir", type=Path, help="keep the stack's state here (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=Path(".mlplatform/bench-loop/results.json"))
    args = parser.parse_args()
    intervals = (
        None
        if args.production_intervals
        else Intervals(
            scrape_s=args.scrape_interval,
            evaluation_s=args.evaluation_interval,
            group_wait_s=args.group_wait,
            group_interval_s=args.group_interval,
            poll_s=args.poll_interval,
        )
    )

    from mlplatform.demo.fraud_data import generate
    from mlplatform.loop.driver import LoopOptions

    end = args.end.replace(tzinfo=args.end.tzinfo or UTC) if args.end else None
    options = LoopOptions(model="fraud_detector", end=end, requests=args.requests, rate=args.rate)
    fraud_data = partial(generate, customers=args.customers, days=args.days)
    production = production_intervals()
    print(f"intervals: {(intervals or production).describe()}", flush=True)
    results: list[Any] = []
    stalled: str | None = None
    stacks = [args.runs] if args.same_stack else [1] * args.runs
    for number, runs in enumerate(stacks, 1):
        state_dir = args.state_dir / f"stack-{number}" if args.state_dir and len(stacks) > 1 else args.state_dir
        stalled = run_on_one_stack(state_dir, intervals, options, fraud_data, runs, results, first=len(results) + 1)
        if stalled:
            break
    if results:
        report(results, args, intervals or production, production)
    if stalled:
        raise SystemExit(f"run {len(results) + 1} stalled (the runs before it are reported above): {stalled}")


def run_on_one_stack(
    state_dir: Path | None,
    intervals: Intervals | None,
    options: Any,
    fraud_data: Any,
    runs: int,
    results: list[Any],
    first: int,
) -> str | None:
    """Start a stack, prepare the world, run the loop ``runs`` times on it (appending to ``results``), stop it;
    returns the message of a run that stalled (and stops there), else None."""
    from mlplatform.deploy.local import LocalProcessDeployer
    from mlplatform.loop.driver import prepare, run_loop
    from mlplatform.loop.timeline import LoopStalledError
    from mlplatform.stack.embedded import EmbeddedStack

    with contextlib.ExitStack() as cleanup:
        scratch = state_dir or Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="mlp-bench-loop-")))
        settings = bench_settings(scratch / "state", intervals)
        try:
            prepare(settings, options, fraud_data, say=lambda message: print(f"  {message}", flush=True))
            for run in range(first, first + runs):
                print(f"run {run}", flush=True)
                try:
                    result = run_loop(
                        settings,
                        options,
                        fraud_data,
                        on_step=lambda s: print(f"  {s.name:<22} {s.seconds:6.1f}s  {s.detail}", flush=True),
                    )
                except LoopStalledError as error:
                    print(f"  stalled: {error}", flush=True)
                    return str(error)
                print(f"  {result.outcome}: {result.message}; total {result.total_seconds:.1f}s", flush=True)
                results.append(result)
        finally:
            LocalProcessDeployer(settings).undeploy(options.model)
            EmbeddedStack(settings).down()
    return None


def report(results: list[Any], args: argparse.Namespace, intervals: Intervals, production: Intervals) -> None:
    names = list(dict.fromkeys(step.name for result in results for step in result.steps))  # runs may differ
    medians = {
        name: statistics.median(step.seconds for result in results if (step := result.step(name)) is not None)
        for name in names
    }
    loops = [result.loop_seconds for result in results if result.loop_seconds is not None]
    print(
        f"\nmedian of {len(results)} runs ({args.customers} customers, {args.days} days, "
        f"{args.requests} drifted requests at {args.rate:g}/s)"
    )
    for name, seconds in medians.items():
        print(f"  {name:<22} {seconds:6.1f}s")
    print(f"  {'total':<22} {statistics.median(r.total_seconds for r in results):6.1f}s")
    if loops:
        print(
            f"  first drifted request -> new champion serving: median {statistics.median(loops):.1f}s, "
            f"runs {[round(x, 1) for x in loops]}"
        )
    print(f"  with {intervals.describe()}")
    if intervals != production:
        print(f"  (production defaults: {production.describe()})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "customers": args.customers,
                "days": args.days,
                "same_stack": args.same_stack,
                "requests": args.requests,
                "rate": args.rate,
                "intervals": asdict(intervals),
                "production_intervals": asdict(production),
                "runs": [
                    {
                        "outcome": r.outcome,
                        "total_s": r.total_seconds,
                        "loop_s": r.loop_seconds,
                        "steps": {s.name: s.seconds for s in r.steps},
                    }
                    for r in results
                ],
                "median_step_s": medians,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
