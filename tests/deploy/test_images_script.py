"""`make images` (infrastructure/docker/images.sh) on a machine with no container engine: one line saying what to
install, a success for a developer and a failure under CI. The builds themselves run in `make images` (.ci/run)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.environment import REPO_ROOT

SCRIPT = REPO_ROOT / "infrastructure" / "docker" / "images.sh"
# What the script needs before it looks for an engine; no podman and no docker among them.
TOOLS = ("bash", "dirname", "sed")


def _without_engines(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [str(bin_dir / "bash"), str(SCRIPT)], capture_output=True, text=True, env=env, timeout=30, check=False
    )


def test_the_script_parses() -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert os.access(SCRIPT, os.X_OK)


@pytest.mark.parametrize(("ci", "code"), [(None, 0), ("false", 0), ("true", 1)])
def test_no_engine_is_one_line_naming_what_to_install(tmp_path: Path, ci: str | None, code: int) -> None:
    result = _without_engines(tmp_path, ci)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "install podman" in lines[0] and "images not built" in lines[0], result.stderr
    assert result.stdout == ""
