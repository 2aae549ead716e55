"""Model servers as supervised local processes: the embedded profile's deployer.

Each deployment is one process (``serve-<model>``) under the stack's supervisor, with its log in the state
directory, so `mlplatform stack down`-style cleanup and `mlplatform undeploy` stop it and all its children.  One
model is served at a time per port: `settings.serving.port`.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import httpx

from mlplatform.config import Settings
from mlplatform.deploy.base import BACKENDS, Backend, Deployer, DeployError, Deployment
from mlplatform.specs import NAME_PATTERN
from mlplatform.stack.supervisor import HealthTimeoutError, Supervisor, port_in_use

ENTRY_POINTS: dict[Backend, str] = {"bentoml": "bentoml/service.py", "kserve": "kserve/server.py"}
PROCESS_PREFIX = "serve-"
READY_TIMEOUT_S = 180.0


class LocalProcessDeployer(Deployer):
    """Starts `serving/<backend>` entry points as child processes on 127.0.0.1."""

    def __init__(self, settings: Settings, supervisor: Supervisor | None = None) -> None:
        self.settings = settings
        self.supervisor = supervisor or Supervisor(settings.state_dir)

    @property
    def url(self) -> str:
        return f"http://{self.settings.serving.host}:{self.settings.serving.port}"

    def deploy(self, model: str, backend: Backend) -> Deployment:
        if backend not in BACKENDS:
            raise DeployError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        current = self._record(model)
        if current is not None and self.supervisor.status(_name(model)).running:
            if current["backend"] == backend:
                return self._wait_ready(model, backend)
            raise DeployError(f"{model} is already served by {current['backend']}; run `mlplatform undeploy {model}`")
        others = [d.model for d in self.list() if d.running]
        if others:
            raise DeployError(f"port {self.settings.serving.port} already serves {others[0]}; undeploy it first")
        if port_in_use(self.settings.serving.host, self.settings.serving.port):
            raise DeployError(
                f"port {self.settings.serving.port} on {self.settings.serving.host} is taken by another program; "
                "set MLP_SERVING__PORT"
            )
        entry = self.settings.serving.servers_dir / ENTRY_POINTS[backend]
        if not entry.is_file():
            raise DeployError(f"model server entry point {entry} not found (settings: serving.servers_dir)")
        env = {**_inherited_env(), **self.settings.child_env()}
        self.supervisor.start(_name(model), [sys.executable, str(entry), "--model", model], env, cwd=entry.parent)
        self._record_path(model).write_text(json.dumps({"backend": backend}))
        return self._wait_ready(model, backend)

    def undeploy(self, model: str) -> bool:
        record = self._record_path(model)
        was_running = self.supervisor.status(_name(model)).running
        self.supervisor.stop(_name(model))
        record.unlink(missing_ok=True)
        return was_running

    def list(self) -> list[Deployment]:
        deployments = []
        for record in sorted(self._records_dir().glob("*.json")):
            model = record.stem
            backend: Backend = json.loads(record.read_text())["backend"]
            running = self.supervisor.status(_name(model)).running
            ready, detail = self._probe(model, backend) if running else (False, "not running")
            deployments.append(
                Deployment(
                    model=model,
                    backend=backend,
                    url=self.url,
                    running=running,
                    ready=ready,
                    detail=detail,
                    log_path=self.supervisor.log_path(_name(model)),
                )
            )
        return deployments

    def _wait_ready(self, model: str, backend: Backend) -> Deployment:
        try:
            self.supervisor.wait_healthy(_name(model), self._ready_url(model, backend), timeout=READY_TIMEOUT_S)
        except HealthTimeoutError as error:
            raise DeployError(f"{model} on {backend} did not become ready: {error}") from None
        return Deployment(
            model=model,
            backend=backend,
            url=self.url,
            running=True,
            ready=True,
            log_path=self.supervisor.log_path(_name(model)),
        )

    def _ready_url(self, model: str, backend: Backend) -> str:
        if backend == "kserve":
            return f"{self.url}/v2/models/{model}/ready"
        return f"{self.url}/readyz"

    def _probe(self, model: str, backend: Backend) -> tuple[bool, str]:
        try:
            response = httpx.get(self._ready_url(model, backend), timeout=2.0)
        except httpx.HTTPError as error:
            return False, f"no answer: {type(error).__name__}"
        return response.status_code == 200, "" if response.status_code == 200 else response.text[:200]

    def _records_dir(self) -> Path:
        path = self.settings.serving_dir / "deployments"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _record_path(self, model: str) -> Path:
        if not re.fullmatch(NAME_PATTERN, model):
            raise DeployError(f"invalid model name {model!r}")
        return self._records_dir() / f"{model}.json"

    def _record(self, model: str) -> dict[str, str] | None:
        path = self._record_path(model)
        return json.loads(path.read_text()) if path.is_file() else None


def _name(model: str) -> str:
    return f"{PROCESS_PREFIX}{model}"


def _inherited_env() -> dict[str, str]:
    """PATH, HOME and locale from the caller; nothing else leaks into the server."""
    import os

    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    return {key: os.environ[key] for key in keep if key in os.environ}
