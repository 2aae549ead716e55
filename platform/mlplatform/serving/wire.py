"""The wire format both model servers speak: the entity API's JSON body and answer, entity validation, and the
Open Inference Protocol (v2) tensors KServe carries.

Answers per task (each prediction also carries the entity key; rejected entities are ``errors`` in JSON and rows
with an ``error`` text in v2, whatever the task):

* binary: JSON ``probability`` (of class 1) and ``label``; v2 ``probability`` FP64 [n], ``label`` INT64 [n].
* multiclass: JSON ``probabilities`` (``{"<class>": p}``), ``label`` (the most probable class) and
  ``probability`` (its probability); v2 adds ``probabilities`` FP64 [n, k] whose ``classes`` parameter lists the
  class codes of its columns (a JSON array in a string).
* regression: JSON ``value``; v2 ``value`` FP64 [n] (NaN on rejected rows).
* while a rollout splits entities between two versions: each JSON prediction names its ``version``, and v2 adds
  ``version`` BYTES [n] (empty on rejected rows).

Why here and not in each server: the same body must get the same checks, statuses and messages whichever server
answers it (KServe v1 ``instances``, BentoML ``entities``).
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterable, Sequence
from typing import TYPE_CHECKING, Any

from mlplatform import bodies, logs
from mlplatform.serving.errors import BatchTooLargeError, BodyTooLargeError, InvalidRequestError

if TYPE_CHECKING:
    from mlplatform.serving.scoring import EntityPrediction, PredictionResult
    from mlplatform.specs import Task

V2_FP_TYPES = ("FP64", "FP32", "FP16")
V2_INT_TYPES = ("INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8")
REJECTED_PROBABILITY = -1.0
REJECTED_LABEL = -1
# Entity keys are INT64 in the feature store and in v2 tensors.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


async def read_capped(chunks: AsyncIterable[bytes], declared_length: str | None, limit: int) -> bytes:
    """The request body within ``limit`` bytes (``mlplatform.bodies.read_capped``); past it, a 413."""
    try:
        return await bodies.read_capped(chunks, declared_length, limit)
    except bodies.OversizedBodyError as error:
        raise BodyTooLargeError(f"{error} (serving.max_body_kb)") from None


def parse_request_body(raw: bytes, field: str, header_id: str | None) -> tuple[Any, str | None]:
    """The entity list and request id of a JSON body ``{field: [...], "request_id": "optional"}``, as both
    servers take it (``instances`` on KServe v1, ``entities`` on BentoML); the id falls back to the
    ``x-request-id`` header.  The entities themselves are checked by ``validate_entities``."""
    body = _load_json(raw)
    if not isinstance(body, dict):
        raise InvalidRequestError(f"body: must be a JSON object with an {field!r} list, got {type(body).__name__}")
    if field not in body:
        raise InvalidRequestError(f"{field}: required (a list of entity objects)")
    request_id = body.get("request_id") or header_id
    source = "request_id" if body.get("request_id") else "x-request-id header"
    return body[field], checked_request_id(request_id, source)


def checked_request_id(request_id: object, source: str) -> str | None:
    """A request id the prediction log can keep (a string of at most 64 characters), or None; ``source`` names
    where it came from in the refusal (``request_id``, ``id``, the ``x-request-id`` header)."""
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequestError(f"{source}: must be a string, got {type(request_id).__name__}")
    if request_id is not None and len(request_id) > logs.MAX_REQUEST_ID_CHARS:
        raise InvalidRequestError(
            f"{source}: at most {logs.MAX_REQUEST_ID_CHARS} characters (the prediction log keeps that many), "
            f"got {len(request_id)}"
        )
    return request_id


def _load_json(raw: bytes) -> Any:
    try:
        return bodies.load_json(raw)
    except bodies.UnparsableJsonError as error:
        raise InvalidRequestError(str(error)) from None


def response_body(result: PredictionResult, entity_key: str) -> dict[str, Any]:
    """The JSON answer of both servers' entity API (KServe v1, BentoML): the counterpart of
    ``parse_request_body``."""
    return {
        "model": result.model,
        "version": result.version,
        "request_id": result.request_id,
        "predictions": [
            {entity_key: item.entity[entity_key], **_json_prediction(item, result)} for item in result.predictions
        ],
        "errors": [
            {"index": row.index, entity_key: row.entity[entity_key], "error": row.error} for row in result.errors
        ],
    }


def _json_prediction(item: EntityPrediction, result: PredictionResult) -> dict[str, Any]:
    answer: dict[str, Any] = {"version": item.version} if item.version is not None else {}
    if result.task == "regression":
        answer["value"] = item.score
        return answer
    answer.update(probability=item.score, label=item.label)
    if result.task == "multiclass":
        answer["probabilities"] = {
            str(code): probability for code, probability in zip(result.classes, item.probabilities, strict=True)
        }
    return answer


def validate_entities(
    entities: object, entity_key: str, request_columns: Sequence[str], max_batch_size: int, field: str = "entities"
) -> list[dict[str, Any]]:
    """Check the request's entities and return normalised rows (``{key: int, column: float}``).

    Whole-request checks (rather than per-row errors) because a malformed row is a client bug, not data the
    platform lacks: the client gets a 422 naming the first bad field and fixes its code.
    """
    if not isinstance(entities, list):
        raise InvalidRequestError(f"{field}: must be a list of objects, got {type(entities).__name__}")
    if not entities:
        raise InvalidRequestError(f"{field}: must contain at least one entity")
    if len(entities) > max_batch_size:
        raise BatchTooLargeError(
            f"{field}: {len(entities)} entities exceed the limit of {max_batch_size} per request "
            "(settings: serving.max_batch_size); split the batch"
        )
    return [
        _validate_entity(f"{field}[{index}]", entity, entity_key, request_columns)
        for index, entity in enumerate(entities)
    ]


def _validate_entity(where: str, entity: object, entity_key: str, request_columns: Sequence[str]) -> dict[str, Any]:
    if not isinstance(entity, dict):
        raise InvalidRequestError(f"{where}: must be an object, got {type(entity).__name__}")
    key = entity.get(entity_key)
    if key is None:
        raise InvalidRequestError(f"{where}.{entity_key}: required (the entity key)")
    if isinstance(key, bool) or not isinstance(key, int):
        raise InvalidRequestError(f"{where}.{entity_key}: must be an integer, got {type(key).__name__} {_shown(key)}")
    if not INT64_MIN <= key <= INT64_MAX:
        raise InvalidRequestError(f"{where}.{entity_key}: must fit in 64 bits (-2^63 to 2^63-1), got {_shown(key)}")
    row: dict[str, Any] = {entity_key: key}
    for column in request_columns:
        row[column] = _request_value(f"{where}.{column}", entity.get(column))
    return row


def _request_value(where: str, value: object) -> float:
    """A request-time value as the model takes it: a finite float (an integer too large for one is refused)."""
    if value is None:
        raise InvalidRequestError(f"{where}: required (a request-time value the model needs)")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(f"{where}: must be a number, got {type(value).__name__} {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidRequestError(
            f"{where}: must be a finite number, got an integer of {len(str(value))} digits"
        ) from None
    if not math.isfinite(number):
        raise InvalidRequestError(f"{where}: must be a finite number, got {value!r}")
    return number


def _shown(value: object, limit: int = 40) -> str:
    """The offending value as an error message shows it: its repr, cut short (a client may send megabytes)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def v2_entities(request: Any, entity_key: str, request_columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """Entity dicts from v2 tensors: one INT64 input per entity key, one FP64 input per request column, all [N]."""
    columns: dict[str, list[Any]] = {}
    for name, allowed in (
        (entity_key, V2_INT_TYPES),
        *((column, V2_FP_TYPES + V2_INT_TYPES) for column in request_columns),
    ):
        tensor = request.get_input_by_name(name)
        if tensor is None:
            given = [item.name for item in request.inputs]
            raise InvalidRequestError(f"inputs.{name}: required (an input tensor named {name!r}); got {given}")
        if tensor.datatype not in allowed:
            raise InvalidRequestError(f"inputs.{name}: datatype must be one of {list(allowed)}, got {tensor.datatype}")
        try:
            values = tensor.as_numpy().reshape(-1).tolist()
        except Exception as error:  # kserve raises assorted errors for data/shape mismatches
            raise InvalidRequestError(f"inputs.{name}: data does not match datatype/shape: {error}") from None
        columns[name] = values
    sizes = {name: len(values) for name, values in columns.items()}
    if len(set(sizes.values())) > 1:
        raise InvalidRequestError(f"inputs: all inputs must have the same length, got {sizes}")
    size = next(iter(sizes.values()))
    return [{name: values[index] for name, values in columns.items()} for index in range(size)]


def v2_output_types(task: Task) -> list[dict[str, Any]]:
    """The v2 outputs a model of ``task`` answers with (model metadata)."""
    if task == "regression":
        outputs = [{"name": "value", "datatype": "FP64", "shape": [-1]}]
    else:
        outputs = [
            {"name": "probability", "datatype": "FP64", "shape": [-1]},
            {"name": "label", "datatype": "INT64", "shape": [-1]},
        ]
        if task == "multiclass":
            outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, -1]})
    return [*outputs, {"name": "error", "datatype": "BYTES", "shape": [-1]}]


def v2_response(result: PredictionResult, output_type: Any, response_type: Any) -> Any:
    """Outputs aligned with the inputs; rejected rows carry their error text and placeholder values (classifiers:
    probability -1, label -1; regression: NaN)."""
    size = result.size
    errors = [""] * size
    for row in result.errors:
        errors[row.index] = row.error
    if result.task == "regression":
        values = [math.nan] * size
        for item in result.predictions:
            values[item.index] = item.score
        outputs = [output_type(name="value", shape=[size], datatype="FP64", data=values)]
    else:
        outputs = _v2_classifier_outputs(result, output_type)
    outputs.append(output_type(name="error", shape=[size], datatype="BYTES", data=errors))
    if any(item.version is not None for item in result.predictions):  # a rollout split the request
        versions = [""] * size
        for item in result.predictions:
            versions[item.index] = item.version or result.version
        outputs.append(output_type(name="version", shape=[size], datatype="BYTES", data=versions))
    return response_type(
        response_id=result.request_id,
        model_name=result.model,
        model_version=result.version,
        infer_outputs=outputs,
    )


def _v2_classifier_outputs(result: PredictionResult, output_type: Any) -> list[Any]:
    size = result.size
    probabilities = [REJECTED_PROBABILITY] * size
    labels = [REJECTED_LABEL] * size
    for item in result.predictions:
        probabilities[item.index] = item.score
        if item.label is not None:  # always set for classifiers
            labels[item.index] = item.label
    outputs = [
        output_type(name="probability", shape=[size], datatype="FP64", data=probabilities),
        output_type(name="label", shape=[size], datatype="INT64", data=labels),
    ]
    if result.task == "multiclass":
        width = len(result.classes)
        per_class = [[REJECTED_PROBABILITY] * width for _ in range(size)]
        for item in result.predictions:
            per_class[item.index] = list(item.probabilities)
        outputs.append(
            output_type(
                name="probabilities",
                shape=[size, width],
                datatype="FP64",
                data=[value for row in per_class for value in row],
                parameters={"classes": json.dumps(list(result.classes))},
            )
        )
    return outputs
