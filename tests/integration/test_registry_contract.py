"""One contract for the registry adapter and the platform DB, run against every backend they support.

MLflow's backend store: sqlite (embedded) and PostgreSQL (production), each behind a real `mlflow server`.
Platform DB: sqlite and PostgreSQL through SQLAlchemy, schema created by the Alembic migrations.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlplatform.config import Settings
from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, ModelRegistry
from mlplatform.store import PlatformStore
from tests.support.world import start_mlflow, world_settings

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """Settings whose MLflow server and platform DB use the parametrised backend."""
    if request.param == "sqlite":
        settings = world_settings(tmp_path / "state")
    else:
        # MLflow and the platform DB share one PostgreSQL database, as a small production install may.
        database = request.getfixturevalue("postgres_database")
        settings = world_settings(tmp_path / "state", mlflow={"backend_store_uri": database}, db={"url": database})
    supervisor = start_mlflow(settings)
    try:
        yield settings
    finally:
        supervisor.stop("mlflow")


def _log_tiny_model(settings: Settings, registry: ModelRegistry) -> tuple[str, str]:
    """A real (tiny) scikit-learn model logged to a run; returns (run id, logged model id)."""
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(settings.mlflow.resolved_tracking_uri())
    features = np.array([[0.0], [1.0], [2.0], [3.0]])
    model = LogisticRegression().fit(features, [0, 0, 1, 1])
    experiment_id = registry.client.create_experiment(f"contract-{Path(settings.state_dir).parent.name}")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
    return run.info.run_id, str(info.model_id)


def test_register_is_idempotent_and_alias_moves_are_recorded(backend_settings: Settings) -> None:
    registry = ModelRegistry(backend_settings)
    run_id, model_id = _log_tiny_model(backend_settings, registry)

    first, created = registry.register("contract_model", run_id, model_id, {"mlplatform.feature_service": "fs_v1"})
    again, created_again = registry.register("contract_model", run_id, model_id, {})
    assert (first.version, created) == ("1", True)
    assert (again.version, created_again) == ("1", False)

    assert registry.move_alias("contract_model", CHALLENGER, "1", actor="alice", reason="trained") is not None
    assert registry.move_alias("contract_model", CHALLENGER, "1", actor="alice", reason="again") is None
    registry.move_alias("contract_model", CHAMPION, "1", actor="bob", reason="gate passed")

    described = registry.describe("contract_model")
    assert described["aliases"] == {CHALLENGER: "1", CHAMPION: "1"}
    assert described["versions"][0]["lineage"] == {"feature_service": "fs_v1"}
    history = [(e["alias"], e["from_version"], e["to_version"], e["actor"]) for e in described["alias_history"]]
    assert history == [(CHALLENGER, None, "1", "alice"), (CHAMPION, None, "1", "bob")]


def test_unknown_model_is_a_lookup_error(backend_settings: Settings) -> None:
    with pytest.raises(LookupError, match="'nope' is not registered"):
        ModelRegistry(backend_settings).describe("nope")
    assert ModelRegistry(backend_settings).alias_holder("nope", CHAMPION) is None


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'platform.db'}"
    return str(request.getfixturevalue("postgres_database"))


def test_platform_store_migrates_idempotently_and_keeps_history_in_order(store_url: str) -> None:
    store = PlatformStore.migrated(store_url)
    PlatformStore.migrated(store_url).dispose()  # a second upgrade migrates nothing and breaks nothing
    PlatformStore.connect(store_url).dispose()  # and the schema is at this code's revision
    for from_version, to_version in ((None, "1"), ("1", "2"), ("2", "1")):
        store.record_alias_move(
            model="m", alias=CHAMPION, from_version=from_version, to_version=to_version, actor="a", reason="r"
        )
    store.record_alias_move(model="other", alias=CHAMPION, from_version=None, to_version="9", actor="a", reason="r")
    history = store.alias_history("m", CHAMPION)
    assert [(e.from_version, e.to_version) for e in history] == [(None, "1"), ("1", "2"), ("2", "1")]
    assert all(e.created_at.tzinfo is not None for e in history)
    assert store.alias_history("m", CHALLENGER) == []
    store.dispose()
