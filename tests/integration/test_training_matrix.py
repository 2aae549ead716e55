"""Every estimator family and task through the training pipeline against one real MLflow server.

The matrix skips Feast: a small synthetic training set is stored with the run exactly as ``prepare_training_set``
stores one (``record_training_set``), then the real steps run: ``train_and_evaluate`` (fit, metrics, plots,
reference, skops model), ``register_version`` and ``gate_and_promote``; the registered version is downloaded and
loaded as a model server loads it (skops under the trust policy) and scored.  One full ``run_all`` per task
(multiclass and regression here; the binary one is test_training_pipeline.py's) goes through Feast as well.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mlplatform.config import Settings
from mlplatform.registry.lineage import Lineage
from mlplatform.registry.mlflow_registry import CHALLENGER, CHAMPION, ModelRegistry, mlflow_client
from mlplatform.specs import TASK_METRICS, SpecError, find_spec
from mlplatform.training import estimators
from mlplatform.training.evaluate import model_outputs, prediction_column
from mlplatform.training.pipeline import (
    REFERENCE_ARTIFACT,
    TrainingRequest,
    gate_and_promote,
    load_labels,
    load_version,
    open_run,
    record_training_set,
    register_version,
    run_all,
    train_and_evaluate,
)
from tests.support.world import MlflowServer

pytestmark = pytest.mark.integration

INPUTS = ["f0", "f1", "f2", "f3", "f4"]
ROWS = 600
PLOTS = {
    "binary": {"roc_curve", "pr_curve", "confusion_matrix", "feature_importance"},
    "multiclass": {"confusion_matrix", "feature_importance"},
    "regression": {"predicted_vs_actual", "residuals", "feature_importance"},
}
GATES = {
    "binary": {"minimums": {"roc_auc": 0.6}},
    "multiclass": {"minimums": {"roc_auc": 0.6, "accuracy": 0.4}},
    "regression": {"minimums": {"r2": 0.3}, "maximums": {"rmse": 100.0}},
}


@dataclass(frozen=True)
class Case:
    name: str
    task: str
    estimator: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)


def _pipeline(final: dict[str, Any], name: str) -> dict[str, Any]:
    """Scaling of the continuous inputs, one-hot of the small integer one, then ``final``."""
    return {
        "class_path": "sklearn.pipeline.Pipeline",
        "steps": [
            {
                "name": "prepare",
                "class_path": "sklearn.compose.ColumnTransformer",
                "transformers": [
                    {"name": "scaled", "class_path": "sklearn.preprocessing.StandardScaler", "columns": INPUTS[:4]},
                    {
                        "name": "onehot",
                        "class_path": "sklearn.preprocessing.OneHotEncoder",
                        "params": {"handle_unknown": "ignore"},
                        "columns": ["f4"],
                    },
                ],
            },
            {"name": name, **final},
        ],
    }


TREES = {"n_estimators": 10, "max_depth": 4, "random_state": 0}
CASES = [
    Case("m_forest", "binary", {"class_path": "sklearn.ensemble.RandomForestClassifier", "params": TREES}),
    Case("m_extra_trees", "binary", {"class_path": "sklearn.ensemble.ExtraTreesClassifier", "params": TREES}),
    Case("m_boosting", "binary", {"class_path": "sklearn.ensemble.GradientBoostingClassifier", "params": TREES}),
    Case("m_logistic", "binary", {"class_path": "sklearn.linear_model.LogisticRegression"}),
    Case("m_svc", "binary", {"class_path": "sklearn.svm.SVC", "params": {"probability": True, "random_state": 0}}),
    Case(
        "m_neighbors", "binary", {"class_path": "sklearn.neighbors.KNeighborsClassifier", "params": {"n_neighbors": 15}}
    ),
    Case(
        "m_columns",
        "binary",
        _pipeline({"class_path": "sklearn.linear_model.LogisticRegression"}, "model"),
        overrides={"model__C": 0.5},
    ),
    Case(
        "m_lightgbm",
        "binary",
        {"class_path": "lightgbm.LGBMClassifier", "params": {"n_estimators": 20, "verbose": -1, "n_jobs": 1}},
    ),
    Case("m_xgboost", "binary", {"class_path": "xgboost.XGBClassifier", "params": {**TREES, "n_jobs": 1}}),
    Case("m_multi_forest", "multiclass", {"class_path": "sklearn.ensemble.RandomForestClassifier", "params": TREES}),
    Case("m_multi_xgboost", "multiclass", {"class_path": "xgboost.XGBClassifier", "params": {**TREES, "n_jobs": 1}}),
    Case(
        "m_multi_lightgbm",
        "multiclass",
        {"class_path": "lightgbm.LGBMClassifier", "params": {"n_estimators": 20, "verbose": -1, "n_jobs": 1}},
    ),
    Case("m_reg_forest", "regression", {"class_path": "sklearn.ensemble.RandomForestRegressor", "params": TREES}),
    Case("m_reg_ridge", "regression", _pipeline({"class_path": "sklearn.linear_model.Ridge"}, "ridge")),
    Case(
        "m_reg_lightgbm",
        "regression",
        {"class_path": "lightgbm.LGBMRegressor", "params": {"n_estimators": 20, "verbose": -1, "n_jobs": 1}},
    ),
    Case("m_reg_xgboost", "regression", {"class_path": "xgboost.XGBRegressor", "params": {**TREES, "n_jobs": 1}}),
]


def synthetic_training_set(task: str, rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """A learnable table over 30 days: four continuous inputs, one small integer input, the task's label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "entity_id": rng.integers(1, 200, rows),
            "event_timestamp": pd.Timestamp("2026-01-01", tz="UTC")
            + pd.to_timedelta(np.sort(rng.uniform(0, 30 * 86_400, rows)), unit="s"),
            **{name: rng.normal(size=rows) for name in INPUTS[:4]},
            "f4": rng.integers(0, 4, rows),
        }
    )
    signal = 1.5 * frame["f0"] - frame["f1"] + 0.5 * frame["f2"] * frame["f3"] + 0.4 * frame["f4"]
    noise = rng.normal(scale=0.5, size=rows)
    if task == "binary":
        frame["label"] = (signal + noise > 0.6).astype("int64")
    elif task == "multiclass":
        frame["label"] = np.digitize(signal + noise, [0.0, 1.2]).astype("int64")
    else:
        frame["label"] = 10.0 + 3.0 * signal + noise
    return frame


def write_spec(models_dir: Path, name: str, task: str, estimator: dict[str, Any], **extra: Any) -> None:
    spec = {
        "name": name,
        "task": task,
        "entity": "thing",
        "entity_key": "entity_id",
        "features": {"service": "unused_in_the_matrix"},
        "label": {"source": "labels.parquet", "column": "label"},
        "estimator": estimator,
        "gates": GATES[task],
        **extra,
    }
    (models_dir / name).mkdir(parents=True, exist_ok=True)
    (models_dir / name / "spec.yaml").write_text(yaml.safe_dump(spec))


def stage_run(settings: Settings, request: TrainingRequest, frame: pd.DataFrame) -> str:
    """A run holding ``frame`` as its training set, as ``prepare_training_set`` leaves one."""
    spec = find_spec(settings.model_roots, request.model)
    client = mlflow_client(settings)
    run_id = open_run(client, spec, request)
    start, end = frame["event_timestamp"].min(), frame["event_timestamp"].max()
    lineage = Lineage(
        feature_service=spec.features.service,
        feature_views="{}",
        data_window_start=start.isoformat(),
        data_window_end=end.isoformat(),
        row_count=str(len(frame)),
        data_hash="synthetic",
        spec_hash=spec.fingerprint(),
        git_commit="test",
        dag_id="",
        dag_run_id="",
        reason=request.reason,
    )
    record_training_set(client, run_id, frame, INPUTS, lineage)
    return run_id


@pytest.fixture(scope="module")
def matrix_settings(trained_world: MlflowServer, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    models_dir = tmp_path_factory.mktemp("matrix") / "models"
    for case in CASES:
        write_spec(models_dir, case.name, case.task, case.estimator)
    return trained_world.settings.model_copy(update={"models_dir": models_dir})


def _request(model: str, key: str, **extra: Any) -> TrainingRequest:
    return TrainingRequest(model=model, run_key=key, actor="pytest", reason="matrix", **extra)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_family_trains_registers_and_loads_as_served(matrix_settings: Settings, case: Case) -> None:
    settings = matrix_settings
    request = _request(case.name, f"matrix/{case.name}", estimator_params=case.overrides)
    frame = synthetic_training_set(case.task)
    run_id = stage_run(settings, request, frame)

    metrics = train_and_evaluate(settings, request, run_id)
    version = register_version(settings, request, run_id)
    decision = gate_and_promote(settings, request, version)

    assert set(TASK_METRICS[case.task]) <= set(metrics)
    assert metrics["fit_seconds"] > 0 and metrics["train_rows"] + metrics["holdout_rows"] == ROWS
    assert decision.passed, decision.summary
    registry = ModelRegistry(settings)
    assert registry.alias_holder(case.name, CHAMPION).version == version  # type: ignore[union-attr]
    client = registry.client
    plots = {Path(item.path).stem for item in client.list_artifacts(run_id, "plots")}
    assert plots == PLOTS[case.task]
    params = client.get_run(run_id).data.params
    assert all(params[f"estimator.{key}"] == str(value) for key, value in case.overrides.items())

    tags = client.get_model_version(case.name, version).tags
    assert Lineage.task_of(tags) == case.task
    model = load_version(settings, case.name, version)
    reference = _reference(settings, run_id)
    outputs = model_outputs(model, reference[INPUTS], case.task)
    # The loaded model is the fitted one: it reproduces the predictions recorded at training time.
    np.testing.assert_allclose(prediction_column(outputs, case.task), reference["prediction"], rtol=1e-6)
    if case.task == "regression":
        assert Lineage.CLASSES_TAG not in tags and outputs.shape == (len(reference),)
        assert metrics["r2"] > 0.3
    else:
        classes = [0, 1] if case.task == "binary" else [0, 1, 2]
        assert Lineage.classes_of(tags) == model.classes_.tolist() == classes
        assert outputs.shape == ((len(reference),) if case.task == "binary" else (len(reference), 3))
        assert metrics["roc_auc"] > 0.6


def _reference(settings: Settings, run_id: str) -> pd.DataFrame:
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=REFERENCE_ARTIFACT, tracking_uri=settings.mlflow.resolved_tracking_uri()
    )
    return pd.read_parquet(local)


def test_saved_model_is_skops_with_the_trusted_types(matrix_settings: Settings, tmp_path: Path) -> None:
    """The MLflow model directory holds model.skops (no pickle) and declares the policy's types for loading."""
    import mlflow.artifacts

    settings = matrix_settings
    name = "m_types"
    write_spec(settings.user_models_dir, name, "binary", CASES[7].estimator)
    request = _request(name, "matrix/types")
    run_id = stage_run(settings, request, synthetic_training_set("binary"))
    train_and_evaluate(settings, request, run_id)
    version = register_version(settings, request, run_id)
    local = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=mlflow_client(settings).get_model_version_download_uri(name, version),
            tracking_uri=settings.mlflow.resolved_tracking_uri(),
            dst_path=str(tmp_path),
        )
    )
    assert (local / estimators.SKOPS_FILE).is_file() and not list(local.glob("*.pkl"))
    flavor = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert set(flavor["skops_trusted_types"]) == {
        "collections.OrderedDict",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
    }
    assert "lightgbm" in {line.split("==")[0] for line in (local / "requirements.txt").read_text().split()}


def test_lower_is_better_gate_keeps_the_champion_with_the_lower_error(matrix_settings: Settings) -> None:
    """A crippled challenger (a Pipeline step's parameter overridden) has a higher RMSE on the same holdout: the
    champion, loaded through the trust policy and scored on the challenger's holdout, stays."""
    settings = matrix_settings
    name = "m_reg_gate"
    write_spec(
        settings.user_models_dir, name, "regression", _pipeline({"class_path": "sklearn.linear_model.Ridge"}, "ridge")
    )
    frame = synthetic_training_set("regression")
    first = _request(name, "matrix/gate-1")
    first_run = stage_run(settings, first, frame)
    train_and_evaluate(settings, first, first_run)
    champion = register_version(settings, first, first_run)
    assert gate_and_promote(settings, first, champion).passed

    weak = _request(name, "matrix/gate-2", estimator_params={"ridge__alpha": 1e5})
    run_id = stage_run(settings, weak, frame)
    metrics = train_and_evaluate(settings, weak, run_id)
    decision = gate_and_promote(settings, weak, register_version(settings, weak, run_id))

    assert not decision.passed
    assert decision.champion_score is not None and decision.champion_score < metrics["rmse"]
    assert f"does not beat champion v{champion}" in decision.summary and "lower is better" in decision.summary
    assert ModelRegistry(settings).alias_holder(name, CHAMPION).version == champion  # type: ignore[union-attr]


def test_a_better_version_asked_not_to_be_promoted_passes_the_gate_and_stays_challenger(
    matrix_settings: Settings,
) -> None:
    """`train --no-promote`: the gate is applied and recorded, the champion stays, a rollout decides."""
    settings = matrix_settings
    name = "m_reg_kept"
    write_spec(
        settings.user_models_dir, name, "regression", _pipeline({"class_path": "sklearn.linear_model.Ridge"}, "ridge")
    )
    frame = synthetic_training_set("regression")
    versions = []
    for key, extra in (("matrix/kept-1", {"estimator_params": {"ridge__alpha": 1e3}}), ("matrix/kept-2", {})):
        request = _request(name, key, promote=key.endswith("1"), **extra)
        run_id = stage_run(settings, request, frame)
        train_and_evaluate(settings, request, run_id)
        versions.append(register_version(settings, request, run_id))
        decision = gate_and_promote(settings, request, versions[-1])
    assert decision.passed and "beats champion" in decision.summary and "not promoted" in decision.reasons[-1]
    registry = ModelRegistry(settings)
    assert registry.alias_holder(name, CHAMPION).version == versions[0]  # type: ignore[union-attr]
    assert registry.alias_holder(name, CHALLENGER).version == versions[1]  # type: ignore[union-attr]


def test_an_estimator_that_does_not_fit_the_task_is_refused_before_fitting(matrix_settings: Settings) -> None:
    settings = matrix_settings
    cases = {
        "m_wrong_regressor": ("binary", {"class_path": "sklearn.linear_model.Ridge"}, "task binary needs a classifier"),
        "m_wrong_classifier": (
            "regression",
            {"class_path": "sklearn.linear_model.LogisticRegression"},
            "task regression needs a regressor; estimator sklearn.linear_model.LogisticRegression is not one",
        ),
        "m_no_proba": (
            "binary",
            {"class_path": "sklearn.svm.SVC"},
            r"estimator sklearn.svm.SVC gives no class probabilities \(predict_proba\).*probability: true",
        ),
    }
    for name, (task, estimator, message) in cases.items():
        write_spec(settings.user_models_dir, name, task, estimator)
        request = _request(name, f"matrix/{name}")
        run_id = stage_run(settings, request, synthetic_training_set(task))
        with pytest.raises(SpecError, match=message):
            train_and_evaluate(settings, request, run_id)
        assert mlflow_client(settings).get_run(run_id).data.tags[Lineage.STAGE_TAG] == "prepared"


def test_a_bad_parameter_override_names_the_estimator(matrix_settings: Settings) -> None:
    settings = matrix_settings
    request = _request("m_columns", "matrix/bad-override", estimator_params={"nosuch__C": 1.0})
    run_id = stage_run(settings, request, synthetic_training_set("binary"))
    with pytest.raises(SpecError, match=r"estimator sklearn.pipeline.Pipeline rejected the parameter override"):
        train_and_evaluate(settings, request, run_id)


# ------------------------------------------------------------------------------------------- full runs through Feast


def _fraud_labels(settings: Settings) -> pd.DataFrame:
    """The demo world's labelled events, read the way training reads any model's labels."""
    spec = find_spec(settings.model_roots, "fraud_detector")
    labels, _ = load_labels(settings, spec, _request("fraud_detector", "matrix/labels"))
    return labels


def _full_world(world: MlflowServer, tmp_path: Path, name: str, task: str, labels: pd.DataFrame) -> Settings:
    """The demo world's features with another model's labels: a spec of ``task`` over the fraud feature service."""
    fraud = yaml.safe_load(find_spec(world.settings.model_roots, "fraud_detector").model_dump_json())
    models_dir = tmp_path / "models"
    estimator = {"class_path": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"max_iter": 30}}
    if task == "regression":
        estimator["class_path"] = "sklearn.ensemble.HistGradientBoostingRegressor"
    write_spec(models_dir, name, task, estimator)
    spec_path = models_dir / name / "spec.yaml"
    spec = yaml.safe_load(spec_path.read_text())
    spec.update(entity=fraud["entity"], entity_key=fraud["entity_key"], features=fraud["features"])
    spec["label"] = {**fraud["label"], "source": f"{name}_labels.parquet", "column": "target"}
    spec_path.write_text(yaml.safe_dump(spec))
    settings = world.settings.model_copy(update={"models_dir": models_dir})
    # Label files live in the model's data directory; older layouts read them from the data directory itself.
    for folder in (settings.model_data_dir(name), settings.data_dir):
        folder.mkdir(parents=True, exist_ok=True)
        labels.to_parquet(folder / spec["label"]["source"], index=False)
    return settings


def test_full_run_multiclass(trained_world: MlflowServer, tmp_path: Path) -> None:
    fraud = _fraud_labels(trained_world.settings)
    labels = fraud.drop(columns=["is_fraud"])
    labels["target"] = np.digitize(fraud["amount"], fraud["amount"].quantile([1 / 3, 2 / 3]).to_numpy())
    labels.loc[fraud["is_fraud"] == 1, "target"] = 3
    settings = _full_world(trained_world, tmp_path, "full_multiclass", "multiclass", labels)

    outcome = run_all(settings, _request("full_multiclass", "full/multiclass-1"))

    assert outcome.promoted, outcome.decision
    assert set(TASK_METRICS["multiclass"]) <= set(outcome.metrics) and outcome.metrics["roc_auc"] > 0.8
    tags = mlflow_client(settings).get_model_version("full_multiclass", outcome.version).tags
    assert (tags[Lineage.TASK_TAG], json.loads(tags[Lineage.CLASSES_TAG])) == ("multiclass", [0, 1, 2, 3])


def test_full_run_regression(trained_world: MlflowServer, tmp_path: Path) -> None:
    fraud = _fraud_labels(trained_world.settings)
    labels = fraud.drop(columns=["is_fraud"])
    labels["target"] = np.log1p(fraud["amount"]) + fraud["is_fraud"]
    settings = _full_world(trained_world, tmp_path, "full_regression", "regression", labels)

    outcome = run_all(settings, _request("full_regression", "full/regression-1"))

    assert outcome.promoted, outcome.decision
    assert {"rmse", "mae", "r2", "fit_seconds"} <= set(outcome.metrics) and outcome.metrics["r2"] > 0.5
    tags = mlflow_client(settings).get_model_version("full_regression", outcome.version).tags
    assert tags[Lineage.TASK_TAG] == "regression" and Lineage.CLASSES_TAG not in tags
    model = load_version(settings, "full_regression", outcome.version)
    reference = _reference(settings, outcome.run_id)
    inputs = json.loads(mlflow_client(settings).get_run(outcome.run_id).data.tags[Lineage.MODEL_INPUTS_TAG])
    np.testing.assert_allclose(model.predict(reference[inputs]), reference["prediction"], rtol=1e-6)
