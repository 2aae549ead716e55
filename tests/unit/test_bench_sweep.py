"""The serving benchmark's sweep (``benchmarks/serving.py``): its steps and the refining step, with the load runs
replaced by stand-in servers of known capacity: what is tested is which rates the sweep runs and what it
concludes, which a real run on a shared machine cannot pin down."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from benchmarks import serving


def test_the_refining_step_halves_the_sweeps_error_for_stand_in_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    capacity = {"floor": 1700.0, "platform": 1450.0}  # p99 within the target up to here
    runs: list[tuple[str, float]] = []

    def step(server: serving.Server, rate: float, args: argparse.Namespace, *, has_held: bool) -> dict[str, Any]:
        runs.append((server.name, rate))
        return {"rate": rate, "p99_ms": 5.0 if rate <= capacity[server.name] else 50.0, "failed": 0}

    monkeypatch.setattr(serving, "sweep_step", step)
    args = argparse.Namespace(sweep=list(serving.SWEEP_RATES), p99_target_ms=10.0)
    servers = [serving.Server(name, "", ([], []), 0) for name in capacity]
    floor, platform = serving.sweep_rates(servers, args, held=1000.0)
    # The listed steps alone: 1,600 against 1,200/s (0.75); refined inside each bracket: 1,390 against 1,600/s.
    assert (floor["max_rate"], floor["failed_at"]) == (1600.0, 2000.0)
    assert (platform["max_rate"], platform["failed_at"]) == (1390.0, 1600.0)
    assert runs[-2:] == [("platform", 1390.0), ("floor", 1790.0)]  # one step each, alternating, after the sweep
    assert [probe["rate"] for probe in floor["probes"]] == [1200.0, 1600.0, 2000.0, 1790.0]


def test_no_refining_step_without_a_bracket_for_stand_in_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that failed the first step it was given and held nothing (a stock composition), or that never
    failed below the ceiling, gets no extra step."""
    runs: list[float] = []

    def step(server: serving.Server, rate: float, args: argparse.Namespace, *, has_held: bool) -> dict[str, Any]:
        runs.append(rate)
        return {"rate": rate, "p99_ms": 50.0 if server.name == "stock" else 5.0, "failed": 0}

    monkeypatch.setattr(serving, "sweep_step", step)
    args = argparse.Namespace(sweep=list(serving.SWEEP_RATES), p99_target_ms=10.0)
    [stock] = serving.sweep_rates([serving.Server("stock", "", ([], []), 0)], args, held=0.0)
    assert (stock["max_rate"], stock["failed_at"], runs) == (0.0, 200.0, [200.0])
    [fast] = serving.sweep_rates([serving.Server("fast", "", ([], []), 0)], args, held=1000.0, ceiling=2000.0)
    assert (fast["max_rate"], fast["failed_at"]) == (2000.0, None)


def test_a_failed_step_runs_once_more_even_past_saturation_unless_the_server_held_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stand-in platform server stalls once at 1,200/s (p99 300 ms, past saturation) and holds it on the second
    run; a stand-in stock composition saturates at 200/s every time and is run there once."""
    first_runs = {("platform", 1200.0): 300.0}
    runs: list[tuple[str, float]] = []

    def run(server: serving.Server, rate: float, duration: float, cpu_split: bool) -> dict[str, Any]:
        runs.append((server.name, rate))
        if server.name == "stock":
            return {"rate": rate, "p99_ms": 900.0, "failed": 0}
        stall = first_runs.pop((server.name, rate), None)
        return {"rate": rate, "p99_ms": stall or (5.0 if rate <= 1600 else 400.0), "failed": 0}

    monkeypatch.setattr(serving, "single_run", run)
    monkeypatch.setattr(serving, "drain", lambda server: None)
    args = argparse.Namespace(sweep=list(serving.SWEEP_RATES), p99_target_ms=10.0, sweep_duration=5.0, cpu_split=False)
    [platform] = serving.sweep_rates([serving.Server("platform", "", ([], []), 0)], args, held=1000.0)
    assert (platform["max_rate"], platform["failed_at"]) == (1600.0, 2000.0)
    assert runs[:3] == [("platform", 1200.0)] * 2 + [("platform", 1600.0)]
    assert runs.count(("platform", 2000.0)) == 2  # its real limit, saturated, also had its second run
    runs.clear()
    [stock] = serving.sweep_rates([serving.Server("stock", "", ([], []), 0)], args, held=0.0)
    assert (stock["max_rate"], stock["failed_at"], runs) == (0.0, 200.0, [("stock", 200.0)])
