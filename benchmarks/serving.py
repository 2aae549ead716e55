"""Serving latency and throughput: the platform's two servers, the stock compositions and the bare model.

Usage: uv run python benchmarks/serving.py [--rates 200 400] [--batch-rate 100] [--duration 15] [--reps 3]
           [--servers kserve bentoml stock-kserve stock-bentoml bare]
           [--sweep 100 200 300 400 500 600 800 1000 1200 1600] [--sweep-duration 10] [--p99-target-ms 10]
           [--cpu-split]
The defaults are the run docs/performance.md reports (about 25 minutes; ``make bench-serving``); ``--sweep`` with
no rates skips the sweep and the plot.

What it does, in one run on one machine state:
1. Builds a world once under ``.mlplatform/bench-serving`` (demo data ending today, Feast apply + materialize into
   the sqlite online store, a real ``mlflow server``, one trained champion) and reuses it on later runs.
2. Starts each server in turn as a real process:
   - ``kserve``, ``bentoml``: the platform's servers through ``LocalProcessDeployer`` (feature lookup, prediction
     log and metrics all on);
   - ``stock-kserve``, ``stock-bentoml``: what a user wires by hand, the library's own server + a Feast SDK call +
     the scikit-learn model (``benchmarks/stock_kserve.py``, ``benchmarks/stock_bentoml.py``);
   - ``bare``: the same model behind a minimal Starlette app with the features inline, scoring as the platform's
     Predictor does (``benchmarks/bare_server.py``).
3. Per server: a warm-up, then per repetition an open-loop run of single-entity requests at each of ``--rates`` and
   one of 32-entity batches at ``--batch-rate`` (``benchmarks/loadgen.py``: fixed schedule, its own process); the
   server's CPU per request from its process tree.  Then the sweep: single-entity runs at rising rates give the
   highest rate whose p99 stays within ``--p99-target-ms`` with no failures, and a latency-vs-rate plot
   (``docs/images/serving-latency-vs-rate.png``).
4. Prints a table of medians (min-max over repetitions), the p99 as a ratio of the bare server's, and writes
   ``results.json`` next to the world.

With ``--cpu-split`` (default on machines with 2+ cores) servers run on CPU 0 and the load generator on CPU 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORLD = ROOT / ".mlplatform" / "bench-serving"
MODEL = "fraud_detector"
BATCH = 32
SERVERS = ("kserve", "bentoml", "stock-kserve", "stock-bentoml", "bare")
SWEEP_RATES = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 800.0, 1000.0, 1200.0, 1600.0)


def settings_for(mlflow_port: int, serving_port: int) -> Any:
    from mlplatform.config import get_settings

    return get_settings(
        state_dir=WORLD / "state",
        bundled_models_dir=ROOT / "pipelines" / "models",
        feast={"repo_path": ROOT / "feature_repo", "project": "bench_serving"},
        mlflow={"port": mlflow_port},
        serving={"port": serving_port, "poll_interval_s": 2.0},
    )


def build_world(settings: Any) -> None:
    """The platform DB's schema, data, features, MLflow and a champion: skipped where already present."""
    from mlplatform.demo.fraud_data import generate
    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry
    from mlplatform.stack.embedded import upgrade_platform_db
    from mlplatform.training.pipeline import TrainingRequest, run_all

    upgrade_platform_db(settings)  # the registry records alias moves there
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if not (settings.model_data_dir(MODEL) / "transactions.parquet").exists():
        print("generating data ...", flush=True)
        generate(settings.model_data_dir(MODEL), end=end)
    features = FeatureStoreAdapter(settings)
    features.apply()
    features.materialize(datetime.now(UTC))
    registry = ModelRegistry(settings)
    if registry.alias_holder(MODEL, CHAMPION) is None:
        print("training the champion ...", flush=True)
        run_all(settings, TrainingRequest(model=MODEL, run_key=f"bench/{time.time():.0f}", actor="benchmark"))
    if len(registry.versions(MODEL)) < 2:  # a second version for the swap-under-load run
        print("training a second version ...", flush=True)
        request = TrainingRequest(
            model=MODEL, run_key=f"bench/{time.time():.0f}", actor="benchmark", estimator_params={"max_iter": 150}
        )
        run_all(settings, request)


def request_entities(settings: Any, count: int) -> list[dict[str, Any]]:
    from mlplatform.loop.traffic import sample_requests
    from mlplatform.specs import find_spec

    return sample_requests(settings, find_spec(settings.model_roots, MODEL), count)


def bare_bodies(settings: Any, entities: list[dict[str, Any]], model_inputs: list[str]) -> tuple[list[Any], list[Any]]:
    """Inline feature vectors for the same entities (looked up once, up front), single and batched."""
    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.specs import find_spec

    spec = find_spec(settings.model_roots, MODEL)
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
    key = "instances" if backend.endswith("kserve") else "entities"
    singles = [{key: [entity]} for entity in entities]
    batches = [{key: entities[i : i + BATCH]} for i in range(0, len(entities) - BATCH + 1, BATCH)]
    return singles, batches


ACCEPTED: dict[str, int] = {}
"""Entity predictions answered with 200 per URL, to compare with the prediction log's records."""


def start_load(url: str, bodies: list[Any], rate: float, duration: float, cpu_split: bool) -> Any:
    """The load generator in its own process (on CPU 1 with ``cpu_split``)."""
    path = WORLD / f"bodies-{len(bodies)}-{abs(hash(url))}.json"
    path.write_text(json.dumps(bodies))
    command = [sys.executable, str(ROOT / "benchmarks" / "loadgen.py"), url, str(path), "--rate", str(rate)]
    command += ["--duration", str(duration)]
    if cpu_split:
        command = ["taskset", "-c", "1", *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.entities_per_request = _entities_per_request(bodies[0])  # type: ignore[attr-defined]
    process.url = url  # type: ignore[attr-defined]
    return process


def finish_load(process: Any) -> dict[str, Any]:
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed: {stderr[-2000:]}")
    result = dict(json.loads(stdout.strip().splitlines()[-1]))
    ACCEPTED[process.url] = ACCEPTED.get(process.url, 0) + result["ok"] * process.entities_per_request
    return result


def _entities_per_request(body: dict[str, Any]) -> int:
    return len(next(iter(body.values())))


def load(url: str, bodies: list[Any], rate: float, duration: float, cpu_split: bool) -> dict[str, Any]:
    return finish_load(start_load(url, bodies, rate, duration, cpu_split))


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU of a server and all its children (BentoML runs an arbiter and a worker)."""
    import psutil

    leader = psutil.Process(pid)
    total = 0.0
    for process in [leader, *leader.children(recursive=True)]:
        times = process.cpu_times()
        total += times.user + times.system
    return total


@dataclass
class Server:
    """A running server under test: where to send requests, what to send, whose CPU to count."""

    name: str
    url: str
    bodies: tuple[list[Any], list[Any]]
    pid: int
    accepted: int | None = None
    logged: int | None = None


def count_logged(settings: Any, start: datetime, end: datetime) -> int:
    from mlplatform.predictions.reader import read_prediction_log

    return len(read_prediction_log(settings, MODEL, start, end))


def single_run(server: Server, rate: float, duration: float, cpu_split: bool) -> dict[str, Any]:
    cpu_before = server_cpu_seconds(server.pid)
    result = load(server.url, server.bodies[0], rate, duration, cpu_split)
    result["server_cpu_ms"] = (server_cpu_seconds(server.pid) - cpu_before) * 1000.0 / max(result["ok"], 1)
    result["rate"] = rate
    return result


def swap_under_load(server: Server, settings: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Single-entity load at the highest rate while ``champion`` moves to the other version and back: how many
    requests failed, and which versions answered."""
    from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry

    registry = ModelRegistry(settings)
    current = registry.alias_holder(MODEL, CHAMPION)
    assert current is not None
    other = next(v.version for v in registry.versions(MODEL) if v.version != current.version)
    rate, duration = max(args.rates), args.duration
    generator = start_load(server.url, server.bodies[0], rate, duration, args.cpu_split)
    time.sleep(duration / 4)
    registry.move_alias(MODEL, CHAMPION, other, actor="benchmark", reason="swap under load")
    time.sleep(duration / 2)
    registry.move_alias(MODEL, CHAMPION, current.version, actor="benchmark", reason="swap back")
    result = finish_load(generator)
    result["versions"] = sorted({current.version, other})
    result["swaps"] = swaps_counted(server)
    print(
        f"  {server.name} swap under load @{rate:.0f}/s: {result['failed']} failed of {result['sent']}, "
        f"{result['swaps']:.0f} swaps counted by the server",
        flush=True,
    )
    return result


def swaps_counted(server: Server) -> float:
    """The server's own count of model swaps (``mlplatform_serving_model_swaps_total``)."""
    from urllib.parse import urlsplit

    import httpx

    parts = urlsplit(server.url)
    text = httpx.get(f"{parts.scheme}://{parts.netloc}/metrics", timeout=10).text
    prefix = "mlplatform_serving_model_swaps_total{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def measure(server: Server, settings: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Warm-up; per repetition single-entity runs at every rate and a batch run; the optional sweep; for the
    platform's servers a model swap under load."""
    load(server.url, server.bodies[0], rate=50, duration=3, cpu_split=args.cpu_split)
    singles: dict[str, list[dict[str, Any]]] = {str(rate): [] for rate in args.rates}
    batches = []
    for repetition in range(args.reps):
        for rate in args.rates:
            single = single_run(server, rate, args.duration, args.cpu_split)
            singles[str(rate)].append(single)
            print(
                f"  {server.name} rep {repetition + 1} @{rate:.0f}/s: p99 {single['p99_ms']:.1f} ms, "
                f"{single['failed']} failed, {single['server_cpu_ms']:.2f} ms CPU/request",
                flush=True,
            )
        batch = load(server.url, server.bodies[1], args.batch_rate, args.duration, args.cpu_split)
        batches.append(batch)
        print(f"  {server.name} rep {repetition + 1} batches: p99 {batch['p99_ms']:.1f} ms", flush=True)
    found = sweep_rates(server, args) if args.sweep else None
    swap = swap_under_load(server, settings, args) if server.name in ("kserve", "bentoml") else None
    return {"singles": singles, "batches": batches, "sweep": found, "swap": swap}


def sweep_rates(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    """Single-entity runs at rising rates; the sustainable rate is the highest one below which every run kept
    p99 within the target with no failures.  A sweep rather than a bisection: one noisy short run cannot send a
    bisection off course, and the points also draw the latency-vs-rate curve."""
    points = []
    sustained = 0.0
    failed_once = False
    for rate in args.sweep:
        point = single_run(server, rate, args.sweep_duration, args.cpu_split)
        points.append(point)
        passed = point["p99_ms"] <= args.p99_target_ms and point["failed"] == 0
        print(f"  {server.name} sweep @{rate:.0f}/s: p99 {point['p99_ms']:.1f} ms -> {'ok' if passed else 'over'}")
        failed_once = failed_once or not passed
        sustained = rate if passed and not failed_once else sustained
        if point["p99_ms"] > 20 * args.p99_target_ms:
            break  # saturated: higher rates only queue more
        load(server.url, server.bodies[0], rate=50, duration=2, cpu_split=args.cpu_split)  # drain any backlog
    return {"max_rate": sustained, "probes": points}


def summary(values: list[float], digits: int = 1) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def print_table(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\n{args.reps} x {args.duration:.0f} s per cell; median (min-max); single-entity requests unless noted")
    header = (
        f"{'server':<14} {'rate/s':>6} {'p50 ms':>18} {'p99 ms':>20} {'p99/bare':>8} {'CPU ms/req':>17} {'failed':>6}"
    )
    print(header)
    for rate in args.rates:
        bare = results.get("bare", {}).get("singles", {}).get(str(rate))
        bare_p99 = statistics.median(run["p99_ms"] for run in bare) if bare else None
        for name, result in results.items():
            runs = result["singles"][str(rate)]
            p99 = [run["p99_ms"] for run in runs]
            ratio = f"{statistics.median(p99) / bare_p99:.2f}" if bare_p99 else "-"
            print(
                f"{name:<14} {rate:>6.0f} {summary([run['p50_ms'] for run in runs]):>18} {summary(p99):>20} "
                f"{ratio:>8} {summary([run['server_cpu_ms'] for run in runs], 2):>17} "
                f"{sum(run['failed'] for run in runs):>6}"
            )
    offered = args.batch_rate * BATCH
    print(f"\nbatches of {BATCH} at {args.batch_rate:.0f}/s ({offered:.0f} entity predictions/s offered)")
    print(f"{'server':<14} {'p50 ms':>18} {'p99 ms':>20} {'entities/s':>24} {'failed':>6}")
    for name, result in results.items():
        runs = result["batches"]
        print(
            f"{name:<14} {summary([run['p50_ms'] for run in runs]):>18} {summary([run['p99_ms'] for run in runs]):>20} "
            f"{summary([run['throughput_rps'] * BATCH for run in runs]):>24} {sum(run['failed'] for run in runs):>6}"
        )
    print("\nmodel swap under load (champion moved to the other version and back) and the prediction log")
    print(f"{'server':<14} {'swaps':>6} {'failed':>8} {'sent':>8} {'answered':>10} {'logged':>10}")
    for name, result in results.items():
        if result.get("swap"):
            swap = result["swap"]
            print(
                f"{name:<14} {swap['swaps']:>6.0f} {swap['failed']:>8} {swap['sent']:>8} {result['accepted']:>10} "
                f"{result['logged']:>10}"
            )
    if args.sweep:
        print(f"\nhighest single-entity rate with p99 <= {args.p99_target_ms:.0f} ms and no failures (sweep)")
        for name, result in results.items():
            print(f"{name:<14} {result['sweep']['max_rate']:>6.0f}/s")


def plot(results: dict[str, dict[str, Any]], args: argparse.Namespace, path: Path) -> None:
    """p99 against offered rate for every server: the median of all runs at a rate, bars from min to max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5))
    for name, result in results.items():
        by_rate: dict[float, list[float]] = {}
        points = [run for runs in result["singles"].values() for run in runs]
        for run in points + (result["sweep"]["probes"] if result.get("sweep") else []):
            by_rate.setdefault(run["rate"], []).append(run["p99_ms"])
        rates = sorted(by_rate)
        medians = [statistics.median(by_rate[rate]) for rate in rates]
        spread = [
            [median - min(by_rate[rate]) for rate, median in zip(rates, medians, strict=True)],
            [max(by_rate[rate]) - median for rate, median in zip(rates, medians, strict=True)],
        ]
        axis.errorbar(rates, medians, yerr=spread, marker="o", capsize=3, label=name)
    axis.axhline(args.p99_target_ms, color="grey", linestyle="--", linewidth=1, label=f"{args.p99_target_ms:.0f} ms")
    axis.set(xlabel="offered single-entity requests/s", ylabel="p99 latency (ms, log)", yscale="log")
    axis.set_title("Serving latency vs rate (feature lookup included; bare has features inline)")
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


@contextlib.contextmanager
def platform_server(name: str, settings: Any, entities: list[dict[str, Any]], supervisor: Any) -> Iterator[Server]:
    from mlplatform.deploy.local import LocalProcessDeployer

    deployer = LocalProcessDeployer(settings)
    started = datetime.now(UTC)
    deployment = deployer.deploy(MODEL, name)  # type: ignore[arg-type]
    try:
        pid = supervisor.status(f"serve-{MODEL}").pid
        assert pid is not None, f"{name} server has no pid"
        server = Server(name, deployment.predict_url, platform_bodies(name, entities), pid)
        yield server
    finally:
        deployer.undeploy(MODEL)  # graceful: the server flushes its prediction log before it exits
    server.logged = count_logged(settings, started, datetime.now(UTC))
    server.accepted = ACCEPTED.get(deployment.predict_url, 0)
    print(f"  {name}: {server.accepted} entity predictions answered, {server.logged} in the prediction log")


@contextlib.contextmanager
def process_server(
    name: str, argv: list[str], env: dict[str, str], port: int, paths: tuple[str, str], bodies: Any, supervisor: Any
) -> Iterator[Server]:
    """A benchmark-only server (bare or stock) under the supervisor; ``paths`` are (ready probe, predict path)."""
    supervisor.start(name, argv, env, cwd=ROOT / "benchmarks")
    try:
        supervisor.wait_healthy(name, f"http://127.0.0.1:{port}{paths[0]}", timeout=180)
        pid = supervisor.status(name).pid
        assert pid is not None
        yield Server(name, f"http://127.0.0.1:{port}{paths[1]}", bodies, pid)
    finally:
        supervisor.stop(name)


def champion_files(settings: Any) -> tuple[str, list[str]]:
    """The champion's model directory (downloaded once) and its input columns in fitted order."""
    import mlflow.artifacts

    from mlplatform.registry.lineage import Lineage
    from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry, mlflow_client

    champion = ModelRegistry(settings).alias_holder(MODEL, CHAMPION)
    assert champion is not None
    model_inputs = json.loads(mlflow_client(settings).get_run(str(champion.run_id)).data.tags[Lineage.MODEL_INPUTS_TAG])
    target = WORLD / f"model-v{champion.version}"
    if not (target / "MLmodel").is_file():
        mlflow.artifacts.download_artifacts(
            f"models:/{MODEL}/{champion.version}",
            dst_path=str(target),
            tracking_uri=settings.mlflow.resolved_tracking_uri(),
        )
    return str(target), model_inputs


def start_server(name: str, settings: Any, entities: list[dict[str, Any]], supervisor: Any) -> Any:
    """The context manager that runs server ``name``."""
    from tests.support.environment import free_port

    if name in ("kserve", "bentoml"):
        return platform_server(name, settings, entities, supervisor)
    model_dir, inputs = champion_files(settings)
    port = free_port()
    env = {**os.environ, **settings.child_env(), "BENTOML_DO_NOT_TRACK": "true"}
    here = ROOT / "benchmarks"
    if name == "bare":
        argv = [sys.executable, str(here / "bare_server.py"), model_dir, "--port", str(port)]
        bodies = bare_bodies(settings, entities, inputs)
        return process_server(name, argv, env, port, ("/readyz", "/predict"), bodies, supervisor)
    if name == "stock-kserve":
        argv = [sys.executable, str(here / "stock_kserve.py"), model_dir, "--inputs", ",".join(inputs)]
        argv += ["--http_port", str(port), "--grpc_port", str(free_port())]
        paths = (f"/v1/models/{MODEL}", f"/v1/models/{MODEL}:predict")
        return process_server(name, argv, env, port, paths, platform_bodies(name, entities), supervisor)
    env.update({"STOCK_MODEL_DIR": model_dir, "STOCK_MODEL_INPUTS": ",".join(inputs)})
    argv = [sys.executable, "-m", "bentoml", "serve", "stock_bentoml:StockService", "--port", str(port)]
    argv += ["--host", "127.0.0.1"]
    return process_server(name, argv, env, port, ("/readyz", "/predict"), platform_bodies(name, entities), supervisor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--rates", type=float, nargs="+", default=[200.0, 400.0])
    parser.add_argument("--batch-rate", type=float, default=100.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    parser.add_argument(
        "--sweep", type=float, nargs="*", default=list(SWEEP_RATES), help="rates for the max-rate sweep and plot"
    )
    parser.add_argument("--p99-target-ms", type=float, default=10.0)
    parser.add_argument("--sweep-duration", type=float, default=10.0)
    parser.add_argument("--cpu-split", action=argparse.BooleanOptionalAction, default=(os.cpu_count() or 1) >= 2)
    args = parser.parse_args()

    from mlplatform.stack.embedded import mlflow_argv, mlflow_env
    from mlplatform.stack.supervisor import Supervisor
    from tests.support.environment import free_port

    settings = settings_for(free_port(), free_port())
    # Every MLflow call here and in the servers started from here talks to the world's server; MLflow's default
    # would create ./mlflow.db.
    os.environ["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_REGISTRY_URI"] = settings.mlflow.resolved_tracking_uri()
    supervisor = Supervisor(settings.state_dir)
    if args.cpu_split:
        os.sched_setaffinity(0, {0})  # servers started from here inherit CPU 0
    supervisor.start("mlflow", mlflow_argv(settings), mlflow_env(settings), cwd=settings.layout.mlflow_dir)
    results: dict[str, dict[str, Any]] = {}
    try:
        supervisor.wait_healthy("mlflow", f"{settings.mlflow.resolved_tracking_uri()}/health", timeout=120)
        build_world(settings)
        entities = request_entities(settings, 2000)
        for name in args.servers:
            print(f"{name}: starting", flush=True)
            with start_server(name, settings, entities, supervisor) as server:
                results[name] = measure(server, settings, args)
            results[name]["accepted"], results[name]["logged"] = server.accepted, server.logged
    finally:
        supervisor.stop("mlflow")
    (WORLD / "results.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    print_table(results, args)
    if args.sweep:
        plot(results, args, ROOT / "docs" / "images" / "serving-latency-vs-rate.png")


if __name__ == "__main__":
    main()
