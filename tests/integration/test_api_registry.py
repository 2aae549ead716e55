"""The API against a real MLflow registry with models trained by the real pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlplatform.operations.services import ApiServices
from mlplatform.training.pipeline import TrainingRequest, run_all
from mlplatform.webapp import create_app
from tests.support.api_world import cheap_hash
from tests.support.world import MlflowServer, settings_with_spec

pytestmark = pytest.mark.integration
MODEL = "fraud_api"


def test_versions_compare_promote_and_rollback_on_the_real_registry(
    trained_world: MlflowServer, tmp_path: Path
) -> None:
    settings = settings_with_spec(trained_world, tmp_path, MODEL)
    first = run_all(settings, TrainingRequest(model=MODEL, run_key="api/run-1", actor="pytest"))
    second = run_all(
        settings,
        TrainingRequest(model=MODEL, run_key="api/run-2", actor="pytest", estimator_params={"max_iter": 3}),
    )
    assert first.promoted and (first.version, second.version) == ("1", "2")
    services = ApiServices.from_settings(settings, password_hash=cheap_hash())
    services.auth.create_user("boss", "admin", None)
    headers = {"Authorization": f"Bearer {services.auth.create_token('boss', 't', 1).secret}"}
    client = TestClient(create_app(settings, services))

    described = client.get(f"/api/v1/models/{MODEL}", headers=headers).json()
    assert [v["version"] for v in described["versions"]] == ["2", "1"]
    assert described["versions"][1]["metrics"]["roc_auc"] > 0.5
    assert described["versions"][1]["lineage"]["run_key"] == "api/run-1"
    compared = client.get(f"/api/v1/models/{MODEL}/compare?a=1&b=2", headers=headers).json()
    assert {row["metric"] for row in compared["metrics"]} >= {"roc_auc", "average_precision"}
    version = client.get(f"/api/v1/models/{MODEL}/versions/2", headers=headers).json()
    assert version["gate"] is not None  # the pipeline's decision is shown

    # The API's gate reaches the pipeline's verdict on v2 (same rule, stored holdout scores).
    promoted = client.post(f"/api/v1/models/{MODEL}/promote", json={"version": 2}, headers=headers)
    if second.promoted:
        assert promoted.status_code == 200 and not promoted.json()["promoted"]  # already champion
    else:
        assert promoted.status_code == 409 and promoted.json()["type"] == "/problems/gate-refused"
        forced = client.post(
            f"/api/v1/models/{MODEL}/promote",
            json={"version": 2, "override": True, "reason": "integration test"},
            headers=headers,
        )
        assert forced.status_code == 200 and forced.json()["overridden"]
    rolled = client.post(f"/api/v1/models/{MODEL}/rollback", json={"reason": "back to v1"}, headers=headers)
    assert rolled.json() == {"model": MODEL, "from_version": "2", "to_version": "1"}
    assert services.registry.alias_holder(MODEL, "champion").version == "1"  # type: ignore[union-attr]
    # A single version shows its aliases too (`models version`), not only the model's description.
    assert client.get(f"/api/v1/models/{MODEL}/versions/1", headers=headers).json()["aliases"] == ["champion"]
    assert client.get(f"/api/v1/models/{MODEL}/versions/2", headers=headers).json()["aliases"] == ["challenger"]
    actions = [event.action for event in services.audit.query(target=MODEL)]
    assert actions[0] == "model.rollback"
    assert client.get("/api/v1/models/not_a_model", headers=headers).status_code == 404
