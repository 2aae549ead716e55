"""Serving any task and any estimator family: models loaded only through the skops trust policy, answers per task
on both servers (binary unchanged), the compiled trees only where they apply, the prediction log and metrics per
task.  Tiny models are fitted here; the online store is a fake reader (the real one is tested in
tests/integration), everything else (skops files, Predictor, KServe model, BentoML app, prediction log) is real."""

from __future__ import annotations

import asyncio
import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    VotingClassifier,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from mlplatform.config import Settings
from mlplatform.serving.loading import AliasTarget, LoadedModel, ModelLoader, accept_arrays, load_scorer
from mlplatform.serving.predictor import Predictor
from mlplatform.serving.scoring import EntityPrediction, PredictionResult, RowError
from mlplatform.serving.wire import response_body, v2_output_types, v2_response
from mlplatform.specs import ModelSpec, Task
from mlplatform.training.estimators import SKOPS_FILE, dumps
from tests.support.fakes.online_features import TableFeatureReader

KEY = "item_id"
STORED = ["f1", "f2"]
INPUTS = ["f1", "f2", "size"]
UNKNOWN = 999
MULTICLASS_CODES = (1, 2, 5)  # codes, not positions: answers must name classes by code


def make_spec(task: Task, name: str = "tasks_model") -> ModelSpec:
    return ModelSpec.model_validate(
        {
            "name": name,
            "task": task,
            "entity": "item",
            "entity_key": KEY,
            "features": {"service": "tasks_v1"},
            "label": {"source": "labels.parquet", "column": "target", "request_columns": ["size"]},
            "estimator": {"class_path": "sklearn.linear_model.LogisticRegression"},
        }
    )


def training_frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"f1": rng.normal(size=rows), "f2": rng.normal(size=rows), "size": rng.uniform(1, 9, rows)})


def target(task: Task, frame: pd.DataFrame) -> np.ndarray:
    if task == "binary":
        return (frame["f1"] + frame["f2"] > 0).to_numpy().astype(int)
    if task == "multiclass":
        bucket = (frame["f1"] > -0.4).astype(int) + (frame["f1"] > 0.4).astype(int)
        return np.array(MULTICLASS_CODES)[bucket.to_numpy()]
    return (2 * frame["f1"] - frame["f2"] + 0.5 * frame["size"]).to_numpy()


def by_name_pipeline(final: Any) -> Pipeline:
    """A ColumnTransformer selecting columns by name: it needs a DataFrame at prediction time."""
    parts = ColumnTransformer([("scaled", StandardScaler(), ["f1", "f2"]), ("raw", "passthrough", ["size"])])
    return Pipeline([("columns", parts), ("model", final)])


# (task, estimator, compiled trees expected, plain arrays expected)
CASES: dict[str, tuple[Task, Callable[[], Any], bool, bool]] = {
    "binary-hgb": ("binary", lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0), True, True),
    "binary-logistic": ("binary", lambda: LogisticRegression(), False, True),
    "binary-forest": ("binary", lambda: RandomForestClassifier(n_estimators=10, random_state=0), False, True),
    "binary-pipeline": ("binary", lambda: by_name_pipeline(LogisticRegression()), False, False),
    "multiclass-hgb": ("multiclass", lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0), False, True),
    "multiclass-logistic": ("multiclass", lambda: LogisticRegression(), False, True),
    "multiclass-pipeline": ("multiclass", lambda: by_name_pipeline(LogisticRegression()), False, False),
    "regression-hgb": ("regression", lambda: HistGradientBoostingRegressor(max_iter=20, random_state=0), False, True),
    "regression-ridge": ("regression", lambda: Ridge(), False, True),
    "regression-forest": ("regression", lambda: RandomForestRegressor(n_estimators=10, random_state=0), False, True),
    "regression-pipeline": ("regression", lambda: by_name_pipeline(Ridge()), False, False),
}


def fitted(task: Task, make: Callable[[], Any]) -> Any:
    frame = training_frame()
    return make().fit(frame[INPUTS], target(task, frame))


def save(estimator: Any, directory: Path) -> Path:
    """An MLflow model directory as far as serving reads it: the estimator's skops file."""
    directory.mkdir(parents=True)
    (directory / SKOPS_FILE).write_bytes(dumps(estimator))
    return directory


class LocalLoader(ModelLoader):
    """Versions from local model directories instead of the registry (a fake registry); every load goes through
    the real ``load_scorer`` (trust policy, task check) and the table reader stands in for the online store."""

    def __init__(self, settings: Settings, spec: ModelSpec, reader: TableFeatureReader) -> None:
        super().__init__(settings, spec.name, "champion", spec)
        self.reader = reader
        self.versions: dict[str, Path] = {}
        self.alias_version: str | None = None

    def alias_target(self) -> AliasTarget | None:
        return None if self.alias_version is None else AliasTarget(self.alias_version, None, {})

    def load(self, target: AliasTarget, *, cache: bool = True) -> LoadedModel:
        estimator, scorer = load_scorer(self.versions[target.version], self.spec, INPUTS, target.version)
        return LoadedModel(
            name=self.name,
            version=target.version,
            run_id=None,
            estimator=estimator,
            scorer=scorer,
            feature_service=self.spec.features.service,
            model_inputs=INPUTS,
            service=None,
            stored_features=frozenset(STORED),
            reader=self.reader,
        )


@pytest.fixture()
def table() -> dict[int, dict[str, float]]:
    frame = training_frame(rows=6, seed=1)
    return {
        100 + index: {"f1": float(f1), "f2": float(f2)}
        for index, (f1, f2) in enumerate(zip(frame["f1"].tolist(), frame["f2"].tolist(), strict=True))
    }


def served(
    settings: Settings, task: Task, table: dict[int, dict[str, float]], *versions: tuple[str, Path], log: bool = False
) -> tuple[Predictor, LocalLoader]:
    spec = make_spec(task)
    loader = LocalLoader(settings, spec, TableFeatureReader(KEY, table, STORED))
    loader.versions.update(versions)
    loader.alias_version = versions[0][0]
    predictor = Predictor(settings, spec.name, spec=spec, loader=loader, prediction_log=log)
    predictor.start(poll=False)
    return predictor, loader


def request_rows(table: dict[int, dict[str, float]]) -> list[dict[str, Any]]:
    """Every known entity with a size, and one unknown entity in the middle."""
    rows: list[dict[str, Any]] = [{KEY: key, "size": 2.0 + index} for index, key in enumerate(table)]
    rows.insert(2, {KEY: UNKNOWN, "size": 3.0})
    return rows


def expected_frame(table: dict[int, dict[str, float]], rows: list[dict[str, Any]]) -> pd.DataFrame:
    known = [row for row in rows if row[KEY] != UNKNOWN]
    return pd.DataFrame([{**table[row[KEY]], "size": row["size"]} for row in known], columns=INPUTS)


@pytest.mark.parametrize("case", list(CASES))
def test_served_predictions_equal_the_estimators_own(
    case: str, settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    task, make, compiled, arrays = CASES[case]
    original = fitted(task, make)
    predictor, _ = served(settings, task, table, ("1", save(original, tmp_path / "v1")))
    model = predictor.model
    assert model is not None, predictor.reason
    assert (model.scorer.task, model.scorer.compiled, model.scorer.arrays) == (task, compiled, arrays)
    rows = request_rows(table)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names" on the served path
        result = predictor.predict(rows, "r1")

    assert [(row.index, row.entity[KEY]) for row in result.errors] == [(2, UNKNOWN)]
    assert f"unknown entity {KEY}={UNKNOWN}" in result.errors[0].error
    assert [item.index for item in result.predictions] == [0, 1, 3, 4, 5, 6]
    frame = expected_frame(table, rows)
    scores = np.array([item.score for item in result.predictions])
    if task == "regression":
        np.testing.assert_allclose(scores, original.predict(frame), rtol=0, atol=1e-9)
        assert all(item.label is None and item.probabilities == () for item in result.predictions)
        return
    probabilities = original.predict_proba(frame)
    labels = [item.label for item in result.predictions]
    if task == "binary":
        np.testing.assert_allclose(scores, probabilities[:, 1], rtol=0, atol=1e-9)
        assert labels == [int(p >= 0.5) for p in probabilities[:, 1]]
        return
    assert result.classes == MULTICLASS_CODES
    np.testing.assert_allclose([item.probabilities for item in result.predictions], probabilities, rtol=0, atol=1e-9)
    np.testing.assert_allclose(scores, probabilities.max(axis=1), rtol=0, atol=1e-9)
    assert labels == original.predict(frame).tolist()


def test_compiled_trees_answer_binary_hgb_bit_identically(
    settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    original = fitted("binary", lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0))
    predictor, _ = served(settings, "binary", table, ("1", save(original, tmp_path / "v1")))
    assert predictor.model is not None and predictor.model.scorer.how == "compiled trees"
    rows = request_rows(table)
    result = predictor.predict(rows)
    expected = original.predict_proba(expected_frame(table, rows))[:, 1]
    assert [item.score for item in result.predictions] == expected.tolist()


def test_an_entity_the_model_cannot_score_is_a_row_error(
    settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    """LogisticRegression refuses missing values: only the entity with a missing feature gets an error."""
    partial = {**table, 100: {"f2": 0.5}}  # f1 missing, f2 stored: a known entity with a gap
    predictor, _ = served(
        settings, "binary", partial, ("1", save(fitted("binary", LogisticRegression), tmp_path / "v1"))
    )
    result = predictor.predict(request_rows(partial))
    assert [(row.index, row.error) for row in result.errors] == [
        (
            0,
            "version 1 cannot score item_id=100: its inputs ['f1'] are missing and the model does not accept "
            "missing values",
        ),
        (2, result.errors[1].error),
    ]
    assert result.errors[1].error.startswith(f"unknown entity {KEY}={UNKNOWN}")
    assert [item.index for item in result.predictions] == [1, 3, 4, 5, 6]
    alone = predictor.predict([{KEY: 100, "size": 1.0}])
    assert [row.index for row in alone.errors] == [0] and alone.predictions == []


# ---- answers per task, on both servers ---------------------------------------------------------------------------


def _result(task: Task) -> PredictionResult:
    entity = {KEY: 7}
    if task == "regression":
        predictions = [EntityPrediction(1, entity, 3.5, None)]
    elif task == "multiclass":
        predictions = [EntityPrediction(1, entity, 0.7, 5, (0.1, 0.2, 0.7))]
    else:
        predictions = [EntityPrediction(1, entity, 0.75, 1)]
    errors = [RowError(0, {KEY: UNKNOWN}, "unknown")]
    classes = MULTICLASS_CODES if task == "multiclass" else (0, 1) if task == "binary" else ()
    return PredictionResult("m", "3", "r", predictions, errors, {}, task, classes)


@pytest.mark.parametrize(
    ("task", "prediction"),
    [
        ("binary", {KEY: 7, "probability": 0.75, "label": 1}),
        (
            "multiclass",
            {KEY: 7, "probability": 0.7, "label": 5, "probabilities": {"1": 0.1, "2": 0.2, "5": 0.7}},
        ),
        ("regression", {KEY: 7, "value": 3.5}),
    ],
)
def test_json_answer_per_task(task: Task, prediction: dict[str, Any]) -> None:
    body = response_body(_result(task), KEY)
    assert body == {
        "model": "m",
        "version": "3",
        "request_id": "r",
        "predictions": [prediction],
        "errors": [{"index": 0, KEY: UNKNOWN, "error": "unknown"}],
    }
    assert list(body["predictions"][0])[:3] == list(prediction)[:3]  # the binary answer keeps its key order


def test_binary_json_answer_is_byte_compatible() -> None:
    import orjson

    assert orjson.dumps(response_body(_result("binary"), KEY)) == (
        b'{"model":"m","version":"3","request_id":"r","predictions":[{"item_id":7,"probability":0.75,"label":1}],'
        b'"errors":[{"index":0,"item_id":999,"error":"unknown"}]}'
    )


def _v2_rest(task: Task) -> dict[str, Any]:
    from kserve import InferOutput, InferResponse

    response = v2_response(_result(task), InferOutput, InferResponse)
    rest, _ = response.to_rest()
    assert isinstance(rest, dict)
    return rest


def test_v2_binary_outputs_are_unchanged() -> None:
    outputs = _v2_rest("binary")["outputs"]
    assert outputs == [
        {"name": "probability", "shape": [2], "datatype": "FP64", "data": [-1.0, 0.75]},
        {"name": "label", "shape": [2], "datatype": "INT64", "data": [-1, 1]},
        {"name": "error", "shape": [2], "datatype": "BYTES", "data": ["unknown", ""]},
    ]
    assert [output["name"] for output in v2_output_types("binary")] == ["probability", "label", "error"]


def test_v2_multiclass_outputs_carry_the_class_order() -> None:
    outputs = {output["name"]: output for output in _v2_rest("multiclass")["outputs"]}
    assert list(outputs) == ["probability", "label", "probabilities", "error"]
    assert outputs["probability"]["data"] == [-1.0, 0.7] and outputs["label"]["data"] == [-1, 5]
    per_class = outputs["probabilities"]
    assert (per_class["shape"], per_class["datatype"]) == ([2, 3], "FP64")
    assert per_class["data"] == [-1.0, -1.0, -1.0, 0.1, 0.2, 0.7]  # row-major, as the protocol flattens tensors
    assert json.loads(per_class["parameters"]["classes"]) == list(MULTICLASS_CODES)
    assert [output["name"] for output in v2_output_types("multiclass")] == list(outputs)


def test_v2_regression_outputs_a_value_and_nan_for_rejected_rows() -> None:
    outputs = {output["name"]: output for output in _v2_rest("regression")["outputs"]}
    assert list(outputs) == ["value", "error"]
    assert outputs["value"]["datatype"] == "FP64" and outputs["value"]["shape"] == [2]
    rejected, value = outputs["value"]["data"]
    assert math.isnan(rejected) and value == 3.5
    assert outputs["error"]["data"] == ["unknown", ""]
    assert [output["name"] for output in v2_output_types("regression")] == list(outputs)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_both_servers_answer_in_the_tasks_shape(
    task: Task, settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    """The KServe model (v2), KServe's v1 fast path and BentoML's app, in-process over one Predictor."""
    from kserve import InferInput, InferRequest
    from starlette.testclient import TestClient

    from mlplatform.serving.adapters import bentoml as bento
    from mlplatform.serving.adapters.kserve import build_model, v1_route

    make = {"binary": LogisticRegression, "multiclass": LogisticRegression, "regression": Ridge}[task]
    predictor, _ = served(settings, task, table, ("1", save(fitted(task, make), tmp_path / "v1")))
    entities = [{KEY: 100, "size": 2.0}, {KEY: UNKNOWN, "size": 3.0}]
    fields = {"binary": {"probability", "label"}, "multiclass": {"probability", "label", "probabilities"}}
    expected_fields = {KEY, *fields.get(task, {"value"})}

    fast = TestClient(v1_route(None, predictor)).post(  # no `with`: the route alone has no lifespan
        f"/v1/models/{predictor.name}:predict", json={"instances": entities}, headers={"x-request-id": "h1"}
    )
    v1 = fast.json()
    assert fast.status_code == 200 and v1["request_id"] == "h1"
    assert set(v1["predictions"][0]) == expected_fields
    assert v1["errors"][0]["index"] == 1

    bento._Current.predictor = predictor
    try:
        with TestClient(bento.predict_route(bento.create_app())) as client:
            answer = client.post("/predict", json={"entities": entities})
    finally:
        bento._Current.predictor = None
    assert answer.status_code == 200
    assert answer.json()["predictions"] == v1["predictions"] and answer.json()["errors"] == v1["errors"]

    model = build_model(predictor)
    request = InferRequest(
        model_name=predictor.name,
        infer_inputs=[
            InferInput(KEY, [2], "INT64", data=[100, UNKNOWN]),
            InferInput("size", [2], "FP64", data=[2.0, 3.0]),
        ],
    )
    response, _ = asyncio.run(model(request))
    outputs = {output.name: output for output in response.outputs}
    assert list(outputs) == [output["name"] for output in model.get_output_types()]
    assert outputs["error"].data[0] == "" and "unknown entity" in outputs["error"].data[1]
    if task == "regression":
        assert outputs["value"].data[0] == v1["predictions"][0]["value"]
    else:
        assert outputs["probability"].data[0] == v1["predictions"][0]["probability"]
        assert outputs["label"].data[0] == v1["predictions"][0]["label"]
    if task == "multiclass":
        assert outputs["probabilities"].shape == [2, 3]
        assert outputs["probabilities"].data[:3] == list(v1["predictions"][0]["probabilities"].values())


def _both_entity_apis(predictor: Predictor) -> dict[str, tuple[Any, str, str]]:
    """Each server's JSON entity API in-process: (ASGI app, path, entity-list field)."""
    from mlplatform.serving.adapters import bentoml as bento
    from mlplatform.serving.adapters.kserve import v1_route

    bento._Current.predictor = predictor
    return {
        "bentoml": (bento.predict_route(bento.create_app()), "/predict", "entities"),
        "kserve": (v1_route(None, predictor), f"/v1/models/{predictor.name}:predict", "instances"),
    }


def _refusals(predictor: Predictor) -> dict[str, float]:
    """The predictor's refused-request counters by outcome."""
    return {
        outcome: float(
            predictor.metrics.registry.get_sample_value(
                "mlplatform_serving_requests_total", {"model": predictor.name, "outcome": outcome}
            )
            or 0.0
        )
        for outcome in ("invalid", "too_large")
    }


@pytest.mark.parametrize("server", ["bentoml", "kserve"])
def test_oversized_and_malformed_bodies_are_4xx_before_scoring_and_counted(
    server: str, settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    """Both servers read at most serving.max_body_kb (by Content-Length, and while a chunked body streams in)
    and answer documents Python's JSON parser chokes on with a 422; each refusal is counted in the metrics."""
    from starlette.testclient import TestClient

    from mlplatform.serving.adapters import bentoml as bento

    small = settings.model_copy(update={"serving": settings.serving.model_copy(update={"max_body_kb": 8})})
    predictor, _ = served(small, "binary", table, ("1", save(fitted("binary", LogisticRegression), tmp_path / "v1")))
    try:
        app, path, field = _both_entity_apis(predictor)[server]
        client = TestClient(app)
        entity = {KEY: 100, "size": 2.0}

        declared = client.post(path, content=json.dumps({field: [entity] * 400}).encode())
        assert declared.status_code == 413 and "exceed the limit of 8192" in declared.json()["error"]

        def chunked() -> Any:
            yield json.dumps({field: [entity]}).encode()[:-1]
            yield b" " * 10_000 + b"}"

        streamed = client.post(path, content=chunked())
        assert streamed.status_code == 413 and "more than 8192 bytes" in streamed.json()["error"]

        for body, message in (
            (b"[" * 3000 + b"]" * 3000, "nested too deeply"),
            (b'{"' + field.encode() + b'": [' + b"9" * 5000 + b"]}", "out of range"),
            (json.dumps({field: [{KEY: 2**64, "size": 1.0}]}).encode(), "must fit in 64 bits"),
        ):
            answer = client.post(path, content=body)
            assert answer.status_code == 422 and message in answer.json()["error"], answer.text
        assert _refusals(predictor) == {"invalid": 3.0, "too_large": 2.0}

        assert client.post(path, json={field: [entity]}).status_code == 200  # still serving
    finally:
        bento._Current.predictor = None
        predictor.close()


# ---- loading through the trust policy ----------------------------------------------------------------------------


class Marker:
    """A type outside the trust policy, as a tampered artifact would carry one."""

    def __init__(self) -> None:
        self.note = "not a model"


def save_untrusted(directory: Path) -> Path:
    """A skops file holding a type the policy refuses (written with skops itself: the platform's ``dumps`` would
    refuse to write it)."""
    import skops.io

    estimator = fitted("binary", LogisticRegression)
    estimator.smuggled_ = Marker()
    directory.mkdir(parents=True)
    (directory / SKOPS_FILE).write_bytes(skops.io.dumps(estimator))
    return directory


def test_an_untrusted_artifact_is_refused_and_the_served_version_stays(
    settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    good = save(fitted("binary", LogisticRegression), tmp_path / "v1")
    predictor, loader = served(settings, "binary", table, ("1", good), ("2", save_untrusted(tmp_path / "v2")))
    assert predictor.model is not None and predictor.model.version == "1"

    loader.alias_version = "2"
    assert not predictor._slot.refresh()
    assert predictor.model is not None and predictor.model.version == "1"
    reason = predictor._slot.reason
    assert reason.startswith("loading tasks_model version 2 failed: UntrustedModelError: the model holds types ")
    assert "outside the platform's trust policy" in reason and f"{__name__}.Marker" in reason
    assert predictor.predict([{KEY: 100, "size": 1.0}]).version == "1"


def test_a_model_without_a_skops_file_is_refused(settings: Settings, tmp_path: Path) -> None:
    """A pickled model (MLflow's other formats) is never loaded, whatever else the directory holds."""
    pickled = tmp_path / "v1"
    pickled.mkdir()
    (pickled / "model.pkl").write_bytes(b"not unpickled")
    predictor, _ = served(settings, "binary", {}, ("1", pickled))
    assert predictor.model is None
    assert predictor.reason.startswith(  # then: no cached model either
        f"loading tasks_model version 1 failed: UntrustedModelError: {pickled} has no model.skops: only models "
        "saved in skops format are loaded (pickles never are); "
    )


@pytest.mark.parametrize(
    ("task", "estimator", "message"),
    [
        (
            "binary",
            lambda: fitted("regression", Ridge),
            "the spec's task is binary but the model (Ridge) is not a classifier with predict_proba and classes_; "
            "set task: regression, or train a classifier",
        ),
        (
            "binary",
            lambda: fitted("multiclass", LogisticRegression),
            "the spec's task is binary but the model (LogisticRegression) has 3 classes [1, 2, 5]; "
            "set task: multiclass",
        ),
        (
            "regression",
            lambda: fitted("binary", LogisticRegression),
            "the spec's task is regression but the model (LogisticRegression) is a classifier with classes [0, 1]; "
            "set task: binary or multiclass, or train a regressor",
        ),
        (
            "multiclass",
            lambda: LogisticRegression().fit(training_frame()[INPUTS], ["a", "b", "c"] * 100),
            "the model's classes ['a', 'b', 'c'] are not integer codes; the spec's label.column must hold integer "
            "class codes for classification",
        ),
    ],
)
def test_a_model_that_does_not_fit_the_task_is_refused(
    task: Task, estimator: Callable[[], Any], message: str, settings: Settings, tmp_path: Path
) -> None:
    predictor, _ = served(settings, task, {}, ("4", save(estimator(), tmp_path / "v4")))
    assert predictor.model is None
    assert predictor.reason.startswith(f"loading tasks_model version 4 failed: ValueError: version 4: {message}; ")


def test_a_model_mlflow_saved_in_skops_format_loads(tmp_path: Path) -> None:
    """What training logs (``mlflow.sklearn`` with ``serialization_format="skops"``) is what serving reads."""
    import mlflow.sklearn

    original = fitted("multiclass", lambda: by_name_pipeline(LogisticRegression()))
    mlflow.sklearn.save_model(original, str(tmp_path / "model"), serialization_format="skops", pip_requirements=[])
    estimator, scorer = load_scorer(tmp_path / "model", make_spec("multiclass"), INPUTS, "1")
    frame = training_frame(rows=5, seed=3)
    outputs = scorer(frame[INPUTS].to_numpy())
    np.testing.assert_allclose(outputs.probabilities or [], original.predict_proba(frame[INPUTS]), rtol=0, atol=1e-9)
    assert type(estimator) is Pipeline and not scorer.arrays


def test_arrays_only_for_plain_scikit_learn_estimators() -> None:
    """Estimators holding estimators keep frames: their members check names too, and warn on arrays."""
    frame = training_frame()
    labels = target("binary", frame)
    voting = VotingClassifier([("a", LogisticRegression()), ("b", LogisticRegression(C=0.5))], voting="soft")
    assert not accept_arrays(voting.fit(frame[INPUTS], labels), INPUTS, "1")
    assert hasattr(voting, "feature_names_in_")  # untouched
    pipeline = by_name_pipeline(LogisticRegression()).fit(frame[INPUTS], labels)
    assert not accept_arrays(pipeline, INPUTS, "1")
    with pytest.raises(ValueError, match=r"version 1: the model was fitted on columns \['f1', 'f2', 'size'\]"):
        accept_arrays(pipeline, ["size", "f1", "f2"], "1")
    assert accept_arrays(LogisticRegression().fit(frame[INPUTS], labels), INPUTS, "1")


# ---- prediction log and metrics per task -------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_prediction_log_stores_the_tasks_score_and_label(
    task: Task, settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    from mlplatform.predictions.reader import read_prediction_log

    make = {"binary": LogisticRegression, "multiclass": LogisticRegression, "regression": Ridge}[task]
    original = fitted(task, make)
    predictor, _ = served(settings, task, table, ("1", save(original, tmp_path / "v1")), log=True)
    rows = request_rows(table)
    try:
        result = predictor.predict(rows, "logged")
    finally:
        predictor.close()
    logged = read_prediction_log(settings, predictor.name)
    assert logged[KEY].tolist() == [row[KEY] for row in rows if row[KEY] != UNKNOWN]
    assert logged["score"].tolist() == [item.score for item in result.predictions]
    frame = expected_frame(table, rows)
    if task == "regression":
        np.testing.assert_allclose(logged["score"], original.predict(frame), rtol=0, atol=1e-9)
        assert logged["label"].isna().all()
    else:
        assert logged["label"].tolist() == original.predict(frame).tolist()
    assert str(logged["label"].dtype) == "Int64"


def test_regression_values_are_observed_apart_from_probabilities(
    settings: Settings, table: dict[int, dict[str, float]], tmp_path: Path
) -> None:
    predictor, _ = served(settings, "regression", table, ("1", save(fitted("regression", Ridge), tmp_path / "v1")))
    result = predictor.predict(request_rows(table))
    text = predictor.metrics.render().decode()
    assert 'mlplatform_serving_prediction_value_count{model="tasks_model"} 6.0' in text
    total = sum(item.score for item in result.predictions)
    sums = [line for line in text.splitlines() if line.startswith("mlplatform_serving_prediction_value_sum{")]
    assert math.isclose(float(sums[0].split()[-1]), total)
    assert 'mlplatform_serving_prediction_score_count{model="tasks_model"} 0.0' in text
