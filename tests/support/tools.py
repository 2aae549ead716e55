"""Command-line tools the tests drive (promtool, amtool, Alertmanager, Prometheus, helm): found or skipped with
how to get them, and run with their output captured."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.support.environment import REPO_ROOT, skip_missing


def require_tool(name: str, package: str) -> str:
    """Path of a command-line tool; the test is skipped (a failure under CI) without it."""
    path = shutil.which(name)
    if path is None:
        skip_missing(
            f"{name}, not installed", f"`make install` adds it where it can, or `sudo apt-get install {package}`"
        )
    return path


def run_tool(argv: list[str], cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool, capturing its output for assertion messages."""
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def helm_path() -> str | None:
    local = REPO_ROOT / "tools" / "bin" / "helm"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("helm")


def run_helm(
    helm: str, *args: str, values: list[Path] | None = None, sets: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [helm, *args]
    for path in values or []:
        argv += ["-f", str(path)]
    for item in sets or []:
        argv += ["--set", item]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=REPO_ROOT)
