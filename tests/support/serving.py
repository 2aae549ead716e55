"""Shared pieces of the serving tests: a served world (real MLflow, trained versions, materialised Feast) and
model servers started as real processes on 127.0.0.1.  The fixtures over them live in
tests/integration/conftest.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mlplatform.config import ServingSettings, Settings
from tests.support.environment import REPO_ROOT, free_port
from tests.support.waiting import wait_for
from tests.support.world import WORLD_END, share_fraud_data

MODEL = "fraud_serve"
KINDS = ("kserve", "bentoml")
SERVER_START_TIMEOUT_S = 180


@dataclass
class ServedWorld:
    settings: Settings
    versions: list[str]
    """Version 1 (the champion when servers start) and version 2 (other parameters), for swap tests."""
    customers: list[int]


def spec_dir(tmp: Path, data_dir: Path, *names: str) -> Path:
    """A private models folder holding copies of the fraud spec under ``names`` (use it as ``models_dir``); each
    copy shares the fraud model's tables under ``data_dir``."""
    spec = yaml.safe_load((REPO_ROOT / "pipelines" / "models" / "fraud_detector" / "spec.yaml").read_text())
    folder = tmp / "models"
    for name in names:
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / "spec.yaml").write_text(yaml.safe_dump({**spec, "name": name}))
        share_fraud_data(data_dir, name)
    return folder


def serving_settings(base: Settings, tmp: Path, **overrides: Any) -> Settings:
    """``base`` with its own serving directory (cache + prediction log), a free port and a 1 s poll."""
    values: dict[str, Any] = {"port": free_port(), "poll_interval_s": 1.0, "model_cache_dir": tmp / "serving"}
    values.update(overrides)
    return base.model_copy(update={"serving": ServingSettings(**values)})


@dataclass
class ServerProcess:
    kind: str
    settings: Settings
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.settings.serving.host}:{self.settings.serving.port}"

    def predict_path(self, model: str = MODEL) -> str:
        return "/predict" if self.kind == "bentoml" else f"/v1/models/{model}:predict"

    @property
    def entities_field(self) -> str:
        return "entities" if self.kind == "bentoml" else "instances"

    def predict(self, client: httpx.Client, entities: Any, model: str = MODEL, **extra: Any) -> httpx.Response:
        return client.post(self.url + self.predict_path(model), json={self.entities_field: entities, **extra})

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM (graceful shutdown) and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"{self.kind} server ignored SIGTERM for {timeout} s:\n{self.log()[-3000:]}") from None


def start_server(kind: str, settings: Settings, model: str = MODEL, wait_ready: bool = True) -> ServerProcess:
    """Start a real server process for ``model`` and wait until it answers (ready, or at least live)."""
    script = REPO_ROOT / "serving" / kind / ("server.py" if kind == "kserve" else "service.py")
    log_path = settings.serving_dir.parent / f"{kind}-{settings.serving.port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **settings.child_env("model_server"), "PYTHONUNBUFFERED": "1", "BENTOML_DO_NOT_TRACK": "true"}
    with log_path.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, str(script), "--model", model], env=env, cwd=REPO_ROOT, stdout=sink, stderr=sink
        )
    server = ServerProcess(kind, settings, process, log_path)
    probe = "/readyz" if wait_ready else "/livez"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{kind} server exited with {process.returncode}:\n{server.log()[-4000:]}")
        try:
            return httpx.get(server.url + probe, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(up, SERVER_START_TIMEOUT_S, f"the {kind} server's {probe}", interval=0.5)
    except AssertionError as error:
        server.terminate()
        raise AssertionError(f"{error}:\n{server.log()[-4000:]}") from None
    return server


def materialize_online(settings: Settings) -> None:
    """The served world's features into ``settings``' online store (a Redis of the test's own, say).

    An explicit range: the shared registry already records the sqlite store's materialisation, which is not this
    store's."""
    from mlplatform.features.store import FeatureStoreAdapter

    FeatureStoreAdapter(settings).materialize(WORLD_END, start=WORLD_END - timedelta(days=365))


class LimitedServers:
    """One model server of each kind over the served world, with small limits (64 KiB bodies, 16 entities per
    request), started when first asked for: the bad-input and schema-fuzz suites share them."""

    def __init__(self, world: ServedWorld, tmp: pytest.TempPathFactory) -> None:
        self.world = world
        self.tmp = tmp
        self.started: dict[str, ServerProcess] = {}

    def get(self, kind: str) -> ServerProcess:
        if kind not in self.started:
            folder = self.tmp.mktemp(f"limited-{kind}")
            settings = serving_settings(self.world.settings, folder, max_body_kb=64, max_batch_size=16)
            self.started[kind] = start_server(kind, settings)
        return self.started[kind]


def labels_in_model_dir(settings: Settings, model: str) -> None:
    """The fraud tables under ``model``'s own data directory (where requests' values are read from its label table)
    when the world keeps them directly in the data directory; nothing to do where that directory exists."""
    folder = settings.model_data_dir(model)
    if not folder.exists():
        folder.symlink_to(settings.data_dir, target_is_directory=True)
