"""Serving latency and throughput: both platform backends and the bare model, in one run on one machine state.

Usage: uv run python benchmarks/serving.py [--duration 20] [--rate 200] [--batch-rate 40] [--reps 3]
                                           [--backends kserve bentoml] [--cpu-split]

What it does:
1. Builds a world once under ``.mlplatform/bench-serving`` (demo data ending today, Feast apply + materialize into
   the sqlite online store, a real ``mlflow server``, one trained champion) and reuses it on later runs.
2. For each backend: ``LocalProcessDeployer`` starts the real server (feature lookup, prediction log, metrics all
   on), a warm-up, then per repetition an open-loop run of single-entity requests at ``--rate`` and one of
   32-entity batches at ``--batch-rate`` (``benchmarks/loadgen.py`` in its own process).
3. The bare baseline: the same model behind a minimal Starlette app with the features inline.
4. Prints a table of medians (min-max over repetitions), with the p99 as a ratio of the bare server's (the
   platform's overhead) and the servers' CPU per single-entity request (process tree, from ``psutil``), and
   writes ``results.json`` next to the world.

With ``--cpu-split`` (default on machines with 2+ cores) servers run on CPU 0 and the load generator on CPU 1.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORLD = ROOT / ".mlplatform" / "bench-serving"
MODEL = "fraud_detector"
BATCH = 32


def settings_for(mlflow_port: int, serving_port: int) -> Any:
    from mlplatform.config import get_settings

    return get_settings(
        state_dir=WORLD / "state",
        specs_dir=ROOT / "pipelines" / "specs",
        feast={"repo_path": ROOT / "feature_repo", "project": "bench_serving"},
        mlflow={"port": mlflow_port},
        serving={"port": serving_port, "poll_interval_s": 30.0},
    )


def build_world(settings: Any) -> None:
    """Data, features, MLflow and a champion: skipped where already present."""
    from mlplatform.demo.fraud_data import generate
    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry
    from mlplatform.training.pipeline import TrainingRequest, run_all

    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if not (settings.data_dir / "transactions.parquet").exists():
        print("generating data ...", flush=True)
        generate(settings.data_dir, end=end)
    features = FeatureStoreAdapter(settings)
    features.apply()
    features.materialize(datetime.now(UTC))
    if ModelRegistry(settings).alias_holder(MODEL, CHAMPION) is None:
        print("training the champion ...", flush=True)
        run_all(settings, TrainingRequest(model=MODEL, run_key=f"bench/{time.time():.0f}", actor="benchmark"))


def request_entities(settings: Any, count: int) -> list[dict[str, Any]]:
    from mlplatform.serving.client import recent_entities
    from mlplatform.specs import find_spec

    spec = find_spec(settings.specs_dir, MODEL)
    return recent_entities(settings.data_dir / spec.label.source, spec.entity_key, spec.label.request_columns, count)


def bare_bodies(settings: Any, entities: list[dict[str, Any]], model_inputs: list[str]) -> tuple[list[Any], list[Any]]:
    """Inline feature vectors for the same entities (looked up once, up front), single and batched."""
    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.specs import find_spec

    spec = find_spec(settings.specs_dir, MODEL)
    online = FeatureStoreAdapter(settings).online_features(spec.features.service, entities)
    rows = []
    for index, entity in enumerate(entities):
        values = {**{name: online[name][index] for name in online}, **entity}
        rows.append([float("nan") if values.get(name) is None else float(values[name]) for name in model_inputs])
    rows = [[0.0 if value != value else value for value in row] for row in rows]  # JSON has no NaN
    singles = [{"features": [row]} for row in rows]
    batches = [{"features": rows[i : i + BATCH]} for i in range(0, len(rows) - BATCH + 1, BATCH)]
    return singles, batches


def platform_bodies(backend: str, entities: list[dict[str, Any]]) -> tuple[list[Any], list[Any]]:
    key = "instances" if backend == "kserve" else "entities"
    singles = [{key: [entity]} for entity in entities]
    batches = [{key: entities[i : i + BATCH]} for i in range(0, len(entities) - BATCH + 1, BATCH)]
    return singles, batches


def load(url: str, bodies: list[Any], rate: float, duration: float, cpu_split: bool) -> dict[str, Any]:
    path = WORLD / "bodies.json"
    path.write_text(json.dumps(bodies))
    command = [sys.executable, str(ROOT / "benchmarks" / "loadgen.py"), url, str(path), "--rate", str(rate)]
    command += ["--duration", str(duration)]
    if cpu_split:
        command = ["taskset", "-c", "1", *command]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU of a server and all its children (BentoML runs an arbiter and a worker)."""
    import psutil

    leader = psutil.Process(pid)
    total = 0.0
    for process in [leader, *leader.children(recursive=True)]:
        times = process.cpu_times()
        total += times.user + times.system
    return total


def measure(
    name: str, predict_url: str, bodies: tuple[list[Any], list[Any]], args: argparse.Namespace, pid: int
) -> list[dict[str, Any]]:
    """Warm-up, then per repetition a single-entity and a batch run; server CPU per single request as well."""
    singles, batches = bodies
    load(predict_url, singles, rate=50, duration=3, cpu_split=args.cpu_split)  # warm-up
    rows = []
    for repetition in range(args.reps):
        cpu_before = server_cpu_seconds(pid)
        single = load(predict_url, singles, args.rate, args.duration, args.cpu_split)
        single["server_cpu_ms"] = (server_cpu_seconds(pid) - cpu_before) * 1000.0 / max(single["ok"], 1)
        batch = load(predict_url, batches, args.batch_rate, args.duration, args.cpu_split)
        print(
            f"  {name} rep {repetition + 1}: single p99 {single['p99_ms']:.1f} ms, "
            f"{single['server_cpu_ms']:.2f} ms CPU/request, batch p99 {batch['p99_ms']:.1f} ms"
        )
        rows.append({"single": single, "batch": batch})
    return rows


def summary(values: list[float], digits: int = 1) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def print_table(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace) -> None:
    print(
        f"\nsingle entity at {args.rate:.0f} req/s; batches of {BATCH} at {args.batch_rate:.0f} req/s; "
        f"{args.reps} x {args.duration:.0f} s; median (min-max)"
    )
    header = (
        f"{'server':<10} {'p50 ms':>18} {'p95 ms':>18} {'p99 ms':>18} {'p99/bare':>9} {'CPU ms/req':>16} "
        f"{'failed':>7} {'batch p99 ms':>18} {'entities/s':>20}"
    )
    print(header)
    bare_p99 = statistics.median(row["single"]["p99_ms"] for row in results["bare"]) if "bare" in results else None
    for name, rows in results.items():
        single = [row["single"] for row in rows]
        batch = [row["batch"] for row in rows]
        p99 = [s["p99_ms"] for s in single]
        ratio = f"{statistics.median(p99) / bare_p99:.2f}" if bare_p99 else "-"
        print(
            f"{name:<10} {summary([s['p50_ms'] for s in single]):>18} {summary([s['p95_ms'] for s in single]):>18} "
            f"{summary(p99):>18} {ratio:>9} {summary([s['server_cpu_ms'] for s in single], 2):>16} "
            f"{sum(s['failed'] for s in single):>7} {summary([b['p99_ms'] for b in batch]):>18} "
            f"{summary([b['throughput_rps'] * BATCH for b in batch]):>20}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--batch-rate", type=float, default=40.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--backends", nargs="+", default=["kserve", "bentoml"], choices=["kserve", "bentoml"])
    parser.add_argument("--cpu-split", action=argparse.BooleanOptionalAction, default=(os.cpu_count() or 1) >= 2)
    args = parser.parse_args()

    from mlplatform.deploy.local import LocalProcessDeployer
    from mlplatform.stack.embedded import mlflow_argv, mlflow_dir, mlflow_env
    from mlplatform.stack.supervisor import Supervisor
    from tests.conftest import free_port

    settings = settings_for(free_port(), free_port())
    supervisor = Supervisor(settings.state_dir)
    if args.cpu_split:
        os.sched_setaffinity(0, {0})  # servers started from here inherit CPU 0
    supervisor.start("mlflow", mlflow_argv(settings), mlflow_env(settings), cwd=mlflow_dir(settings))
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        supervisor.wait_healthy("mlflow", f"{settings.mlflow.resolved_tracking_uri()}/health", timeout=120)
        build_world(settings)
        entities = request_entities(settings, 2000)
        deployer = LocalProcessDeployer(settings)
        for backend in args.backends:
            print(f"{backend}: starting", flush=True)
            deployment = deployer.deploy(MODEL, backend)  # type: ignore[arg-type]
            try:
                pid = supervisor.status(f"serve-{MODEL}").pid
                assert pid is not None, f"{backend} server has no pid"
                bodies = platform_bodies(backend, entities)
                results[backend] = measure(backend, deployment.predict_url, bodies, args, pid)
            finally:
                deployer.undeploy(MODEL)
        results["bare"] = run_bare(settings, entities, args)
    finally:
        supervisor.stop("mlflow")
    (WORLD / "results.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print_table(results, args)


def run_bare(settings: Any, entities: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    import mlflow.artifacts

    from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry, mlflow_client
    from mlplatform.stack.supervisor import Supervisor
    from mlplatform.training.pipeline import INPUTS_TAG
    from tests.conftest import free_port

    champion = ModelRegistry(settings).alias_holder(MODEL, CHAMPION)
    assert champion is not None
    model_inputs = json.loads(mlflow_client(settings).get_run(str(champion.run_id)).data.tags[INPUTS_TAG])
    mlflow.set_tracking_uri(settings.mlflow.resolved_tracking_uri())
    mlflow.set_registry_uri(settings.mlflow.resolved_tracking_uri())
    model_dir = mlflow.artifacts.download_artifacts(
        f"models:/{MODEL}/{champion.version}",
        dst_path=str(WORLD / "bare-model"),
        tracking_uri=settings.mlflow.resolved_tracking_uri(),
    )
    port = free_port()
    supervisor = Supervisor(settings.state_dir)
    argv = [sys.executable, str(ROOT / "benchmarks" / "bare_server.py"), model_dir, "--port", str(port)]
    supervisor.start("bare", argv, dict(os.environ))
    try:
        supervisor.wait_healthy("bare", f"http://127.0.0.1:{port}/readyz", timeout=120)
        print("bare: started", flush=True)
        pid = supervisor.status("bare").pid
        assert pid is not None
        bodies = bare_bodies(settings, entities, model_inputs)
        return measure("bare", f"http://127.0.0.1:{port}/predict", bodies, args, pid)
    finally:
        supervisor.stop("bare")


if __name__ == "__main__":
    main()
