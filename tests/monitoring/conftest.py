"""Fixtures for the monitoring assets: the Prometheus tools, the rule files, and what the services export.

promtool (Debian ``prometheus``) and amtool / Alertmanager (Debian ``prometheus-alertmanager``) are installed by
``make install`` (``infrastructure/tools/system-tools.sh``).  Where one is missing the tests that need it are
skipped with the reason; under CI every skip fails, so a green CI means the rules and the configuration were
checked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT, skip_missing

MONITORING = REPO_ROOT / "monitoring"
RULES_DIR = MONITORING / "prometheus" / "rules"
RULE_TESTS_DIR = MONITORING / "prometheus" / "tests"
ALERTMANAGER_CONFIG = MONITORING / "alertmanager" / "alertmanager.yml"
DASHBOARDS_DIR = MONITORING / "grafana" / "dashboards"
RUNBOOKS_DIR = REPO_ROOT / "docs" / "runbooks"


def require_tool(name: str, package: str) -> str:
    """Path of a command-line tool; the test is skipped (a failure under CI) without it."""
    path = shutil.which(name)
    if path is None:
        skip_missing(
            f"{name}, not installed", f"`make install` adds it where it can, or `sudo apt-get install {package}`"
        )
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def amtool() -> str:
    return require_tool("amtool", "prometheus-alertmanager")


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    return require_tool("prometheus-alertmanager", "prometheus-alertmanager")


def run_tool(argv: list[str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool, capturing its output for assertion messages."""
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yaml"))


def alerting_rules() -> list[dict[str, Any]]:
    """Every alerting rule of every rule file, with the file's name under ``_file``."""
    rules = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rules.append({**rule, "_file": path.name})
    return rules


def rule_expressions() -> list[tuple[str, str]]:
    """(rule name, PromQL) of every alerting and recording rule."""
    expressions = []
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                expressions.append((rule.get("alert") or rule["record"], rule["expr"]))
    return expressions
