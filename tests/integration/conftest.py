"""Fixtures of the integration tests: a trained world (real MLflow server, data, Feast registry) shared by the
training tests, a served world on top of it, and model servers as real processes (tests/support/world.py and
tests/support/serving.py hold the pieces)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator

import pytest

from tests.support.serving import MODEL, LimitedServers, ServedWorld, ServerProcess, spec_dir
from tests.support.world import WORLD_END, MlflowServer, build_world, start_mlflow, world_settings


@pytest.fixture(scope="session")
def trained_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One MLflow server + data + Feast registry shared by the training tests (each uses its own model name)."""
    settings = world_settings(tmp_path_factory.mktemp("world") / "state")
    build_world(settings)
    supervisor = start_mlflow(settings)
    try:
        yield MlflowServer(settings=settings, supervisor=supervisor)
    finally:
        supervisor.stop("mlflow")


@pytest.fixture(scope="session")
def served_world(trained_world: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> ServedWorld:
    """Two versions of MODEL in the real MLflow server, version 1 holding ``champion``; Feast sqlite materialised."""
    import pandas as pd

    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.registry.mlflow_registry import CHAMPION, ModelRegistry
    from mlplatform.training.pipeline import TrainingRequest, run_all

    tmp = tmp_path_factory.mktemp("served")
    models_dir = spec_dir(tmp, trained_world.settings.data_dir, MODEL, "fraud_unregistered")
    settings = trained_world.settings.model_copy(update={"models_dir": models_dir})
    FeatureStoreAdapter(settings).materialize(WORLD_END)
    first = run_all(settings, TrainingRequest(model=MODEL, run_key="serve/v1", actor="pytest", reason="serving"))
    second = run_all(
        settings,
        TrainingRequest(
            model=MODEL, run_key="serve/v2", actor="pytest", reason="serving", estimator_params={"max_iter": 40}
        ),
    )
    ModelRegistry(settings).move_alias(MODEL, CHAMPION, first.version, actor="pytest", reason="serving tests start")
    stats = pd.read_parquet(settings.model_data_dir("fraud_detector") / "transaction_stats.parquet")
    customers = sorted(int(value) for value in stats["customer_id"].unique())[:50]
    return ServedWorld(settings=settings, versions=[first.version, second.version], customers=customers)


@pytest.fixture(scope="session")
def limited_servers(served_world: ServedWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LimitedServers]:
    servers = LimitedServers(served_world, tmp_path_factory)
    yield servers
    for server in servers.started.values():
        server.terminate()


@pytest.fixture()
def running(request: pytest.FixtureRequest) -> Iterator[list[ServerProcess]]:
    """Servers a test starts; all terminated afterwards, whatever happens."""
    servers: list[ServerProcess] = []
    yield servers
    for server in servers:
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(30)
            except subprocess.TimeoutExpired:
                server.process.kill()
