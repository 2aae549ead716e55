"""The training pipeline against a real MLflow server, real Feast (duckdb offline store) and the demo data."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, ModelRegistry, RegistryUnavailableError
from mlplatform.training.pipeline import TrainingDataError, TrainingRequest, prepare_training_set, run_all
from tests.support.environment import free_port
from tests.support.world import MlflowServer, settings_with_spec

pytestmark = pytest.mark.integration


def _request(model: str, key: str, **extra: object) -> TrainingRequest:
    return TrainingRequest(model=model, run_key=key, actor="pytest", reason="test", **extra)  # type: ignore[arg-type]


def test_first_run_becomes_champion_with_lineage_and_artifacts(trained_world: MlflowServer, tmp_path: Path) -> None:
    settings = settings_with_spec(trained_world, tmp_path, "fraud_first")
    outcome = run_all(settings, _request("fraud_first", "dag/run-1", dag_id="train_fraud_first", dag_run_id="run-1"))

    assert outcome.promoted and outcome.champion_version == outcome.version == "1"
    assert outcome.metrics["roc_auc"] >= 0.85
    registry = ModelRegistry(settings)
    described = registry.describe("fraud_first")
    assert described["aliases"] == {CHALLENGER: "1", CHAMPION: "1"}
    lineage = described["versions"][0]["lineage"]
    assert lineage["feature_service"] == "fraud_detector_v1"
    views = json.loads(lineage["feature_views"])
    assert set(views["feast.feature_views"].split(",")) >= {"customer_profile", "transaction_stats"}
    assert int(lineage["row_count"]) > 1000
    assert lineage["dag_id"] == "train_fraud_first" and lineage["dag_run_id"] == "run-1"
    assert len(lineage["data_hash"]) == 16 and lineage["git_commit"]
    artifacts = {item.path for item in registry.client.list_artifacts(outcome.run_id, "plots")}
    assert {f"plots/{name}.png" for name in ("roc_curve", "pr_curve", "confusion_matrix", "feature_importance")} == (
        artifacts
    )
    reference = {item.path for item in registry.client.list_artifacts(outcome.run_id, "reference")}
    assert reference == {"reference/features.parquet"}
    history = registry.store.alias_history("fraud_first", CHAMPION)
    assert [(event.from_version, event.to_version, event.actor) for event in history] == [(None, "1", "pytest")]
    assert "gate passed" in history[0].reason


def test_same_run_key_never_registers_twice(trained_world: MlflowServer, tmp_path: Path) -> None:
    settings = settings_with_spec(trained_world, tmp_path, "fraud_retry")
    first = run_all(settings, _request("fraud_retry", "dag/retry-1"))
    again = run_all(settings, _request("fraud_retry", "dag/retry-1"))
    assert (again.run_id, again.version) == (first.run_id, first.version)
    assert [v.version for v in ModelRegistry(settings).versions("fraud_retry")] == ["1"]
    assert len(ModelRegistry(settings).store.alias_history("fraud_retry", CHAMPION)) == 1


def test_challenger_must_beat_champion(trained_world: MlflowServer, tmp_path: Path) -> None:
    settings = settings_with_spec(trained_world, tmp_path, "fraud_gate")
    run_all(settings, _request("fraud_gate", "dag/gate-1"))
    # A crippled challenger: two shallow trees cannot beat the champion on the same holdout.
    weak = run_all(settings, _request("fraud_gate", "dag/gate-2", estimator_params={"max_iter": 2, "max_depth": 1}))
    assert weak.version == "2" and not weak.promoted
    assert weak.champion_version == "1"
    assert "does not beat champion v1" in weak.decision
    registry = ModelRegistry(settings)
    assert registry.alias_holder("fraud_gate", CHALLENGER).version == "2"  # type: ignore[union-attr]
    gate = json.loads(registry.client.get_model_version("fraud_gate", "2").tags["mlplatform.gate"])
    assert gate["passed"] is False and gate["champion_version"] == "1"


def test_gate_minimums_block_promotion_of_first_model(trained_world: MlflowServer, tmp_path: Path) -> None:
    settings = settings_with_spec(trained_world, tmp_path, "fraud_strict", gates__minimums={"roc_auc": 0.999})
    outcome = run_all(settings, _request("fraud_strict", "dag/strict-1"))
    assert not outcome.promoted and outcome.champion_version is None
    assert "below the minimum 0.9990" in outcome.decision


def test_empty_data_window_fails_clearly_and_registers_nothing(trained_world: MlflowServer, tmp_path: Path) -> None:
    settings = settings_with_spec(trained_world, tmp_path, "fraud_empty")
    long_ago = datetime.fromisoformat("2020-01-01T00:00:00+00:00")
    window = r"\[2019-11-02T00:00:00\+00:00, 2020-01-01T00:00:00\+00:00\)"
    with pytest.raises(TrainingDataError, match=r"no labelled rows in the data window " + window):
        prepare_training_set(settings, _request("fraud_empty", "dag/empty-1", window_end=long_ago))
    with pytest.raises(LookupError, match="not registered"):
        ModelRegistry(settings).describe("fraud_empty")


def test_missing_label_column_names_file_and_column(trained_world: MlflowServer, tmp_path: Path) -> None:
    settings = settings_with_spec(trained_world, tmp_path, "fraud_nolabel", label__column="chargeback")
    with pytest.raises(TrainingDataError, match=r"transactions\.parquet: missing column\(s\) chargeback"):
        prepare_training_set(settings, _request("fraud_nolabel", "dag/nolabel-1"))


def test_unknown_feature_service_fails_clearly(trained_world: MlflowServer, tmp_path: Path) -> None:
    settings = settings_with_spec(trained_world, tmp_path, "fraud_nofs", features__service="no_such_service")
    with pytest.raises(Exception, match="no_such_service"):
        prepare_training_set(settings, _request("fraud_nofs", "dag/nofs-1"))
    with pytest.raises(LookupError):
        ModelRegistry(settings).describe("fraud_nofs")


def test_unreachable_mlflow_fails_fast_and_names_the_url(trained_world: MlflowServer, tmp_path: Path) -> None:
    settings = settings_with_spec(trained_world, tmp_path, "fraud_offline")
    dead = f"http://127.0.0.1:{free_port()}"
    offline = settings.model_copy(update={"mlflow": settings.mlflow.model_copy(update={"tracking_uri": dead})})
    with pytest.raises(RegistryUnavailableError, match=f"MLflow at {dead} is unreachable"):
        prepare_training_set(offline, _request("fraud_offline", "dag/offline-1"))


def test_window_override_is_recorded(trained_world: MlflowServer, tmp_path: Path) -> None:
    settings = settings_with_spec(trained_world, tmp_path, "fraud_window")
    outcome = run_all(settings, _request("fraud_window", "dag/window-1", window_days=30))
    lineage = ModelRegistry(settings).versions("fraud_window")[0].lineage
    start, end = (datetime.fromisoformat(lineage[k]) for k in ("data_window_start", "data_window_end"))
    assert end - start == timedelta(days=30)
    assert outcome.version == "1"
    assert shutil.which("git") is None or lineage["git_commit"] != ""
