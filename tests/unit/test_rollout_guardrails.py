"""The guardrails on a rollout's operational evidence, by hand-made arms: what stops a candidate and what must not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlplatform.rollouts.guardrails import check_guardrails
from mlplatform.specs import GuardrailsSpec

ROWS = 400


def arm(latency_s: float, *, failures: int = 0, jitter_s: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """``ROWS`` logged entities scoring in ``latency_s`` (the slowest 2 % up to ``jitter_s`` more)."""
    rng = np.random.default_rng(seed)
    latencies = np.full(ROWS, latency_s)
    latencies[: ROWS // 50] += jitter_s
    return pd.DataFrame(
        {
            "score": rng.random(ROWS),
            "latency_s": latencies,
            "error": ["boom" if index < failures else None for index in range(ROWS)],
        }
    )


def latency_check(champion: pd.DataFrame, candidate: pd.DataFrame, **limits: float) -> tuple[bool, float | None]:
    checks, _ = check_guardrails(champion, candidate, GuardrailsSpec.model_validate(limits))
    [latency] = [check for check in checks if check.name == "latency_ratio"]
    assert latency.judged
    return latency.breached, latency.value


def test_thread_switch_jitter_below_the_floor_does_not_stop_a_fast_candidate() -> None:
    """A shadow scores on its own thread: 0.3 ms scorings with 7 ms waits for the interpreter's lock at p99, against a
    champion's 2 ms p99, is the interpreter, not the model."""
    breached, ratio = latency_check(arm(0.0003, jitter_s=0.002), arm(0.0003, jitter_s=0.007, seed=1))
    assert not breached and ratio == pytest.approx(1.0)


def test_a_slow_candidate_is_stopped_above_the_floor() -> None:
    breached, ratio = latency_check(arm(0.004), arm(0.060, seed=1))
    assert breached and ratio == pytest.approx(6.0)


def test_without_a_floor_the_ratio_is_the_raw_one() -> None:
    breached, ratio = latency_check(arm(0.001), arm(0.004, seed=1), latency_floor_ms=0.0)
    assert breached and ratio == pytest.approx(4.0)


def test_a_failing_candidate_is_stopped_and_one_failing_about_as_often_is_not() -> None:
    checks, _ = check_guardrails(arm(0.001, failures=2), arm(0.001, failures=40, seed=1), GuardrailsSpec())
    assert {check.name for check in checks if check.breached} == {"error_ratio"}
    checks, _ = check_guardrails(arm(0.001, failures=2), arm(0.001, failures=3, seed=1), GuardrailsSpec())
    assert not any(check.breached for check in checks)
