"""Model spec validation: good specs load, bad ones fail naming the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mlplatform.specs import SpecError, find_spec, load_spec, load_specs, model_folders

REPO_MODELS = Path(__file__).resolve().parents[2] / "pipelines" / "models"


def _write(root: Path, data: object, name: str = "fraud_detector") -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _valid() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((REPO_MODELS / "fraud_detector" / "spec.yaml").read_text())
    return spec


def test_shipped_specs_load() -> None:
    specs = load_specs([REPO_MODELS])
    spec = specs["fraud_detector"]
    assert spec.training_dag_id == "train_fraud_detector"
    assert spec.features.service == "fraud_detector_v1"
    assert spec.gates.minimums["roc_auc"] == pytest.approx(0.85)
    assert spec.estimator.resolve().__name__ == "HistGradientBoostingClassifier"
    assert spec.task == "binary"
    assert spec.primary_metric == "roc_auc"


def test_fingerprint_is_stable_and_content_sensitive(tmp_path: Path) -> None:
    first = load_spec(_write(tmp_path, _valid()))
    again = load_spec(_write(tmp_path, _valid()))
    changed_data = _valid()
    changed_data["estimator"]["params"]["max_iter"] = 11
    changed = load_spec(_write(tmp_path, changed_data))
    assert first.fingerprint() == again.fingerprint() != changed.fingerprint()


def _pipeline() -> dict[str, Any]:
    return {
        "class_path": "sklearn.pipeline.Pipeline",
        "steps": [
            {
                "name": "prepare",
                "class_path": "sklearn.compose.ColumnTransformer",
                "params": {"remainder": "passthrough"},
                "transformers": [
                    {"name": "scale", "class_path": "sklearn.preprocessing.StandardScaler", "columns": ["age"]},
                    {"name": "skip", "class_path": "drop", "columns": ["noise"]},
                ],
            },
            {"name": "model", "class_path": "sklearn.ensemble.RandomForestRegressor", "params": {"n_estimators": 5}},
        ],
    }


def test_a_pipeline_with_a_column_transformer_is_a_valid_estimator(tmp_path: Path) -> None:
    data = _valid()
    data.update(task="regression", estimator=_pipeline(), gates={"maximums": {"rmse": 60.0}})
    data.pop("metrics")
    data.pop("serving")
    spec = load_spec(_write(tmp_path, data))
    assert spec.primary_metric == "rmse"
    assert spec.estimator.final_class_path == "sklearn.ensemble.RandomForestRegressor"
    assert spec.estimator.class_paths() == [
        "sklearn.pipeline.Pipeline",
        "sklearn.compose.ColumnTransformer",
        "sklearn.preprocessing.StandardScaler",
        "sklearn.ensemble.RandomForestRegressor",
    ]


def _nested_step(class_path: str) -> dict[str, Any]:
    pipeline = _pipeline()
    pipeline["steps"][0]["transformers"][0]["class_path"] = class_path
    return pipeline


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["gates"]["minimums"].update(roc_auc=1.5), "gates.minimums"),
        (lambda d: d["gates"]["minimums"].update(rmse=0.9), "give it under gates.maximums"),
        (lambda d: d["gates"]["minimums"].update(r2=0.5), "r2 is not computed for task binary"),
        (lambda d: d.update(task="regression"), "roc_auc is not computed for task regression"),
        (lambda d: d.update(colour="blue"), "colour: Extra inputs are not permitted"),
        (lambda d: d["estimator"].update(class_path="os.system"), "estimator.class_path"),
        (lambda d: d.update(estimator=_nested_step("subprocess.Popen")), "must be a class in one of"),
        (
            lambda d: d.update(estimator=_nested_step("sklearn.preprocessing.FunctionTransformer")),
            "runs a callable",
        ),
        (lambda d: d["estimator"]["params"].update(func="numpy.log1p"), "'func' takes a callable"),
        (
            lambda d: d["estimator"]["params"].update(estimator={"class_path": "os.system"}),
            "must be a class in one of",
        ),
        (lambda d: d["estimator"].update(class_path="sklearn.pipeline.Pipeline"), "Pipeline needs steps"),
        (lambda d: d["estimator"].update(steps=[]), "steps are only for sklearn.pipeline.Pipeline"),
        (lambda d: d["split"].update(holdout_fraction=0), "split.holdout_fraction"),
        (lambda d: d.pop("entity_key"), "entity_key: Field required"),
        (lambda d: d["label"].update(source="../../etc/passwd"), "label.source"),
        (lambda d: d["label"].update(request_columns=["is_fraud"]), "label.column must not be a request column"),
        (lambda d: d["overridable"].update(max_iter={"min": 1}), "needs both min and max"),
        (lambda d: d["overridable"].update(max_iter={"min": 9, "max": 1}), "finite with min <= max"),
        (lambda d: d["overridable"].update(max_iter={"min": 1, "max": float("inf")}), "finite with min <= max"),
        (lambda d: d["overridable"].update(loss={"choices": ["a"], "max": 2}), "either choices or min/max"),
        (lambda d: d["overridable"].update(loss={"choices": []}), "at least one value"),
        (
            lambda d: d.update(rollout={"max_duration": "2 weeks"}),
            "rollout.max_duration: Value error, must be a duration",
        ),
        (lambda d: d.update(rollout={"max_duration": -5}), "must be a non-negative duration"),
        (lambda d: d.update(rollout={"mode": "split", "split_after": "1h"}), "split_after applies to shadow"),
        (lambda d: d.update(rollout={"min_duration": "8d"}), "min_duration must be shorter than max_duration"),
        (lambda d: d.update(rollout={"share": 0.9}), "rollout.share"),
        (lambda d: d.update(rollout={"metric": "absolute_error"}), "absolute_error does not fit task binary"),
        (lambda d: d.update(rollout={"guardrails": {"max_error_ratio": 0.5}}), "rollout.guardrails.max_error_ratio"),
    ],
)
def test_invalid_specs_name_file_and_field(tmp_path: Path, mutate: Any, expected: str) -> None:
    data = _valid()
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert str(path) in str(raised.value)
    assert expected in str(raised.value)


def test_overrides_are_checked_against_the_specs_bounds() -> None:
    spec = find_spec([REPO_MODELS], "fraud_detector")
    assert spec.override_problems({"max_iter": 40, "learning_rate": 0.1, "early_stopping": "auto"}) == {}
    assert spec.override_problems({"max_iter": True, "early_stopping": 1, "learning_rate": float("nan")}) == {
        "max_iter": "must be a finite number, got True",
        "early_stopping": "must be one of [True, False, 'auto'], got 1",
        "learning_rate": "must be a finite number, got nan",
    }


def test_malformed_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fraud_detector" / "spec.yaml"
    path.parent.mkdir()
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"fraud_detector/spec\.yaml: not valid YAML"):
        load_spec(path)


def test_non_mapping_and_name_mismatch(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="must be a YAML mapping"):
        load_spec(_write(tmp_path, ["a", "list"]))
    with pytest.raises(SpecError, match="must match the model's folder name 'other'"):
        load_spec(_write(tmp_path, _valid(), name="other"))


def test_find_spec_rejects_path_tricks_and_lists_known_models(tmp_path: Path) -> None:
    _write(tmp_path, _valid())
    with pytest.raises(SpecError, match="invalid model name"):
        find_spec([tmp_path], "../fraud_detector")
    with pytest.raises(SpecError, match="known models: fraud_detector"):
        find_spec([tmp_path], "churn")
    assert find_spec([tmp_path], "fraud_detector").name == "fraud_detector"


def test_models_come_from_every_root_and_a_name_in_two_roots_is_refused(tmp_path: Path) -> None:
    bundled, created = tmp_path / "bundled", tmp_path / "created"
    _write(bundled, _valid())
    second = {**_valid(), "name": "churn"}
    _write(created, second, name="churn")
    assert sorted(model_folders([bundled, created, tmp_path / "absent"])) == ["churn", "fraud_detector"]
    _write(created, _valid())
    with pytest.raises(SpecError, match="model 'fraud_detector' is defined twice"):
        load_specs([bundled, created])


def test_unknown_estimator_class_is_a_spec_error(tmp_path: Path) -> None:
    data = _valid()
    data["estimator"]["class_path"] = "sklearn.ensemble.NoSuchClassifier"
    spec = load_spec(_write(tmp_path, data))
    with pytest.raises(SpecError, match=r"cannot import 'sklearn\.ensemble\.NoSuchClassifier'"):
        spec.estimator.resolve()


def test_rollout_durations_read_as_seconds_and_the_metric_follows_the_task(tmp_path: Path) -> None:
    data = _valid()
    data["rollout"] = {"mode": "shadow", "split_after": "30m", "max_duration": "2d", "evaluation_interval": 15}
    spec = load_spec(_write(tmp_path, data))
    assert (spec.rollout.split_after, spec.rollout.max_duration, spec.rollout.evaluation_interval) == (1800, 172800, 15)
    assert spec.rollout_metric == "log_loss" and spec.rollout.min_duration == 0
    data.update(task="regression", metrics={"primary": "rmse"}, gates={})
    assert load_spec(_write(tmp_path, data)).rollout_metric == "absolute_error"
