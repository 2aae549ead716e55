"""The promotion gate: a challenger becomes champion only if it clears absolute floors and beats the champion.

The comparison uses the same holdout for both models, so the decision is about the models, not about data that
happened to be easier for one of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlplatform.registry.lineage import Lineage
from mlplatform.specs import LOWER_IS_BETTER, GatesSpec

if TYPE_CHECKING:
    from mlplatform.registry.mlflow_registry import VersionInfo
    from mlplatform.specs import ModelSpec


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    challenger_score: float | None = None
    champion_score: float | None = None
    champion_version: str | None = None

    @property
    def summary(self) -> str:
        verdict = "passed" if self.passed else "failed"
        return f"gate {verdict}: " + "; ".join(self.reasons)


def decide(
    gates: GatesSpec,
    primary_metric: str,
    challenger_metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    champion_version: str | None = None,
) -> GateDecision:
    """Apply the spec's gates. ``champion_metrics`` are the champion's scores on the challenger's holdout.

    Direction follows the metric: ``gates.minimums`` are floors, ``gates.maximums`` ceilings (error metrics), and
    for a primary metric in ``LOWER_IS_BETTER`` the challenger must be lower than the champion by
    ``min_improvement``, otherwise higher by it.
    """
    reasons: list[str] = []
    passed = True
    for metric, floor in sorted(gates.minimums.items()):
        ok, reason = _bound(metric, challenger_metrics.get(metric), floor, lower_is_better=False)
        passed, reasons = passed and ok, [*reasons, reason]
    for metric, ceiling in sorted(gates.maximums.items()):
        ok, reason = _bound(metric, challenger_metrics.get(metric), ceiling, lower_is_better=True)
        passed, reasons = passed and ok, [*reasons, reason]
    challenger_score = challenger_metrics.get(primary_metric)
    champion_score = None if champion_metrics is None else champion_metrics.get(primary_metric)
    if champion_metrics is None:
        reasons.append("no current champion")
    elif challenger_score is None or champion_score is None:
        passed = False
        reasons.append(f"{primary_metric} missing for the comparison with champion v{champion_version}")
    else:
        lower = primary_metric in LOWER_IS_BETTER
        beats = _beats(challenger_score, champion_score, gates.min_improvement, lower_is_better=lower)
        passed = passed and beats
        direction = "lower" if lower else "higher"
        verdict = "beats" if beats else "does not beat"
        reasons.append(
            f"{primary_metric} {challenger_score:.4f} {verdict} champion v{champion_version} "
            f"({champion_score:.4f}): {direction} is better, required margin {gates.min_improvement:.4f}"
        )
    return GateDecision(
        passed=passed,
        reasons=reasons,
        challenger_score=challenger_score,
        champion_score=champion_score,
        champion_version=champion_version,
    )


def _bound(metric: str, value: float | None, limit: float, *, lower_is_better: bool) -> tuple[bool, str]:
    """Whether a metric respects its floor (or ceiling), and the reason as the decision reports it."""
    if value is None:
        return False, f"{metric} was not computed"
    if lower_is_better:
        if value > limit:
            return False, f"{metric} {value:.4f} is above the maximum {limit:.4f}"
        return True, f"{metric} {value:.4f} <= maximum {limit:.4f}"
    if value < limit:
        return False, f"{metric} {value:.4f} is below the minimum {limit:.4f}"
    return True, f"{metric} {value:.4f} >= minimum {limit:.4f}"


def _beats(challenger: float, champion: float, margin: float, *, lower_is_better: bool) -> bool:
    """Strictly better than the champion by more than the margin (a tie never replaces a champion)."""
    return challenger < champion - margin if lower_is_better else challenger > champion + margin


def recorded_gate(info: VersionInfo) -> dict[str, Any] | None:
    """The pipeline's gate decision stored on the version, if any."""
    gate = info.tags.get(Lineage.GATE_TAG)
    decision: dict[str, Any] | None = json.loads(gate) if gate else None
    return decision


def champion_metrics_for(
    spec: ModelSpec, challenger: VersionInfo, champion: VersionInfo, versions: list[VersionInfo]
) -> tuple[dict[str, float], str]:
    """The champion's scores to gate against, and where they came from.

    The pipeline's gate decision (a version tag) holds the champion's score on the challenger's own holdout:
    the fair comparison.  Without it (or if the champion changed since), the champion's own run metrics are
    the best evidence there is, and the response says so.
    """
    decision = recorded_gate(challenger)
    if decision and decision.get("champion_version") == champion.version and decision.get("champion_score") is not None:
        return {spec.primary_metric: float(decision["champion_score"])}, "challenger holdout (pipeline gate)"
    own = [info for info in versions if info.version == champion.version]
    return (own[0].metrics if own else {}), "champion's own run metrics"
