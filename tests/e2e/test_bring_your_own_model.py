"""The bring-your-own-model guide, run as written: its walkthrough's commands, one after another, in a shell, against
the end-to-end stack of tests/e2e/conftest.py (real MLflow, Airflow 3, the platform API, Prometheus and
Alertmanager on free ports, a temporary state directory), where the fraud demo's model is already served.

What it proves: a data scientist with a feature table and a label table gets from nothing to a served champion with
the guide's commands alone; the new model serves beside the fraud demo's (trained in-process by the fixture, so the
test holds one Airflow run: the guide's `train --wait`); both answer predictions and a drift check runs on each.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlplatform.config import Settings
from mlplatform.demo.fraud_data import MODEL as FRAUD_MODEL
from mlplatform.deploy.base import Deployment
from mlplatform.loop import waits
from mlplatform.loop.traffic import sample_requests
from mlplatform.monitoring.drift_check import run_drift_check
from mlplatform.serving.client import predict, send_traffic
from mlplatform.specs import find_spec
from tests.e2e.conftest import E2eWorld
from tests.support.environment import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]

GUIDE = REPO_ROOT / "docs" / "guides" / "bring-your-own-model.md"
WALKTHROUGH = "## 2. Walkthrough"
MODEL = "diabetes"


def guide_commands(text: str, section: str) -> list[str]:
    """The commands of every ```bash block in one section of the guide, in order (comments dropped)."""
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    body = text[start : end if end != -1 else len(text)]
    commands: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", body, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split(" #", 1)[0].strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


def test_the_guide_names_the_four_commands_of_the_promise() -> None:
    commands = guide_commands(GUIDE.read_text(), WALKTHROUGH)
    verbs = [" ".join(shlex.split(command)[1:3]) for command in commands]
    for wanted in ("models init", "models validate", f"train {MODEL}", f"deploy {MODEL}"):
        assert wanted in verbs, f"the walkthrough lost `mlplatform {wanted}`: {commands}"
    assert all(command.startswith("mlplatform ") for command in commands), commands


@dataclass
class Shell:
    """Runs guide commands as a user would: `mlplatform` on PATH, the settings in the environment, in a folder."""

    cwd: Path
    env: dict[str, str]

    def run(self, command: str, timeout: float = 900) -> str:
        argv = shlex.split(command)
        completed = subprocess.run(
            argv, cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        output = completed.stdout + completed.stderr
        print(f"$ {command}\n{output[-4000:]}")
        assert completed.returncode == 0, f"`{command}` exited {completed.returncode}:\n{output[-4000:]}"
        return output


@pytest.fixture()
def guide_shell(e2e_world: E2eWorld, tmp_path: Path) -> Shell:
    """A shell in an empty folder with `mlplatform` on PATH and the end-to-end stack's settings in the environment."""
    env = {**os.environ, **e2e_world.settings.child_env("api")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MLP_API_URL", None)
    workdir = tmp_path / "work"
    workdir.mkdir()
    return Shell(workdir, env)


def test_the_guide_takes_the_example_to_a_served_champion_beside_the_fraud_model(
    e2e_world: E2eWorld, guide_shell: Shell
) -> None:
    commands = guide_commands(GUIDE.read_text(), WALKTHROUGH)
    assert commands[0] == "mlplatform stack up", commands
    outputs = {command: guide_shell.run(command) for command in commands}  # the stack is up: `stack up` says so

    init = next(output for command, output in outputs.items() if " models init " in command)
    assert "UTC" in init and "nanosecond" in init, "the conversions are announced"
    train = next(output for command, output in outputs.items() if command.startswith(f"mlplatform train {MODEL}"))
    assert "success" in train
    answer = next(output for command, output in outputs.items() if command.startswith(f"mlplatform predict {MODEL}"))
    assert '"value"' in answer and '"version"' in answer
    listed = next(output for command, output in outputs.items() if command == "mlplatform deployments")
    assert MODEL in listed and "fraud_detector" in listed
    drift = next(output for command, output in outputs.items() if command.startswith(f"mlplatform drift check {MODEL}"))
    assert "drift" in drift.lower()

    check_the_fraud_model_still_answers_and_is_checked(e2e_world.settings, e2e_world.fraud)


def check_the_fraud_model_still_answers_and_is_checked(settings: Settings, deployment: Deployment) -> None:
    """The first model keeps serving beside the new one, and its own drift check runs on its own traffic."""
    spec = find_spec(settings.model_roots, FRAUD_MODEL)
    began = datetime.now(UTC)
    report = send_traffic(deployment, sample_requests(settings, spec, 150), rate_per_s=100.0, warmup=0)
    assert report.failures == 0
    waits.wait_logged(settings, FRAUD_MODEL, began, 150, timeout=60, say=print)
    check = run_drift_check(settings, FRAUD_MODEL, actor="pytest", since=began)
    assert check.status != "insufficient_data", check
    answer = predict(deployment, sample_requests(settings, spec, 1))
    assert answer["model"] == FRAUD_MODEL and "probability" in answer["predictions"][0]
