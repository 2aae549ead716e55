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

    def step(server: serving.Server, rate: float, args: argparse.Namespace) -> dict[str, Any]:
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

    def step(server: serving.Server, rate: float, args: argparse.Namespace) -> dict[str, Any]:
        runs.append(rate)
        return {"rate": rate, "p99_ms": 50.0 if server.name == "stock" else 5.0, "failed": 0}

    monkeypatch.setattr(serving, "sweep_step", step)
    args = argparse.Namespace(sweep=list(serving.SWEEP_RATES), p99_target_ms=10.0)
    [stock] = serving.sweep_rates([serving.Server("stock", "", ([], []), 0)], args, held=0.0)
    assert (stock["max_rate"], stock["failed_at"], runs) == (0.0, 200.0, [200.0])
    [fast] = serving.sweep_rates([serving.Server("fast", "", ([], []), 0)], args, held=1000.0, ceiling=2000.0)
    assert (fast["max_rate"], fast["failed_at"]) == (2000.0, None)
