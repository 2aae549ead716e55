"""Guardrails: checks on a rollout's operational evidence that stop it at once, whatever the sequential test says.

Read from the prediction log alone (model servers write every arm's predictions, failures and timings there), so
they judge a shadow rollout before any label arrives:

* **errors**: the candidate's failure rate over the champion's (each floored at ``ERROR_RATE_FLOOR``, so one
  failure against a clean champion is not an infinite ratio);
* **latency**: the candidate's p99 scoring time over the champion's, each floored at ``latency_floor_ms`` (a
  sub-millisecond scoring's p99 is the interpreter's thread-switch jitter, several ms, not the model's cost);
* **prediction shift**: the two-sample Kolmogorov-Smirnov distance between the arms' predictions (in shadow the
  same entities, in a split two random halves of them): a candidate that predicts very differently is stopped
  before its outcomes say whether differently means better.

A guardrail judges only once both arms have ``min_requests`` logged entities; before that it says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mlplatform.predictions.records import CANDIDATE_ARM, CHAMPION_ARM

if TYPE_CHECKING:
    import pandas as pd

    from mlplatform.specs import GuardrailsSpec

ERROR_RATE_FLOOR = 0.001


@dataclass(frozen=True)
class ArmTraffic:
    """What one arm did in the window: entities it scored, those it failed, its p99 time and its predictions."""

    entities: int
    failures: int
    p99_latency_s: float | None

    @property
    def failure_rate(self) -> float:
        total = self.entities + self.failures
        return self.failures / total if total else 0.0


@dataclass(frozen=True)
class GuardrailCheck:
    """One guardrail's reading: its value, its limit, whether it was judged and whether it is breached."""

    name: str
    value: float | None
    limit: float
    judged: bool
    breached: bool
    summary: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def arm_traffic(frame: pd.DataFrame) -> ArmTraffic:
    failed = frame["error"].notna()
    latencies = frame["latency_s"].dropna().to_numpy(dtype=float)
    p99 = float(np.quantile(latencies, 0.99)) if len(latencies) else None
    return ArmTraffic(int((~failed).sum()), int(failed.sum()), p99)


def ks_distance(first: np.ndarray, second: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical distributions."""
    first, second = np.sort(first), np.sort(second)
    pooled = np.concatenate([first, second])
    gap = np.searchsorted(first, pooled, side="right") / len(first) - np.searchsorted(
        second, pooled, side="right"
    ) / len(second)
    return float(np.max(np.abs(gap)))


def check_guardrails(
    champion: pd.DataFrame, candidate: pd.DataFrame, limits: GuardrailsSpec
) -> tuple[list[GuardrailCheck], dict[str, ArmTraffic]]:
    """Every guardrail over the arms' rows of the prediction log (``arm``, ``score``, ``latency_s``, ``error``)."""
    traffic = {CHAMPION_ARM: arm_traffic(champion), CANDIDATE_ARM: arm_traffic(candidate)}
    judged = all(arm.entities + arm.failures >= limits.min_requests for arm in traffic.values())
    waiting = f"waiting for {limits.min_requests} logged entities per arm"
    mine, theirs = traffic[CANDIDATE_ARM], traffic[CHAMPION_ARM]
    error_ratio = max(mine.failure_rate, ERROR_RATE_FLOOR) / max(theirs.failure_rate, ERROR_RATE_FLOOR)
    checks = [
        _check(
            "error_ratio",
            error_ratio,
            limits.max_error_ratio,
            judged,
            f"candidate fails {mine.failure_rate:.2%} of entities, champion {theirs.failure_rate:.2%}",
            waiting,
        )
    ]
    floor = limits.latency_floor_ms / 1000.0
    latency_ratio = (
        max(mine.p99_latency_s, floor) / max(theirs.p99_latency_s, floor, 1e-9)
        if mine.p99_latency_s is not None and theirs.p99_latency_s is not None
        else None
    )
    checks.append(
        _check(
            "latency_ratio",
            latency_ratio,
            limits.max_latency_ratio,
            judged and latency_ratio is not None,
            f"p99 {_ms(mine.p99_latency_s)} against the champion's {_ms(theirs.p99_latency_s)}",
            waiting,
        )
    )
    scores = [
        frame.loc[frame["error"].isna(), "score"].dropna().to_numpy(dtype=float) for frame in (champion, candidate)
    ]
    shift = ks_distance(*scores) if all(len(part) for part in scores) else None
    checks.append(
        _check(
            "prediction_shift",
            shift,
            limits.max_prediction_shift,
            judged and shift is not None,
            "largest gap between the arms' prediction distributions (Kolmogorov-Smirnov)",
            waiting,
        )
    )
    return checks, traffic


def _check(name: str, value: float | None, limit: float, judged: bool, what: str, waiting: str) -> GuardrailCheck:
    breached = judged and value is not None and value > limit
    shown = "n/a" if value is None else f"{value:.3g}"
    if not judged:
        return GuardrailCheck(name, value, limit, False, False, f"{name} {shown} (limit {limit:g}): {waiting}")
    verdict = "BREACHED" if breached else "holds"
    return GuardrailCheck(name, value, limit, True, breached, f"{name} {shown} {verdict} (limit {limit:g}): {what}")


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.2f} ms"
