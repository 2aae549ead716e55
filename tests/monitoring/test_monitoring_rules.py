"""Alert rules: promtool accepts them, their unit tests pass, each is documented, tested both ways, and its
threshold agrees with ``mlplatform.monitoring.thresholds``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.monitoring import thresholds
from tests.monitoring.conftest import RULE_TESTS_DIR, RULES_DIR, RUNBOOKS_DIR, alerting_rules, rule_files
from tests.monitoring.promql import numbers
from tests.support.environment import REPO_ROOT
from tests.support.tools import run_tool

SEVERITIES = {"critical", "warning"}
RUNBOOK_SECTIONS = ("## What it means", "## How to check", "## What to do")
# The alerts the issue asks for, by area; more may exist, none of these may go missing.
REQUIRED_ALERTS = {
    "DatasetDriftDetected",
    "FeatureDriftDetected",
    "ModelServingLatencyHigh",
    "ModelServingErrorRatioHigh",
    "ModelNotReady",
    "DriftCheckStale",
    "OnlineFeaturesStale",
    "TrainingRunFailed",
    "ModelQualityDropped",
}
# alert -> the shared constants its expression must contain as literals.
THRESHOLDS = {
    "ModelServingLatencyHigh": (thresholds.SERVING_P99_SLO_SECONDS, thresholds.SERVING_MIN_REQUEST_RATE),
    "ModelServingErrorRatioHigh": (thresholds.SERVING_ERROR_RATIO, thresholds.SERVING_MIN_REQUEST_RATE),
    "DatasetDriftDetected": (thresholds.DRIFT_MIN_ROWS,),
    "FeatureDriftDetected": (thresholds.DRIFT_MIN_ROWS,),
    "DriftCheckStale": (thresholds.DRIFT_CHECK_MAX_AGE_SECONDS,),
    "OnlineFeaturesStale": (thresholds.ONLINE_FEATURES_MAX_AGE_SECONDS,),
    "ModelQualityDropped": (thresholds.QUALITY_DROP_RATIO, thresholds.QUALITY_MIN_LABELLED),
}


def _rule(name: str) -> dict[str, Any]:
    return next(rule for rule in alerting_rules() if rule["alert"] == name)


def _unit_tests() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, yaml.safe_load(path.read_text())) for path in sorted(RULE_TESTS_DIR.glob("*_test.yaml"))]


def test_promtool_accepts_every_rule_file(promtool: str) -> None:
    result = run_tool([promtool, "check", "rules", *map(str, rule_files())])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass(promtool: str) -> None:
    result = run_tool([promtool, "test", "rules", *(str(path) for path, _ in _unit_tests())])
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_issues_alerts_exist_once_each() -> None:
    names = [rule["alert"] for rule in alerting_rules()]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert set(names) >= REQUIRED_ALERTS


@pytest.mark.parametrize("rule", alerting_rules(), ids=lambda rule: rule["alert"])
def test_alert_is_labelled_and_documented(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["labels"]["area"] == Path(rule["_file"]).stem
    annotations = rule["annotations"]
    assert annotations["summary"] and annotations["description"]
    assert annotations["runbook_url"] == f"{thresholds.RUNBOOK_BASE_URL}/{name}.md"
    runbook = REPO_ROOT / annotations["runbook_url"]
    assert runbook.is_file(), f"missing runbook {runbook}"
    text = runbook.read_text()
    assert text.startswith(f"# {name}\n"), f"{runbook} must start with '# {name}'"
    for section in RUNBOOK_SECTIONS:
        assert section in text, f"{runbook} lacks {section!r}"


def test_every_runbook_belongs_to_an_alert() -> None:
    names = {rule["alert"] for rule in alerting_rules()}
    assert {path.stem for path in RUNBOOKS_DIR.glob("*.md")} - {"README"} == names


def test_every_rule_file_has_its_unit_test_file() -> None:
    for path in rule_files():
        test_file = RULE_TESTS_DIR / f"{path.stem}_test.yaml"
        assert test_file.is_file(), f"no promtool tests for {path.name}"
        assert f"../rules/{path.name}" in yaml.safe_load(test_file.read_text())["rule_files"]


def test_every_alert_has_a_firing_case_and_a_must_not_fire_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for _, document in _unit_tests():
        for case in document["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerting_rules()}
    assert names - firing == set(), "alerts never seen firing in a unit test"
    assert names - quiet == set(), "alerts without a case where they must not fire"


@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_rule_thresholds_are_the_shared_constants(name: str) -> None:
    """Prometheus cannot read settings: the literal in the rule must equal the constant, and the runbook says it."""
    rule = _rule(name)
    literals = numbers(rule["expr"])
    runbook = (REPO_ROOT / rule["annotations"]["runbook_url"]).read_text()
    for value in THRESHOLDS[name]:
        assert float(value) in literals, f"{name}: {value} not in {rule['expr']}"
        assert re.search(rf"(?<![\d.]){re.escape(str(value))}(?![\d.])", runbook), f"{name}'s runbook omits {value}"


def test_rule_files_name_the_constants_they_copy() -> None:
    """The header comment of each rule file says which constant each literal copies."""
    text = "\n".join(path.read_text() for path in sorted(RULES_DIR.glob("*.yaml")))
    for constant in (
        "SERVING_P99_SLO_SECONDS",
        "SERVING_ERROR_RATIO",
        "SERVING_MIN_REQUEST_RATE",
        "DRIFT_MIN_ROWS",
        "DRIFT_CHECK_MAX_AGE_SECONDS",
        "ONLINE_FEATURES_MAX_AGE_SECONDS",
        "QUALITY_DROP_RATIO",
        "QUALITY_MIN_LABELLED",
    ):
        value = getattr(thresholds, constant)
        assert re.search(rf"{re.escape(str(value))}[^=\n]*= {constant}\b", text), constant
