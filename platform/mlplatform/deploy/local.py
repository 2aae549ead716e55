"""Model servers as supervised local processes: the embedded profile's deployer.

Each deployment is one process (``serve-<model>``) under the stack's supervisor, with its log in the state
directory, so `mlplatform stack down`-style cleanup and `mlplatform undeploy` stop it and all its children.

Every model gets its own port, so any number of models are served side by side.  Without ``port`` a deploy takes
the first free port from ``settings.serving.port`` up, skipping the ports other deployments hold; with ``port`` it
takes that one or says who has it.  The port is recorded with the deployment (``<serving_dir>/deployments/<model>
.json``) and held until ``undeploy``: a model deployed again (after a crash or ``stack down``) gets its recorded
port back when it is still free, else the next free one.  Every change rewrites the Prometheus targets file, so
Prometheus scrapes each server under its model's name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import re
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from mlplatform.config import Settings
from mlplatform.deploy.base import BACKENDS, Backend, Deployer, DeployError, Deployment
from mlplatform.specs import NAME_PATTERN
from mlplatform.stack.prometheus import ServerTarget, local_host, write_model_server_targets
from mlplatform.stack.supervisor import HealthTimeoutError, Supervisor, port_in_use

ENTRY_POINTS: dict[Backend, str] = {"bentoml": "bentoml/service.py", "kserve": "kserve/server.py"}
PROCESS_PREFIX = "serve-"
READY_TIMEOUT_S = 180.0
PORT_SEARCH_SPAN = 100
"""How many ports from ``settings.serving.port`` up a deploy tries before it asks for ``--port``."""
LOCK_FILE = ".lock"


@dataclass(frozen=True)
class LocalRecord:
    """What the deployer keeps of one deployment between commands: its backend and its port."""

    model: str
    backend: Backend
    port: int


class LocalProcessDeployer(Deployer):
    """Starts `serving/<backend>` entry points as child processes on ``settings.serving.host``, one port each."""

    def __init__(self, settings: Settings, supervisor: Supervisor | None = None) -> None:
        self.settings = settings
        self.supervisor = supervisor or Supervisor(settings.state_dir)

    def url(self, port: int) -> str:
        """Where a server on ``port`` answers."""
        return f"http://{local_host(self.settings.serving.host)}:{port}"

    def deploy(self, model: str, backend: Backend, port: int | None = None) -> Deployment:
        if backend not in BACKENDS:
            raise DeployError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        with self._locked():
            current = self._record(model)
            if current is not None and self.supervisor.status(_name(model)).running:
                record = self._kept(current, backend, port)
            else:
                record = self._start(model, backend, port, current)
        return self._wait_ready(record)

    def undeploy(self, model: str) -> bool:
        with self._locked():
            path = self._record_path(model)
            was_running = self.supervisor.status(_name(model)).running
            self.supervisor.stop(_name(model))
            path.unlink(missing_ok=True)
            self._write_targets()
        return was_running

    def list(self) -> list[Deployment]:
        deployments = []
        for record in self._records():
            running = self.supervisor.status(_name(record.model)).running
            ready, detail = self._probe(record) if running else (False, "not running")
            deployments.append(self._deployment(record, running=running, ready=ready, detail=detail))
        return deployments

    # -- start and ports -----------------------------------------------------------------------------------------------

    def _kept(self, current: LocalRecord, backend: Backend, port: int | None) -> LocalRecord:
        """Deploying a running model again keeps its server; a different backend or port needs an undeploy."""
        model = current.model
        if current.backend != backend:
            raise DeployError(f"{model} is already served by {current.backend}; run `mlplatform undeploy {model}`")
        if port is not None and port != current.port:
            raise DeployError(
                f"{model} is already served at {self.url(current.port)}; run `mlplatform undeploy {model}` first "
                f"to move it to port {port}"
            )
        return current

    def _start(self, model: str, backend: Backend, port: int | None, current: LocalRecord | None) -> LocalRecord:
        """Record the chosen port first (a concurrent deploy must see it held), then start the server on it."""
        entry = self.settings.serving.servers_dir / ENTRY_POINTS[backend]
        if not entry.is_file():
            raise DeployError(f"model server entry point {entry} not found (settings: serving.servers_dir)")
        record = LocalRecord(model, backend, self._choose_port(model, port, current))
        self._write_record(record)
        env = {**_inherited_env(), **self.settings.child_env("model_server"), "MLP_SERVING__PORT": str(record.port)}
        self.supervisor.start(_name(model), [sys.executable, str(entry), "--model", model], env, cwd=entry.parent)
        self._write_targets()
        return record

    def _choose_port(self, model: str, requested: int | None, current: LocalRecord | None) -> int:
        """The requested port if it is free, else the recorded one if still free, else the first free one."""
        host = self.settings.serving.host
        held = {record.port: record.model for record in self._records() if record.model != model}
        if requested is not None:
            if requested in held:
                raise DeployError(
                    f"port {requested} is held by the deployment of {held[requested]} ({self.url(requested)}); "
                    f"choose another --port, or leave it out to take a free one"
                )
            if not port_free(host, requested):
                raise DeployError(
                    f"port {requested} on {host} is taken by another program; choose another --port, or leave it "
                    "out to take a free one"
                )
            return requested
        if current is not None and current.port not in held and port_free(host, current.port):
            return current.port
        first = self.settings.serving.port
        last = min(first + PORT_SEARCH_SPAN, 65536) - 1
        for candidate in range(first, last + 1):
            if candidate not in held and port_free(host, candidate):
                return candidate
        raise DeployError(
            f"no free port in {first}-{last} on {host} ({len(held)} held by other deployments, the rest by other "
            "programs); pass --port, or set MLP_SERVING__PORT to search from elsewhere"
        )

    def _write_targets(self) -> None:
        host = local_host(self.settings.serving.host)
        write_model_server_targets(
            self.settings,
            [ServerTarget(record.model, record.backend, f"{host}:{record.port}") for record in self._records()],
        )

    # -- readiness ---------------------------------------------------------------------------------------------

    def _wait_ready(self, record: LocalRecord) -> Deployment:
        try:
            self.supervisor.wait_healthy(_name(record.model), self._ready_url(record), timeout=READY_TIMEOUT_S)
        except HealthTimeoutError as error:
            raise DeployError(f"{record.model} on {record.backend} did not become ready: {error}") from None
        return self._deployment(record, running=True, ready=True)

    def _deployment(self, record: LocalRecord, *, running: bool, ready: bool, detail: str = "") -> Deployment:
        return Deployment(
            model=record.model,
            backend=record.backend,
            url=self.url(record.port),
            running=running,
            ready=ready,
            detail=detail,
            log_path=self.supervisor.log_path(_name(record.model)),
        )

    def _ready_url(self, record: LocalRecord) -> str:
        if record.backend == "kserve":
            return f"{self.url(record.port)}/v2/models/{record.model}/ready"
        return f"{self.url(record.port)}/readyz"

    def _probe(self, record: LocalRecord) -> tuple[bool, str]:
        try:
            response = httpx.get(self._ready_url(record), timeout=2.0)
        except httpx.HTTPError as error:
            return False, f"no answer: {type(error).__name__}"
        return response.status_code == 200, "" if response.status_code == 200 else response.text[:200]

    # -- records -----------------------------------------------------------------------------------------------

    def _records_dir(self) -> Path:
        path = self.settings.serving_dir / "deployments"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One deploy or undeploy at a time per state directory: two deploys never choose the same port."""
        with (self._records_dir() / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _record_path(self, model: str) -> Path:
        if not re.fullmatch(NAME_PATTERN, model):
            raise DeployError(f"invalid model name {model!r}")
        return self._records_dir() / f"{model}.json"

    def _record(self, model: str) -> LocalRecord | None:
        path = self._record_path(model)
        return self._read(path) if path.is_file() else None

    def _records(self) -> tuple[LocalRecord, ...]:
        return tuple(self._read(path) for path in sorted(self._records_dir().glob("*.json")))

    def _read(self, path: Path) -> LocalRecord:
        """A record; one written before ports were recorded holds ``settings.serving.port``."""
        stored = json.loads(path.read_text())
        return LocalRecord(path.stem, stored["backend"], int(stored.get("port", self.settings.serving.port)))

    def _write_record(self, record: LocalRecord) -> None:
        self._record_path(record.model).write_text(json.dumps({"backend": record.backend, "port": record.port}))


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now: nothing answers there and the address can be bound.

    Bound with ``SO_REUSEADDR`` as the servers bind, so a port whose last connections linger in TIME_WAIT counts
    as free, while one another program listens on (on any address) does not.
    """
    if port_in_use(local_host(host), port):
        return False
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _name(model: str) -> str:
    return f"{PROCESS_PREFIX}{model}"


def _inherited_env() -> dict[str, str]:
    """PATH, HOME and locale from the caller; nothing else leaks into the server."""
    import os

    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
    return {key: os.environ[key] for key in keep if key in os.environ}
