"""podman, as the image smoke test drives it: plays Kubernetes YAML, runs one-off containers, reads what runs.

The engine settings are the ones `make images` settled on (infrastructure/docker/images.sh): podman's own
defaults where they start a container, else the project's containers.conf (runc, explicit limits).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.support.environment import REPO_ROOT, in_ci, skip_missing

CONTAINERS_CONF = REPO_ROOT / "infrastructure" / "docker" / "containers.conf"


class Podman:
    """One podman CLI with the environment its containers start in here."""

    def __init__(self, probe_image: str) -> None:
        path = shutil.which("podman")
        if path is None:
            how = "`make images` installs it where it can (Debian: apt-get install podman buildah runc debootstrap)"
            if in_ci():
                raise RuntimeError(f"podman is missing: {how}")
            skip_missing("podman", how)
        assert path is not None
        self.path = path
        self.env = dict(os.environ)
        if "CONTAINERS_CONF" not in self.env and not self._starts(probe_image):
            self.env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)

    def _starts(self, image: str) -> bool:
        return self.run("run", "--rm", "--network", "none", image, "true", check=False).returncode == 0

    def run(
        self, *args: str, check: bool = True, timeout: float = 300, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.path, *args], capture_output=True, text=True, env=self.env, timeout=timeout, input=stdin, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args[:3])} failed ({result.returncode}): {result.stderr[-3000:]}")
        return result

    @staticmethod
    def kube_file(manifests: Sequence[dict[str, Any]], folder: Path, name: str) -> Path:
        """``manifests`` as a YAML file in ``folder``, for `play`, `down` and reading after a failure."""
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump_all(manifests, sort_keys=False))
        return path

    def play(self, path: Path) -> None:
        self.run("kube", "play", "--start", str(path))

    def down(self, played: Path) -> None:
        self.run("kube", "down", str(played), check=False, timeout=120)

    def inspect(self, container: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = json.loads(self.run("container", "inspect", container).stdout)
        return found[0]

    def containers_of(self, pod_prefix: str) -> list[str]:
        """Names of the containers (infra container excluded) of the pods whose names start with ``pod_prefix``."""
        result = self.run("ps", "--all", "--pod", "--format", "json")
        return sorted(
            entry["Names"][0]
            for entry in json.loads(result.stdout or "[]")
            if str(entry.get("PodName", "")).startswith(pod_prefix) and not entry.get("IsInfra")
        )

    def logs(self, container: str, tail: int = 12) -> str:
        result = self.run("logs", "--tail", str(tail), container, check=False)
        return result.stdout + result.stderr

    def image_size(self, image: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())
