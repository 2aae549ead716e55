"""Predictor logic that needs no server: request validation, unknown-entity policy, input order, the model cache,
metrics, and the KServe v2 tensor mapping."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from mlplatform.serving.errors import BatchTooLargeError, InvalidRequestError
from mlplatform.serving.loading import ModelCache
from mlplatform.serving.metrics import ServingMetrics
from mlplatform.serving.scoring import EntityPrediction, PredictionResult, RowError, input_matrix, unknown_rows
from mlplatform.serving.wire import parse_request_body, validate_entities


def _validate(entities: object, limit: int = 3) -> list[dict[str, Any]]:
    return validate_entities(entities, "customer_id", ("amount",), limit)


def test_valid_entities_are_normalised() -> None:
    rows = _validate([{"customer_id": 1001, "amount": 12, "extra": "ignored"}])
    assert rows == [{"customer_id": 1001, "amount": 12.0}]
    assert isinstance(rows[0]["amount"], float)


@pytest.mark.parametrize(
    ("entities", "message"),
    [
        ({"customer_id": 1}, "entities: must be a list of objects, got dict"),
        ([], "entities: must contain at least one entity"),
        ([1], "entities[0]: must be an object, got int"),
        ([{"amount": 1.0}], "entities[0].customer_id: required"),
        ([{"customer_id": True, "amount": 1.0}], "entities[0].customer_id: must be an integer, got bool"),
        ([{"customer_id": 1.5, "amount": 1.0}], "entities[0].customer_id: must be an integer, got float"),
        ([{"customer_id": 1, "amount": 1.0}, {"customer_id": 2}], "entities[1].amount: required"),
        ([{"customer_id": 1, "amount": "3"}], "entities[0].amount: must be a number, got str"),
        ([{"customer_id": 1, "amount": math.inf}], "entities[0].amount: must be a finite number"),
        ([{"customer_id": 2**63, "amount": 1.0}], "entities[0].customer_id: must fit in 64 bits"),
        ([{"customer_id": -(2**63) - 1, "amount": 1.0}], "entities[0].customer_id: must fit in 64 bits"),
        ([{"customer_id": 1, "amount": 10**400}], "entities[0].amount: must be a finite number, got an integer of 401"),
        ([{"customer_id": 1, "amount": "x" * 10_000}], "entities[0].amount: must be a number, got str 'xxx"),
    ],
)
def test_invalid_entities_name_the_field(entities: object, message: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        _validate(entities)
    assert raised.value.status == 422 and raised.value.message.startswith(message)


def test_field_name_follows_the_protocol() -> None:
    with pytest.raises(InvalidRequestError, match=r"instances\[0\].amount: required"):
        validate_entities([{"customer_id": 1}], "customer_id", ("amount",), 5, field="instances")


def test_oversized_batch_is_413() -> None:
    with pytest.raises(BatchTooLargeError) as raised:
        _validate([{"customer_id": 1, "amount": 1.0}] * 4)
    assert raised.value.status == 413 and "4 entities exceed the limit of 3" in raised.value.message


def test_unknown_rows_are_those_without_any_stored_feature() -> None:
    features: dict[str, list[Any]] = {
        "customer_id": [1, 2, 3],
        "credit_limit": [100.0, None, None],
        "txn_count_1h": [None, 2, float("nan")],
        "txn_amount": [5.0, 6.0, 7.0],  # on-demand: always present, so it must not count
    }
    stored = frozenset({"credit_limit", "txn_count_1h"})
    assert unknown_rows(features, stored, 3) == [2]


def test_input_matrix_follows_the_trained_column_order() -> None:
    features: dict[str, list[Any]] = {"b": [1.0, None], "a": [2, 3]}
    rows = [{"id": 1, "amount": 9.0}, {"id": 2, "amount": 8.0}]
    matrix = input_matrix(["a", "amount", "b"], features, rows, [0, 1])
    assert matrix[0] == [2.0, 9.0, 1.0]
    assert matrix[1][:2] == [3.0, 8.0] and math.isnan(matrix[1][2])


def test_model_cache_keeps_only_the_last_good_version(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path, "m")
    assert cache.load_manifest() is None
    for version in ("1", "2"):
        source = tmp_path / f"download-{version}"
        source.mkdir()
        (source / "MLmodel").write_text(f"version {version}")
        cache.store(source, {"version": version, "feature_service": "fs", "model_inputs": ["a"]})
    loaded = cache.load_manifest()
    assert loaded is not None
    manifest, model_dir = loaded
    assert manifest["version"] == "2" and model_dir.name == "v2"
    assert (model_dir / "MLmodel").read_text() == "version 2"
    assert sorted(path.name for path in cache.dir.iterdir()) == ["current.json", "v2"]


def test_metrics_track_one_served_version() -> None:
    metrics = ServingMetrics()
    metrics.set_model_version("m", "1", from_cache=True)
    metrics.set_model_version("m", "2", from_cache=False)
    text = metrics.render().decode()
    assert 'mlplatform_serving_model_info{model="m",version="2"} 1.0' in text
    assert 'version="1"' not in text
    assert 'mlplatform_serving_model_from_cache{model="m"} 0.0' in text
    metrics.stage_seconds.labels("m", "total").observe(0.0004)
    assert (
        'mlplatform_serving_stage_seconds_bucket{le="0.0005",model="m",stage="total"} 1.0' in metrics.render().decode()
    )
    assert ServingMetrics().render() != b""  # a second instance does not clash with the first


def test_metrics_stay_in_memory_where_a_multiprocess_directory_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in a BentoML worker, whose arbiter sets ``PROMETHEUS_MULTIPROC_DIR`` before prometheus_client picks its
    value class: the server's series still count in memory and write no file there."""
    from prometheus_client import values

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    picked = values.MultiProcessValue()  # type: ignore[no-untyped-call]  # what the import picked there
    monkeypatch.setattr(values, "ValueClass", picked)
    metrics = ServingMetrics()
    series = metrics.model_series("m")
    series.requests["ok"].inc()
    series.stages["total"].observe(0.002)
    assert list(tmp_path.iterdir()) == []
    text = metrics.render().decode()
    assert 'mlplatform_serving_requests_total{model="m",outcome="ok"} 1.0' in text
    assert 'mlplatform_serving_stage_seconds_count{model="m",stage="total"} 1.0' in text


def test_v2_tensors_map_to_entities_and_back() -> None:
    from kserve import InferInput, InferOutput, InferRequest, InferResponse

    from mlplatform.serving import wire as server

    request = InferRequest(
        model_name="m",
        infer_inputs=[
            InferInput("customer_id", [2], "INT64", data=[1001, 1002]),
            InferInput("amount", [2], "FP64", data=[5.0, 6.5]),
        ],
    )
    assert server.v2_entities(request, "customer_id", ("amount",)) == [
        {"customer_id": 1001, "amount": 5.0},
        {"customer_id": 1002, "amount": 6.5},
    ]
    result = PredictionResult(
        "m", "3", "r", [EntityPrediction(1, {"customer_id": 1002}, 0.75, 1)], [RowError(0, {"customer_id": 1001}, "x")]
    )
    response = server.v2_response(result, InferOutput, InferResponse)
    outputs = {output.name: output.data for output in response.outputs}
    assert outputs == {"probability": [-1.0, 0.75], "label": [-1, 1], "error": ["x", ""]}
    assert (response.id, response.model_version) == ("r", "3")


def test_v2_missing_or_mistyped_inputs_are_422() -> None:
    from kserve import InferInput, InferRequest

    from mlplatform.serving import wire as server

    only_key = InferRequest(model_name="m", infer_inputs=[InferInput("customer_id", [1], "INT64", data=[1])])
    with pytest.raises(InvalidRequestError, match=r"inputs\.amount: required"):
        server.v2_entities(only_key, "customer_id", ("amount",))
    float_key = InferRequest(
        model_name="m",
        infer_inputs=[
            InferInput("customer_id", [1], "FP64", data=[1.0]),
            InferInput("amount", [1], "FP64", data=[1.0]),
        ],
    )
    with pytest.raises(InvalidRequestError, match=r"inputs\.customer_id: datatype must be one of"):
        server.v2_entities(float_key, "customer_id", ("amount",))


def test_accept_arrays_checks_the_fitted_columns_once() -> None:
    import warnings

    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlplatform.serving.loading import accept_arrays

    frame = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0] * 10, "b": [1.0, 0.0, 1.0, 0.0] * 10})
    labels = [0, 1, 0, 1] * 10
    with pytest.raises(ValueError, match="fitted on columns"):
        accept_arrays(HistGradientBoostingClassifier(max_iter=5).fit(frame, labels), ["b", "a"], "7")
    model = HistGradientBoostingClassifier(max_iter=5).fit(frame, labels)
    expected = model.predict_proba(frame.head(2))[:, 1]
    assert accept_arrays(model, ["a", "b"], "7")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names" warning any more
        assert np.allclose(model.predict_proba(frame.head(2).to_numpy())[:, 1], expected)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "body: not valid JSON"),
        (b"\xff\xfe", "body: not valid JSON"),
        (b"[1, 2]", "body: must be a JSON object with an 'instances' list, got list"),
        (b'{"entities": []}', "instances: required"),
        (b'{"instances": [], "request_id": 7}', "request_id: must be a string, got int"),
        (b'{"instances": [], "request_id": "' + b"r" * 65 + b'"}', "request_id: at most 64 characters"),
        (b'{"instances": [' + b"9" * 5000 + b"]}", "body: a number in it is out of range"),
        (b"[" * 100_000 + b"]" * 100_000, "body: nested too deeply"),
        (b'{"instances": [], "x": "\xc3\x28"}', "body: not UTF-8 text"),
    ],
)
def test_request_body_errors_name_the_field(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape(message)):
        parse_request_body(raw, "instances", None)


def test_a_long_request_id_header_is_refused_naming_the_header() -> None:
    with pytest.raises(InvalidRequestError, match=r"x-request-id header: at most 64 characters"):
        parse_request_body(b'{"entities": []}', "entities", "h" * 65)


def test_error_messages_show_at_most_a_short_piece_of_the_value() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        _validate([{"customer_id": "9" * 100_000, "amount": 1.0}])
    assert len(raised.value.message) < 200 and "(100002 characters)" in raised.value.message


def test_request_body_takes_the_id_from_the_body_then_the_header() -> None:
    with_id = b'{"entities": [{"customer_id": 1, "amount": 2.0}], "request_id": "r1"}'
    assert parse_request_body(with_id, "entities", "h") == ([{"customer_id": 1, "amount": 2.0}], "r1")
    assert parse_request_body(b'{"entities": []}', "entities", "h") == ([], "h")
    assert parse_request_body(b'{"entities": []}', "entities", None) == ([], None)
