"""Serving latency and throughput on both profiles: the platform's servers, the stock compositions, two floors.

Usage: uv run python benchmarks/serving.py [--profiles embedded production] [--rates 400 1000]
           [--batch-rate 320] [--duration 7] [--reps 3]
           [--servers bare-store bare kserve bentoml stock-kserve stock-bentoml]
           [--sweep 200 400 ...] [--sweep-duration 5] [--p99-target-ms 10] [--full]
           [--redis 127.0.0.1:6379] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432] [--cpu-split]
The defaults are the run docs/performance.md reports (``make bench-serving``: 25.5 minutes from a fresh clone,
both worlds' build included, on 2026-12-06); ``--full`` is the finer sweep with 5 repetitions of 15 s;
``--sweep`` with no rates skips the sweep and the plot.

What it does, in one run on one machine state:
1. Builds the worlds once under ``.mlplatform/bench-serving`` and reuses them (``benchmarks/serving_world.py``):
   ``embedded`` (the demo data in Feast's sqlite store, parquet prediction log) and ``production`` (a million
   customers materialized into Redis, prediction log and platform DB on PostgreSQL), one MLflow, one champion.
2. Per profile, starts each server in turn as a real process:
   - ``bare-store``: the floor for a server that must fetch features: the bare model server plus one direct read
     of the same features from the same store, nothing else (``benchmarks/bare_store_server.py``);
   - ``kserve``, ``bentoml``: the platform's servers through ``LocalProcessDeployer`` (feature lookup, prediction
     log and metrics all on);
   - ``bare``: the same model with every feature inline (``benchmarks/bare_server.py``); run once, in the first
     profile, since it reads no store;
   - ``stock-kserve``, ``stock-bentoml``: what a user wires by hand, the library's own server + a Feast SDK call +
     the scikit-learn model (``benchmarks/stock_kserve.py``, ``benchmarks/stock_bentoml.py``).
3. Per server: a warm-up, then per repetition an open-loop run of single-entity requests at each of ``--rates`` and
   one of 32-entity batches at ``--batch-rate`` (``benchmarks/loadgen.py``: fixed schedule, its own process); the
   server's CPU per request from its process tree; once a server saturates at a rate (p99 over 20x the target),
   its higher rates are not run (they would only queue more, for longer); a server saturated at the lowest rate
   (the stock compositions) runs no batches and no second repetition.  Then the sweep: single-entity runs at
   rising rates, past the listed ones in 25% steps until the server fails, then one step between the last rate
   held and the first failed (``refine``), give the highest rate whose p99 stays within ``--p99-target-ms`` with
   no failures; it starts above the highest of ``--rates`` whose cells the server held in every repetition (they
   count as its lower steps); the servers measured after the platform's end their sweeps at the floor's highest
   step.
4. The floor is measured beside the platform's servers, not only before them: ``bare-store`` keeps running, idle,
   while ``kserve`` and ``bentoml`` are measured; each of their single-entity cells is one run shared with the
   floor in half-second turns at the same rate, and the floor sweeps beside them step by step (alternating which
   goes first).  Their CPU and sustained-rate ratios are to those floor runs, so both sides of each ratio come
   from the same seconds (cells) or minutes (sweeps) of a machine whose speed drifts by more than the targets'
   margins.  The load generator is then checked against a trivial endpoint (``benchmarks/trivial_server.py``, on
   the servers' CPU) at twice the floor's highest step.
5. Prints, per profile, a table of medians (min-max over repetitions) with ratios to ``bare-store``'s runs (the
   ones beside them, for the platform's servers), writes ``results.json`` next to the worlds and plots latency
   against rate for both profiles (``docs/images/serving-latency-vs-rate.png``).

With ``--cpu-split`` (default on machines with 2+ cores) servers run on CPU 0 and the load generator on CPU 1, and
so does the MLflow server the platform's servers poll; for the production profile, a Redis and PostgreSQL running
on this machine are pinned to CPU 1 too (and released afterwards), so the server under test has CPU 0 to itself
as it would on a node whose registry and stores run elsewhere.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.serving_world import (  # noqa: E402
    BATCH,
    MODEL,
    PROFILES,
    WORLD,
    Stores,
    bare_bodies,
    bare_store_bodies,
    build_production_world,
    build_world,
    champion_files,
    platform_bodies,
    request_entities,
    settings_for,
    spread_over,
    stored_inputs,
)

SERVERS = ("bare-store", "kserve", "bentoml", "bare", "stock-kserve", "stock-bentoml")
"""In the order they run: the floor first, the platform's servers beside it, then the rest up to its top step."""
PAIRED = ("kserve", "bentoml")
"""The servers whose single-entity cells each get a floor run beside them (the CPU targets are theirs)."""
SWEEP_RATES = (200.0, 400.0, 800.0, 1200.0, 1600.0, 2000.0)
FULL_SWEEP_RATES = (100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 800.0, 1000.0, 1200.0, 1400.0, 1600.0, 2000.0)
SWEEP_GROWTH = 1.25
"""Past the listed rates, the floor's sweep goes on in steps of this factor until it fails."""
SWEEP_CEILING = 20_000.0
"""Where the floor's sweep stops even if it never fails (no server here gets near it)."""
REQUESTS = 2000
"""Distinct request bodies per run (cycled)."""
IDLE_CPU_SHARE, IDLE_WINDOW_S, DRAIN_TIMEOUT_S = 0.1, 0.5, 10.0
"""A server is idle when it used less than this share of a core over the window; ``drain`` waits at most so long."""


ACCEPTED: dict[str, int] = {}
"""Entity predictions answered with 200 per URL, to compare with the prediction log's records."""


def start_load(
    url: str,
    bodies: list[Any],
    rate: float,
    duration: float,
    cpu_split: bool,
    also: tuple[tuple[str, list[Any]], ...] = (),
) -> Any:
    """The load generator in its own process (on CPU 1 with ``cpu_split``); with ``also``, the schedule is shared
    out in turns among ``url`` and those servers (``loadgen.run_interleaved``)."""
    targets = [(url, bodies), *also]
    paths = [_bodies_file(each_url, each_bodies) for each_url, each_bodies in targets]
    command = [sys.executable, str(ROOT / "benchmarks" / "loadgen.py"), url, str(paths[0]), "--rate", str(rate)]
    command += ["--duration", str(duration)]
    for (other_url, _), path in zip(also, paths[1:], strict=True):
        command += ["--also", other_url, str(path)]
    if cpu_split:
        command = ["taskset", "-c", "1", *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.targets = [(each_url, _entities_per_request(each[0])) for each_url, each in targets]  # type: ignore[attr-defined]
    return process


def _bodies_file(url: str, bodies: list[Any]) -> Path:
    path = WORLD / f"bodies-{len(bodies)}-{abs(hash(url))}.json"
    path.write_text(json.dumps(bodies))
    return path


def finish_loads(process: Any) -> list[dict[str, Any]]:
    """Each target's result, in the order ``start_load`` was given them."""
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed: {stderr[-2000:]}")
    printed = json.loads(stdout.strip().splitlines()[-1])
    results = [dict(each) for each in (printed if isinstance(printed, list) else [printed])]
    for (url, entities_per_request), result in zip(process.targets, results, strict=True):
        ACCEPTED[url] = ACCEPTED.get(url, 0) + result["ok"] * entities_per_request
    return results


def finish_load(process: Any) -> dict[str, Any]:
    return finish_loads(process)[0]


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
    return interleaved_runs([server], rate, duration, cpu_split)[0]


def interleaved_runs(servers: list[Server], rate: float, duration: float, cpu_split: bool) -> list[dict[str, Any]]:
    """A run of each server at ``rate`` for ``duration`` with its CPU per request; with several, the schedule is
    shared out in half-second turns (``loadgen --also``), each getting its ``duration`` in the same seconds as the
    others."""
    before = [server_cpu_seconds(server.pid) for server in servers]
    first, *others = servers
    also = tuple((server.url, server.bodies[0]) for server in others)
    results = finish_loads(start_load(first.url, first.bodies[0], rate, len(servers) * duration, cpu_split, also))
    for server, spent, result in zip(servers, before, results, strict=True):
        result["server_cpu_ms"] = (server_cpu_seconds(server.pid) - spent) * 1000.0 / max(result["ok"], 1)
        result["rate"] = rate
    return results


def swap_under_load(server: Server, settings: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Single-entity load at the highest rate while ``champion`` moves to the other version and back: how many
    requests failed, and which versions answered.  Each move is held for more than one alias poll of the server
    (``serving.poll_interval_s``, the default), so the server sees both."""
    from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry

    registry = ModelRegistry(settings)
    current = registry.alias_holder(MODEL, CHAMPION)
    assert current is not None
    other = next(v.version for v in registry.versions(MODEL) if v.version != current.version)
    poll = settings.serving.poll_interval_s
    rate, duration = max(args.rates), max(args.duration, 2.5 * poll)
    generator = start_load(server.url, server.bodies[0], rate, duration, args.cpu_split)
    time.sleep(0.25 * poll)
    registry.move_alias(MODEL, CHAMPION, other, actor="benchmark", reason="swap under load")
    time.sleep(1.1 * poll)
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


def measure(
    server: Server,
    settings: Any,
    args: argparse.Namespace,
    floor: Server | None = None,
    sweep: bool = True,
    ceiling: float = SWEEP_CEILING,
) -> dict[str, Any]:
    """Warm-up; per repetition single-entity runs at every rate and a batch run; the sweep up to ``ceiling``
    (unless ``sweep`` is false or ``args.sweep`` empty); for the platform's servers a model swap under load.
    With ``floor`` (the platform's servers, while ``bare-store`` still runs), every single-entity cell gets a floor
    run at the same rate beside it (``paired_cells``) and the floor sweeps beside the server (``sweep_rates``);
    those floor runs are the ratios' denominators and are returned as ``paired_floor``."""
    load(server.url, server.bodies[0], rate=50, duration=3, cpu_split=args.cpu_split)
    singles: dict[str, list[dict[str, Any]]] = {str(rate): [] for rate in args.rates}
    paired: dict[str, list[dict[str, Any]]] = {str(rate): [] for rate in args.rates}
    batches: list[dict[str, Any]] = []
    saturated_at: float | None = None
    for repetition in range(args.reps):
        for rate in args.rates:
            if saturated_at is not None and rate >= saturated_at:
                # Higher rates only queue more, and the saturated rate once is enough (each such run waits out
                # the generator's time-out): the table says where the server saturated, from one repetition.
                continue
            for name, cell in paired_cells(server, floor, repetition, rate, args):
                (singles if name == server.name else paired)[str(rate)].append(cell)
            if saturated(singles[str(rate)][-1], args) and saturated_at is None:
                saturated_at = rate
        if batches and saturated(batches[0], args):
            continue  # the batch rate saturated the server in the first repetition: once is enough
        if all(saturated(run, args) for run in singles[str(min(args.rates))]):
            # Saturated at the lowest single-entity rate (the stock compositions): it will not take 32 times the
            # entities in batches, and another repetition would not change the verdict; such runs only waited out
            # the generator's time-out.  (Merely over the target, as one run in a stolen second can be, is not
            # enough: a platform server once lost its batches and later repetitions to a p99 of 10.9 ms.)
            print(f"  {server.name}: saturated at {min(args.rates):.0f}/s; no batches, no more repetitions")
            break
        batch = load(server.url, server.bodies[1], args.batch_rate, args.duration, args.cpu_split)
        batches.append(batch)
        print(f"  {server.name} rep {repetition + 1} batches: p99 {batch['p99_ms']:.1f} ms", flush=True)
        drain(server)
    found: dict[str, Any] | None = None
    floor_found: dict[str, Any] | None = None
    if sweep and args.sweep:
        if floor is None:
            found = sweep_rates([server], args, held_rate([singles], args), ceiling)[0]
        else:
            floor_found, found = sweep_rates([floor, server], args, held_rate([singles, paired], args))
    swap = swap_under_load(server, settings, args) if server.name in PAIRED else None
    beside = {"singles": paired, "sweep": floor_found} if floor else None
    return {"singles": singles, "paired_floor": beside, "batches": batches, "sweep": found, "swap": swap}


def paired_cells(
    server: Server, floor: Server | None, repetition: int, rate: float, args: argparse.Namespace
) -> Iterator[tuple[str, dict[str, Any]]]:
    """One single-entity cell of ``server`` at ``rate`` and, with ``floor``, one of the floor taken in the same
    run: the load generator alternates between the two in half-second turns (``interleaved_runs``), the floor's
    turn first in even repetitions and the server's in odd ones; then a drain of each.

    Why: the CPU-per-request ratio compares two servers, and on a shared virtual machine the CPU a request costs
    drifts by more than the distance to the target within minutes (docs/performance.md, 2026-12-06, evening: the
    same servers' cost rose 30-40% between runs 20 minutes apart while the floor's, measured first, did not move).
    Runs seconds apart still differed by up to 40% (2026-12-06, night); turns of half a second put both sides of
    the ratio in the same machine state (2026-12-06, late night: KServe's ratio at 400/s within 1.19-1.24 over six
    such runs while both servers' own cost moved by 17%).  The floor's own cells, minutes earlier, stay in the
    table beside it."""
    order = [server] if floor is None else ([floor, server] if repetition % 2 == 0 else [server, floor])
    for each, cell in zip(order, interleaved_runs(order, rate, args.duration, args.cpu_split), strict=True):
        label = each.name if each is server else f"{each.name} (beside {server.name})"
        print(
            f"  {label} rep {repetition + 1} @{rate:.0f}/s: p99 {cell['p99_ms']:.1f} ms, "
            f"{cell['failed']} failed, {cell['server_cpu_ms']:.2f} ms CPU/request",
            flush=True,
        )
        drain(each)
        yield each.name, cell


def within_target(run: dict[str, Any], args: argparse.Namespace) -> bool:
    """A sweep step's verdict: p99 within the target and every request answered."""
    return bool(run["p99_ms"] <= args.p99_target_ms and run["failed"] == 0)


def saturated(run: dict[str, Any], args: argparse.Namespace) -> bool:
    """Whether a run's p99 is so far past the target (20x) that the server was queueing: higher rates would
    only queue more, for longer, and are not run."""
    return bool(run["p99_ms"] > 20 * args.p99_target_ms)


def drain(server: Server) -> None:
    """Wait until the server is idle, so a backlog from a saturated run (requests already read, the prediction
    log's records) is not charged to the next cell: its CPU below ``IDLE_CPU_SHARE`` of a core over half a second,
    for at most ``DRAIN_TIMEOUT_S``.  A fixed slow run (2 s at 50/s) did not: KServe's repetition after a saturated
    batch run cost 0.77 against 0.62 ms per request at 400/s (docs/performance.md, 2026-12-06, late afternoon)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    spent = server_cpu_seconds(server.pid)
    while time.monotonic() < deadline:
        time.sleep(IDLE_WINDOW_S)
        before, spent = spent, server_cpu_seconds(server.pid)
        if spent - before < IDLE_CPU_SHARE * IDLE_WINDOW_S:
            return


def sweep_rates(
    servers: list[Server], args: argparse.Namespace, held: float, ceiling: float = SWEEP_CEILING
) -> list[dict[str, Any]]:
    """Single-entity runs at rising rates (``args.sweep``, then on by ``SWEEP_GROWTH``), each server until its
    first failed step: its sustainable rate is the last step that kept p99 within the target with no failures.
    A sweep rather than a bisection: one noisy short run cannot send a bisection off course, and the points draw
    the curve.  Returns one result per server, in ``servers``' order.

    The sweep starts above ``held``, the highest cell rate every one of them held in all its repetitions
    (``held_rate``): those cells, longer than a step and repeated, are its lower steps, and on a fast machine the
    steps below them were a third of the sweep's minutes.

    With two servers (the floor and a platform server) they take each step in turn, in alternating order, and
    the floor goes on alone once the other failed: both sustainable rates come from the same minutes of the
    machine, which on a shared virtual machine moves by more than the 20% the target allows (a platform server's
    CPU per request at 1,000/s went from 0.37 to 0.48-0.59 ms within ten minutes, restarted or not).

    A failed step is run once more, and the second run is the step's figure: on a shared machine one 5 s run now
    and then doubles its p99 (a server held 3,900/s after failing 2,000/s), and every server gets the same second
    chance.  That holds for a step past saturation too, once the server has held a rate (its cells or a lower
    step): in run H (docs/performance.md) KServe's first step, 1,200/s, came in at p99 242 ms right after cells at
    1,000/s where it used 57% of its core, and without a second run that one stall was its sustainable rate.  A
    server that has held nothing (a stock composition at 200/s) is saturated in its cells too: it is not run
    again."""
    found: list[dict[str, Any]] = [{"max_rate": held, "failed_at": None, "probes": []} for _ in servers]
    going = list(range(len(servers)))
    index = next((at for at, rate in enumerate(args.sweep) if rate > held), len(args.sweep) - 1)
    rate = args.sweep[index]
    while going and rate <= ceiling:
        for position in going if index % 2 == 0 else going[::-1]:
            point = sweep_step(servers[position], rate, args, has_held=found[position]["max_rate"] > 0)
            found[position]["probes"].append(point)
            if within_target(point, args):
                found[position]["max_rate"] = rate
            else:
                found[position]["failed_at"] = rate
        going = [position for position in going if found[position]["failed_at"] is None]
        index += 1
        rate = args.sweep[index] if index < len(args.sweep) else round(rate * SWEEP_GROWTH, -1)
    refine(servers, found, args)
    return found


def refine(servers: list[Server], found: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """One more step for each server between the last rate it held and the one it failed (their geometric mean,
    to 10/s), in the same alternating order; held, it is the server's sustainable rate.

    Why: the listed steps are up to 2x apart (800 -> 1,200 -> 1,600), so a server one step behind another read as
    0.75x or less of its rate, however close the two were (2026-12-06, late night: 1,200 against 1,600/s on
    sqlite, where the servers' CPU per request differed by 1.2x).  One step inside the bracket halves that error;
    it cannot move a sustainable rate out of it."""
    brackets = [
        (position, round(math.sqrt(each["max_rate"] * each["failed_at"]), -1))
        for position, each in enumerate(found)
        if each["failed_at"] is not None and each["max_rate"] > 0
    ]
    for position, rate in brackets if len(found[0]["probes"]) % 2 == 0 else brackets[::-1]:
        each = found[position]
        if not each["max_rate"] < rate < each["failed_at"]:
            continue
        point = sweep_step(servers[position], rate, args, has_held=True)
        each["probes"].append(point)
        if within_target(point, args):
            each["max_rate"] = rate


def held_rate(cells: list[dict[str, list[dict[str, Any]]]], args: argparse.Namespace) -> float:
    """The highest of ``args.rates`` up to which every run of every server's cells (``cells``: runs per rate, one
    mapping per server) kept p99 within the target with no failures; 0 if the lowest did not."""
    held = 0.0
    for rate in sorted(args.rates):
        runs = [run for runs_by_rate in cells for run in runs_by_rate[str(rate)]]
        if not runs or not all(within_target(run, args) for run in runs):
            break
        held = rate
    return held


def sweep_step(server: Server, rate: float, args: argparse.Namespace, *, has_held: bool) -> dict[str, Any]:
    """One step of the sweep, run once more if it failed (past saturation too where the server ``has_held`` a
    lower rate; ``sweep_rates`` says why); then a drain."""
    point = single_run(server, rate, args.sweep_duration, args.cpu_split)
    if not within_target(point, args) and (has_held or not saturated(point, args)):
        print(f"  {server.name} sweep @{rate:.0f}/s: p99 {point['p99_ms']:.1f} ms -> once more")
        drain(server)
        point = {**single_run(server, rate, args.sweep_duration, args.cpu_split), "first_p99_ms": point["p99_ms"]}
    verdict = "ok" if within_target(point, args) else "over"
    print(f"  {server.name} sweep @{rate:.0f}/s: p99 {point['p99_ms']:.1f} ms -> {verdict}", flush=True)
    drain(server)
    return point


def check_load_generator(rate: float, args: argparse.Namespace, supervisor: Any) -> dict[str, Any]:
    """The load generator against a trivial endpoint at ``rate`` (``benchmarks/trivial_server.py``, on the servers'
    CPU): if it keeps p99 within the target there, the sweep's limits are the servers', not the generator's."""
    from tests.support.environment import free_port

    port = free_port()
    argv = [sys.executable, str(ROOT / "benchmarks" / "trivial_server.py"), "--port", str(port)]
    bodies: tuple[list[Any], list[Any]] = ([{"noop": [0]}], [])
    with process_server("trivial", argv, dict(os.environ), port, ("/readyz", "/noop"), bodies, supervisor) as server:
        result = load(server.url, server.bodies[0], rate, args.sweep_duration, args.cpu_split)
    result["rate"] = rate
    passed = result["p99_ms"] <= args.p99_target_ms and result["failed"] == 0
    print(f"  load generator vs a trivial endpoint @{rate:.0f}/s: p99 {result['p99_ms']:.1f} ms -> {passed}")
    return result


def summary(values: list[float], digits: int = 1) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(statistics.median(run[key] for run in runs))


def print_row(
    name: str, rate: float, runs: list[dict[str, Any]], floor_p99: float | None, floor_cpu: float | None
) -> None:
    """One line of the single-entity table: medians (min-max) of ``runs``, ratios of medians to the floor's."""
    p99, cpu = [run["p99_ms"] for run in runs], [run["server_cpu_ms"] for run in runs]
    print(
        f"{name:<14} {rate:>6.0f} {summary([run['p50_ms'] for run in runs]):>18} {summary(p99):>20} "
        f"{_ratio(statistics.median(p99), floor_p99):>9} {summary(cpu, 2):>17} "
        f"{_ratio(statistics.median(cpu), floor_cpu):>9} {sum(run['failed'] for run in runs):>6}"
    )


def _ratio(value: float, floor: float | None) -> str:
    return f"{value / floor:.2f}" if floor else "-"


def print_table(profile: str, results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    floor = results.get("bare-store")
    print(f"\n[{profile}] {args.reps} x {args.duration:.0f} s per cell; median (min-max); single-entity requests")
    print(f"ratios: {', '.join(PAIRED)} to the floor's runs beside their cells (the row above each), others to its own")
    print(
        f"{'server':<14} {'rate/s':>6} {'p50 ms':>18} {'p99 ms':>20} {'p99/floor':>9} {'CPU ms/req':>17} "
        f"{'CPU/floor':>9} {'failed':>6}"
    )
    for rate in args.rates:
        for name, result in results.items():
            runs = result["singles"][str(rate)]
            if not runs:
                print(f"{name:<14} {rate:>6.0f}   not run: saturated at a lower rate (p99 over 20x the target)")
                continue
            beside = (result.get("paired_floor") or {}).get("singles", {}).get(str(rate))
            # the floor's runs beside this server's cells, where it has them, are its ratios' denominators
            floor_runs = beside or (floor or {}).get("singles", {}).get(str(rate))
            floor_p99, floor_cpu = (
                (_median(floor_runs, "p99_ms"), _median(floor_runs, "server_cpu_ms")) if floor_runs else (None, None)
            )
            if beside:
                print_row("  floor beside", rate, beside, floor_p99, floor_cpu)
            print_row(name, rate, runs, floor_p99, floor_cpu)
    offered = args.batch_rate * BATCH
    print(f"\n[{profile}] batches of {BATCH} at {args.batch_rate:.0f}/s ({offered:.0f} entity predictions/s offered)")
    print(f"{'server':<14} {'p50 ms':>18} {'p99 ms':>20} {'entities/s':>24} {'failed':>6}")
    for name, result in results.items():
        runs = result["batches"]
        if not runs:
            print(f"{name:<14} not run: saturated at {min(args.rates):.0f} single-entity requests/s")
            continue
        print(
            f"{name:<14} {summary([run['p50_ms'] for run in runs]):>18} {summary([run['p99_ms'] for run in runs]):>20} "
            f"{summary([run['throughput_rps'] * BATCH for run in runs]):>24} {sum(run['failed'] for run in runs):>6}"
        )
    print(f"\n[{profile}] model swap under load (champion moved to the other version and back), prediction log")
    print(f"{'server':<14} {'swaps':>6} {'failed':>8} {'sent':>8} {'answered':>10} {'logged':>10}")
    for name, result in results.items():
        if result.get("swap"):
            swap = result["swap"]
            print(
                f"{name:<14} {swap['swaps']:>6.0f} {swap['failed']:>8} {swap['sent']:>8} {result['accepted']:>10} "
                f"{result['logged']:>10}"
            )
    if any(result.get("sweep") for result in results.values()) or floor_steps(results):
        print(f"\n[{profile}] highest single-entity rate with p99 <= {args.p99_target_ms:.0f} ms and no failures")
        print(
            f"ratios: {', '.join(PAIRED)} to the floor's sweep beside theirs (the row above each), others to its best"
        )
        floor_best = max((found["max_rate"] for found in floor_sweeps(results)), default=None)
        for name, result in results.items():
            if name == "bare-store" and not result.get("sweep"):
                print(f"{name:<14} {floor_best or 0:>6.0f}/s  its best, beside the platform's servers")
                continue
            rate = result["sweep"]["max_rate"] if result.get("sweep") else 0.0
            beside = (result.get("paired_floor") or {}).get("sweep")
            if beside:
                print(f"{'  floor beside':<14} {beside['max_rate']:>6.0f}/s")
            denominator = beside["max_rate"] if beside else floor_best
            print(f"{name:<14} {rate:>6.0f}/s {_ratio(rate, denominator):>9} of the floor's")


def plot(results: dict[str, dict[str, dict[str, Any]]], args: argparse.Namespace, path: Path) -> None:
    """p99 against offered rate for every server, one panel per profile: the median of all runs at a rate, bars
    from min to max."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(7 * len(results), 4.5), squeeze=False, sharey=True)
    for axis, (profile, servers) in zip(axes[0], results.items(), strict=True):
        for name, result in servers.items():
            by_rate: dict[float, list[float]] = {}
            points = [run for runs in result["singles"].values() for run in runs]
            points += result["sweep"]["probes"] if result.get("sweep") else []
            if name == "bare-store":  # the floor's runs beside the platform's servers are its points too
                for other in servers.values():
                    beside = other.get("paired_floor") or {}
                    points += [run for runs in beside.get("singles", {}).values() for run in runs]
                    points += beside["sweep"]["probes"] if beside.get("sweep") else []
            for run in points:
                by_rate.setdefault(run["rate"], []).append(run["p99_ms"])
            rates = sorted(by_rate)
            medians = [statistics.median(by_rate[rate]) for rate in rates]
            spread = [
                [median - min(by_rate[rate]) for rate, median in zip(rates, medians, strict=True)],
                [max(by_rate[rate]) - median for rate, median in zip(rates, medians, strict=True)],
            ]
            color = f"C{SERVERS.index(name)}"  # one colour per server in both panels
            axis.errorbar(rates, medians, yerr=spread, marker="o", capsize=3, label=name, color=color)
        axis.axhline(
            args.p99_target_ms, color="grey", linestyle="--", linewidth=1, label=f"{args.p99_target_ms:.0f} ms"
        )
        axis.set(xlabel="offered single-entity requests/s", ylabel="p99 latency (ms, log)", yscale="log")
        axis.set_title(
            f"{profile}: " + ("sqlite store, parquet log" if profile == "embedded" else "Redis (1M), PostgreSQL log")
        )
        axis.legend(fontsize="small")
    figure.suptitle("Serving latency vs rate (bare has features inline; bare-store reads them, nothing else)")
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
        ACCEPTED[deployment.predict_url] = 0  # each profile's server on the same URL counts its own answers
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


def bare_store_argv(settings: Any, model_dir: str, inputs: list[str], port: int, stores: Stores) -> list[str]:
    """The floor server's command line: the same store the profile's servers read, the model inputs it stores."""
    if settings.feast.online_store == "redis":
        store = f"redis://{stores.redis}"
    else:
        store = f"sqlite://{settings.feast_online_path}"
    views = stored_inputs(settings, inputs)
    argv = [sys.executable, str(ROOT / "benchmarks" / "bare_store_server.py"), model_dir, "--port", str(port)]
    argv += ["--store", store, "--project", settings.feast.project, "--key", "customer_id"]
    return [*argv, "--views", json.dumps(views), "--inputs", ",".join(inputs)]


def start_server(
    name: str, settings: Any, entities: list[dict[str, Any]], supervisor: Any, stores: Stores | None = None
) -> Any:
    """The context manager that runs server ``name``."""
    from tests.support.environment import free_port

    if name in ("kserve", "bentoml"):
        return platform_server(name, settings, entities, supervisor)
    model_dir, inputs = champion_files(settings)
    port = free_port()
    env = {**os.environ, **settings.child_env("model_server"), "BENTOML_DO_NOT_TRACK": "true"}
    here = ROOT / "benchmarks"
    if name == "bare":
        argv = [sys.executable, str(here / "bare_server.py"), model_dir, "--port", str(port)]
        bodies = bare_bodies(settings, entities, inputs)
        return process_server(name, argv, env, port, ("/readyz", "/predict"), bodies, supervisor)
    if name == "bare-store":
        argv = bare_store_argv(settings, model_dir, inputs, port, stores or Stores())
        stored = [feature for features in stored_inputs(settings, inputs).values() for feature in features]
        bodies = bare_store_bodies(settings, entities, inputs, stored)
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


@contextlib.contextmanager
def stores_beside_the_load_generator(stores: Stores, cpu_split: bool) -> Iterator[list[str]]:
    """The production profile's Redis and PostgreSQL servers, when they run on this machine, pinned for the
    profile to CPU 1 beside the load generator, so CPU 0 is the server's alone, as on a node whose stores run
    elsewhere; their own affinity comes back afterwards.  Yields what was pinned (empty: nothing could be, e.g.
    remote stores or no permission), which the report states."""
    import psutil

    ports = {int(stores.redis.rsplit(":", 1)[1]): "redis", _postgres_port(stores.postgres): "postgres"}
    saved: dict[int, list[int]] = {}
    pinned: list[str] = []
    if cpu_split:
        for connection in psutil.net_connections("tcp"):
            name = ports.get(connection.laddr.port) if connection.status == psutil.CONN_LISTEN else None
            if name is None or connection.pid is None or connection.pid in saved:
                continue  # not a store's port, or a server already pinned (it listens on IPv4 and IPv6)
            with contextlib.suppress(psutil.Error):
                leader = psutil.Process(connection.pid)
                for process in [leader, *leader.children(recursive=True)]:  # PostgreSQL's running backends too
                    saved.setdefault(process.pid, process.cpu_affinity())
                    process.cpu_affinity([1])
                pinned.append(f"{name} (pid {leader.pid})")
    try:
        yield pinned
    finally:
        for pid, cpus in saved.items():
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).cpu_affinity(cpus)


def _postgres_port(url: str) -> int:
    from sqlalchemy.engine import make_url

    return make_url(url).port or 5432


@dataclass
class Profile:
    """One profile's settings, requests and results."""

    name: str
    settings: Any
    entities: list[dict[str, Any]]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    load_check: dict[str, Any] | None = None
    pinned: list[str] = field(default_factory=list)
    """The store servers pinned beside the load generator for this profile."""


def run_profile(profile: Profile, servers: list[str], args: argparse.Namespace, supervisor: Any) -> None:
    """Every server of the profile in turn, the floor first; it keeps running (idle) beside the platform's servers
    for the floor runs paired with their cells, and the highest step it ran ends the other servers' sweeps."""
    floor: Server | None = None
    with contextlib.ExitStack() as floor_running:
        for name in servers:
            print(f"[{profile.name}] {name}: starting", flush=True)
            started = start_server(name, profile.settings, profile.entities, supervisor, args.stores)
            with contextlib.ExitStack() as running:
                server = (floor_running if name == "bare-store" else running).enter_context(started)
                if name == "bare-store":  # it sweeps beside each platform server, else alone
                    result = measure(server, profile.settings, args, sweep=not set(PAIRED) & set(servers))
                    floor = server
                elif name in PAIRED:
                    result = measure(server, profile.settings, args, floor)
                else:
                    result = measure(
                        server, profile.settings, args, ceiling=max(floor_steps(profile.results), default=SWEEP_CEILING)
                    )
            result["accepted"], result["logged"] = server.accepted, server.logged
            profile.results[name] = result
    steps = floor_steps(profile.results)
    if steps:  # twice the floor's highest step: the generator, not the servers, must not be the limit
        profile.load_check = check_load_generator(2 * max(steps), args, supervisor)


def floor_sweeps(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every sweep the floor ran in a profile, alone or beside the platform's servers."""
    sweeps = [(results.get("bare-store") or {}).get("sweep")]
    sweeps += [(result.get("paired_floor") or {}).get("sweep") for result in results.values()]
    return [found for found in sweeps if found]


def floor_steps(results: dict[str, dict[str, Any]]) -> list[float]:
    """The rates of every sweep step the floor ran in a profile."""
    return [probe["rate"] for found in floor_sweeps(results) for probe in found["probes"]]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    parser.add_argument("--duration", type=float, default=7.0, help="seconds per cell")
    parser.add_argument("--rates", type=float, nargs="+", default=[400.0, 1000.0])
    parser.add_argument("--batch-rate", type=float, default=320.0, help="32-entity batches/s (320: 10,240 entities/s)")
    parser.add_argument(
        "--reps", type=int, default=3, help="repetitions per cell: 3, so one noisy run cannot decide a median"
    )
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    parser.add_argument("--sweep", type=float, nargs="*", default=None, help="rates for the max-rate sweep and plot")
    parser.add_argument("--p99-target-ms", type=float, default=10.0)
    parser.add_argument("--sweep-duration", type=float, default=5.0)
    parser.add_argument("--full", action="store_true", help="the finer sweep, 5 repetitions of 15 s, 10 s steps")
    parser.add_argument("--redis", default=Stores.redis, help="host:port of the production profile's Redis")
    parser.add_argument("--postgres", default=Stores.postgres, help="SQLAlchemy URL of its PostgreSQL server")
    parser.add_argument("--entities", type=int, default=Stores.entities, help="customers in the production store")
    parser.add_argument("--cpu-split", action=argparse.BooleanOptionalAction, default=(os.cpu_count() or 1) >= 2)
    args = parser.parse_args()
    if args.full:
        args.reps, args.duration, args.sweep_duration = 5, 15.0, 10.0
    if args.sweep is None:
        args.sweep = list(FULL_SWEEP_RATES if args.full else SWEEP_RATES)
    args.stores = Stores(args.redis, args.postgres, args.entities)
    return args


def main() -> None:
    args = parse_args()
    from mlplatform.stack.embedded import mlflow_argv, mlflow_env
    from mlplatform.stack.supervisor import Supervisor
    from tests.support.environment import free_port

    mlflow_port, serving_port = free_port(), free_port()
    embedded = settings_for(mlflow_port, serving_port)
    # Every MLflow call here and in the servers started from here talks to the world's server; MLflow's default
    # would create ./mlflow.db.
    os.environ["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_REGISTRY_URI"] = embedded.mlflow.resolved_tracking_uri()
    supervisor = Supervisor(embedded.state_dir)
    if args.cpu_split:
        # The registry runs beside the load generator, as on a node where it runs elsewhere: each alias poll
        # (every 10 s) cost its server about 10 ms of CPU, which on CPU 0 stalled the server under test.
        os.sched_setaffinity(0, {1})
    supervisor.start("mlflow", mlflow_argv(embedded), mlflow_env(embedded), cwd=embedded.layout.mlflow_dir)
    if args.cpu_split:
        os.sched_setaffinity(0, {0})  # servers started from here inherit CPU 0
    profiles: list[Profile] = []
    try:
        supervisor.wait_healthy("mlflow", f"{embedded.mlflow.resolved_tracking_uri()}/health", timeout=120)
        build_world(embedded)
        requests = request_entities(embedded, REQUESTS)
        servers = list(args.servers)
        for name in args.profiles:
            if name == "production":
                production = settings_for(mlflow_port, serving_port, "production", args.stores)
                build_production_world(embedded, production, args.stores)
                profile = Profile(name, production, spread_over(requests, args.stores.entities))
            else:
                profile = Profile(name, embedded, requests)
            profiles.append(profile)
            placed = stores_beside_the_load_generator(args.stores, args.cpu_split and name == "production")
            with placed as profile.pinned:
                if profile.pinned:
                    print(f"[{name}] on CPU 1 with the load generator: {', '.join(profile.pinned)}", flush=True)
                run_profile(profile, servers, args, supervisor)
            servers = [server for server in servers if server != "bare"]  # it reads no store: once is enough
    finally:
        supervisor.stop("mlflow")
    report = {p.name: {"results": p.results, "load_check": p.load_check, "pinned": p.pinned} for p in profiles}
    (WORLD / "results.json").write_text(json.dumps({"args": _jsonable(args), "profiles": report}, indent=2))
    for profile in profiles:
        print_table(profile.name, profile.results, args)
    if args.sweep:
        plot({p.name: p.results for p in profiles}, args, ROOT / "docs" / "images" / "serving-latency-vs-rate.png")


def _jsonable(args: argparse.Namespace) -> dict[str, Any]:
    return {key: (dataclasses.asdict(value) if key == "stores" else value) for key, value in vars(args).items()}


if __name__ == "__main__":
    main()
