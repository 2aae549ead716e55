"""Fixtures for the monitoring assets: the Prometheus tools, the rule files, and what the services export.

promtool (Debian ``prometheus``) and amtool / Alertmanager (Debian ``prometheus-alertmanager``) are installed by
``make install`` (``infrastructure/tools/system-tools.sh``).  Where one is missing the tests that need it are
skipped with the reason; under CI every skip fails, so a green CI means the rules and the configuration were
checked.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.environment import REPO_ROOT
from tests.support.tools import require_tool
from tests.support.waiting import wait_for

MONITORING = REPO_ROOT / "monitoring"
RULES_DIR = MONITORING / "prometheus" / "rules"
RULE_TESTS_DIR = MONITORING / "prometheus" / "tests"
ALERTMANAGER_CONFIG = MONITORING / "alertmanager" / "alertmanager.yml"
DASHBOARDS_DIR = MONITORING / "grafana" / "dashboards"
RUNBOOKS_DIR = REPO_ROOT / "docs" / "runbooks"


@pytest.fixture(scope="session")
def alertmanager_binary() -> str:
    return require_tool("prometheus-alertmanager", "prometheus-alertmanager")


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


def wait_alertmanager_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    """Fail the test if Alertmanager exits or is not ready within 20 s."""

    def ready() -> bool:
        if process.poll() is not None:
            pytest.fail(f"alertmanager exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            return httpx.get(f"{base}/-/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, 20, "alertmanager to become ready", interval=0.1)
