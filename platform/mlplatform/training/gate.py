"""The promotion gate: a challenger becomes champion only if it clears absolute floors and beats the champion.

The comparison uses the same holdout for both models, so the decision is about the models, not about data that
happened to be easier for one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlplatform.specs import GatesSpec


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
    """Apply the spec's gates. ``champion_metrics`` are the champion's scores on the challenger's holdout."""
    reasons: list[str] = []
    passed = True
    for metric, floor in sorted(gates.minimums.items()):
        value = challenger_metrics.get(metric)
        if value is None:
            passed = False
            reasons.append(f"{metric} was not computed")
        elif value < floor:
            passed = False
            reasons.append(f"{metric} {value:.4f} is below the minimum {floor:.4f}")
        else:
            reasons.append(f"{metric} {value:.4f} >= minimum {floor:.4f}")
    challenger_score = challenger_metrics.get(primary_metric)
    champion_score = None if champion_metrics is None else champion_metrics.get(primary_metric)
    if champion_metrics is None:
        reasons.append("no current champion")
    elif challenger_score is None or champion_score is None:
        passed = False
        reasons.append(f"{primary_metric} missing for the comparison with champion v{champion_version}")
    else:
        required = champion_score + gates.min_improvement
        if challenger_score > required:
            reasons.append(
                f"{primary_metric} {challenger_score:.4f} beats champion v{champion_version} "
                f"({champion_score:.4f}) by more than {gates.min_improvement:.4f}"
            )
        else:
            passed = False
            reasons.append(
                f"{primary_metric} {challenger_score:.4f} does not beat champion v{champion_version} "
                f"({champion_score:.4f}) by the required margin {gates.min_improvement:.4f}"
            )
    return GateDecision(
        passed=passed,
        reasons=reasons,
        challenger_score=challenger_score,
        champion_score=champion_score,
        champion_version=champion_version,
    )
