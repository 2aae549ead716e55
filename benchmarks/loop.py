"""Closed-loop time: from the first drifted request to the new champion serving, step by step.

Usage: uv run python benchmarks/loop.py [--runs 3] [--customers 2000] [--days 90] [--scrape-interval 15]

Starts its own embedded stack (MLflow, Airflow, platform API, Prometheus, Alertmanager) in a temporary state
directory on free ports, prepares the demo world once (``mlplatform.loop.driver.prepare``: data, features, a first
champion, the model served), then runs the loop ``--runs`` times with ``mlplatform.loop.driver.run_loop`` (what
`mlplatform loop run` calls).  Each run after the first starts by restoring the pre-drift champion and resolving
the earlier alert, as a second `make demo` would (that includes waiting for Alertmanager to deliver the
resolution, up to its 5 min group_interval, before the drifted traffic); the retrain policy's cooldown is 0 so
every run may retrain.

Prints each run's timeline, then per step the median seconds over the runs, the median total and the median of
the headline figure (first drifted request -> new champion serving); writes JSON to ``--out``.  Needs the Debian
packages prometheus and prometheus-alertmanager.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_settings(state_dir: Path, scrape_interval: int) -> Any:
    from mlplatform.config import get_settings

    return get_settings(
        state_dir=state_dir,
        bundled_models_dir=REPO / "pipelines" / "models",
        feast={"repo_path": REPO / "feature_repo", "project": "mlp_bench_loop"},
        airflow={"dags_folder": REPO / "pipelines" / "dags", "port": free_port()},
        mlflow={"port": free_port()},
        api={"port": free_port()},
        serving={"port": free_port()},
        prometheus={"port": free_port(), "alertmanager_port": free_port(), "scrape_interval_s": scrape_interval},
        alerts={"cooldown_s": 0},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--scrape-interval", type=int, default=15, help="Prometheus scrape/evaluation, seconds")
    parser.add_argument("--out", type=Path, default=Path(".mlplatform/bench-loop/results.json"))
    args = parser.parse_args()

    from mlplatform.demo.fraud_data import generate
    from mlplatform.deploy.local import LocalProcessDeployer
    from mlplatform.loop.driver import LoopOptions, prepare, run_loop
    from mlplatform.stack.embedded import EmbeddedStack

    options = LoopOptions(model="fraud_detector")
    fraud_data = partial(generate, customers=args.customers, days=args.days)
    with tempfile.TemporaryDirectory(prefix="mlp-bench-loop-") as scratch:
        settings = bench_settings(Path(scratch) / "state", args.scrape_interval)
        try:
            prepare(settings, options, fraud_data, say=lambda message: print(f"  {message}", flush=True))
            results = []
            for run in range(1, args.runs + 1):
                print(f"run {run}/{args.runs}", flush=True)
                result = run_loop(
                    settings,
                    options,
                    fraud_data,
                    on_step=lambda s: print(f"  {s.name:<22} {s.seconds:6.1f}s  {s.detail}", flush=True),
                )
                print(f"  {result.outcome}: {result.message}; total {result.total_seconds:.1f}s", flush=True)
                results.append(result)
        finally:
            LocalProcessDeployer(settings).undeploy(options.model)
            EmbeddedStack(settings).down()
    report(results, args)


def report(results: list[Any], args: argparse.Namespace) -> None:
    names = list(dict.fromkeys(step.name for result in results for step in result.steps))  # runs may differ
    medians = {
        name: statistics.median(step.seconds for result in results if (step := result.step(name)) is not None)
        for name in names
    }
    loops = [result.loop_seconds for result in results if result.loop_seconds is not None]
    print(
        f"\nmedian of {len(results)} runs ({args.customers} customers, {args.days} days, "
        f"scrape {args.scrape_interval}s)"
    )
    for name, seconds in medians.items():
        print(f"  {name:<22} {seconds:6.1f}s")
    print(f"  {'total':<22} {statistics.median(r.total_seconds for r in results):6.1f}s")
    if loops:
        print(
            f"  first drifted request -> new champion serving: median {statistics.median(loops):.1f}s, "
            f"runs {[round(x, 1) for x in loops]}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "customers": args.customers,
                "days": args.days,
                "scrape_interval_s": args.scrape_interval,
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
