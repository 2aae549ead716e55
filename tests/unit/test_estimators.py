"""Estimators built from specs, and the trust policy every saved model is loaded under (skops, never pickle)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlplatform.specs import EstimatorSpec, SpecError
from mlplatform.training.estimators import (
    SKOPS_FILE,
    UntrustedModelError,
    build_estimator,
    check_task,
    dumps,
    is_trusted_type,
    load_estimator,
    loads,
    trusted_types_of,
)

COLUMNS = ["a", "b", "c", "d"]


def _frame(rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(rows, 3)), columns=COLUMNS[:3])
    frame["d"] = rng.integers(0, 3, rows)
    return frame


def _labels(task: str, frame: pd.DataFrame) -> Any:
    signal = frame["a"] - frame["b"]
    if task == "binary":
        return (signal > 0).astype(int).to_numpy()
    if task == "multiclass":
        return np.digitize(signal, [-0.5, 0.5])
    return signal.to_numpy() * 2.0


COLUMN_PIPELINE = {
    "class_path": "sklearn.pipeline.Pipeline",
    "steps": [
        {
            "name": "prepare",
            "class_path": "sklearn.compose.ColumnTransformer",
            "transformers": [
                {"name": "scaled", "class_path": "sklearn.preprocessing.StandardScaler", "columns": ["a", "b", "c"]},
                {"name": "onehot", "class_path": "sklearn.preprocessing.OneHotEncoder", "columns": ["d"]},
            ],
        },
        {"name": "model", "class_path": "sklearn.linear_model.LogisticRegression"},
    ],
}
FAMILIES: list[tuple[str, dict[str, Any]]] = [
    ("binary", {"class_path": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 5}}),
    ("binary", {"class_path": "sklearn.ensemble.ExtraTreesClassifier", "params": {"n_estimators": 5}}),
    ("binary", {"class_path": "sklearn.tree.DecisionTreeClassifier"}),
    ("binary", {"class_path": "sklearn.ensemble.GradientBoostingClassifier", "params": {"n_estimators": 5}}),
    ("binary", {"class_path": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"max_iter": 5}}),
    ("binary", {"class_path": "sklearn.linear_model.LogisticRegression"}),
    ("binary", {"class_path": "sklearn.svm.SVC", "params": {"probability": True}}),
    ("binary", {"class_path": "sklearn.neighbors.KNeighborsClassifier"}),
    ("binary", COLUMN_PIPELINE),
    ("binary", {"class_path": "lightgbm.LGBMClassifier", "params": {"n_estimators": 5, "verbose": -1}}),
    ("binary", {"class_path": "xgboost.XGBClassifier", "params": {"n_estimators": 5}}),
    ("multiclass", {"class_path": "lightgbm.LGBMClassifier", "params": {"n_estimators": 5, "verbose": -1}}),
    ("multiclass", {"class_path": "xgboost.XGBClassifier", "params": {"n_estimators": 5}}),
    ("regression", {"class_path": "lightgbm.LGBMRegressor", "params": {"n_estimators": 5, "verbose": -1}}),
    ("regression", {"class_path": "xgboost.XGBRegressor", "params": {"n_estimators": 5}}),
    ("regression", {"class_path": "sklearn.ensemble.RandomForestRegressor", "params": {"n_estimators": 5}}),
]


@pytest.mark.parametrize(
    ("task", "estimator"), FAMILIES, ids=[f"{task}-{spec['class_path'].rsplit('.', 1)[-1]}" for task, spec in FAMILIES]
)
def test_every_family_round_trips_through_skops_under_the_policy(task: str, estimator: dict[str, Any]) -> None:
    frame = _frame()
    model = build_estimator(EstimatorSpec.model_validate(estimator)).fit(frame, _labels(task, frame))
    blob = dumps(model)
    assert all(is_trusted_type(name) for name in trusted_types_of(blob))
    loaded = loads(blob)
    assert type(loaded) is type(model)
    if task == "regression":
        np.testing.assert_allclose(loaded.predict(frame), model.predict(frame))
    else:
        np.testing.assert_allclose(loaded.predict_proba(frame), model.predict_proba(frame))


def test_the_policy_admits_library_classes_and_refuses_functions_and_other_modules() -> None:
    assert is_trusted_type("sklearn.tree._tree.Tree")
    assert is_trusted_type("lightgbm.basic.Booster")
    assert is_trusted_type("collections.OrderedDict")
    assert not is_trusted_type("numpy.savetxt")  # a function of a trusted library: never trusted
    assert not is_trusted_type("operator.attrgetter")
    assert not is_trusted_type("sklearn.no_such_module.Thing")


def _model_dir(tmp_path: Path, blob: bytes) -> Path:
    (tmp_path / SKOPS_FILE).write_bytes(blob)
    return tmp_path


def test_an_artifact_holding_a_function_is_refused(tmp_path: Path) -> None:
    """A FunctionTransformer whose function writes files (numpy.savetxt) is exactly what a replaced artifact could
    hold: skops writes it, the platform refuses to load it."""
    import skops.io
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    crafted = make_pipeline(FunctionTransformer(func=np.savetxt, kw_args={"fname": str(tmp_path / "written")}))
    model_dir = _model_dir(tmp_path, skops.io.dumps(crafted))
    with pytest.raises(UntrustedModelError, match=r"outside the platform's trust policy .*: numpy\.savetxt$"):
        load_estimator(model_dir)
    assert not (tmp_path / "written").exists()


def test_an_artifact_holding_a_foreign_class_is_refused(tmp_path: Path) -> None:
    import collections

    import skops.io
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(_frame(), _labels("binary", _frame()))
    model.smuggled = collections.Counter({"x": 1})
    with pytest.raises(UntrustedModelError, match=r"collections\.Counter"):
        dumps(model)
    with pytest.raises(UntrustedModelError, match=r"collections\.Counter"):
        load_estimator(_model_dir(tmp_path, skops.io.dumps(model)))


def test_a_model_directory_without_skops_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"not read")
    with pytest.raises(UntrustedModelError, match=r"has no model\.skops: only models saved in skops format"):
        load_estimator(tmp_path)


def test_a_skops_file_is_a_zip_with_a_schema_not_a_pickle(tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    frame = _frame()
    path = tmp_path / SKOPS_FILE
    path.write_bytes(dumps(LogisticRegression().fit(frame, _labels("binary", frame))))
    with zipfile.ZipFile(path) as archive:
        assert "schema.json" in archive.namelist()
        assert json.loads(archive.read("schema.json"))["__class__"] == "LogisticRegression"


@pytest.mark.parametrize(
    ("task", "class_path", "message"),
    [
        (
            "binary",
            "sklearn.linear_model.Ridge",
            "task binary needs a classifier; estimator sklearn.linear_model.Ridge",
        ),
        ("multiclass", "sklearn.linear_model.Ridge", "task multiclass needs a classifier"),
        ("regression", "sklearn.ensemble.RandomForestClassifier", "task regression needs a regressor"),
        ("binary", "sklearn.svm.SVC", r"gives no class probabilities \(predict_proba\).*probability: true"),
        ("binary", "sklearn.svm.LinearSVC", "CalibratedClassifierCV"),
    ],
)
def test_an_estimator_must_fit_the_task(task: str, class_path: str, message: str) -> None:
    estimator = build_estimator(EstimatorSpec(class_path=class_path))
    with pytest.raises(SpecError, match=message):
        check_task(estimator, task, class_path)


def test_a_pipeline_is_judged_by_its_last_step() -> None:
    spec = EstimatorSpec.model_validate(COLUMN_PIPELINE)
    check_task(build_estimator(spec), "binary", spec.final_class_path)
    check_task(build_estimator(spec), "multiclass", spec.final_class_path)
    with pytest.raises(SpecError, match=r"estimator sklearn\.linear_model\.LogisticRegression is not one"):
        check_task(build_estimator(spec), "regression", spec.final_class_path)


def test_rejected_constructor_parameters_name_the_class() -> None:
    with pytest.raises(SpecError, match=r"estimator sklearn.linear_model.Ridge rejected its parameters"):
        build_estimator(EstimatorSpec(class_path="sklearn.linear_model.Ridge", params={"no_such": 1}))
