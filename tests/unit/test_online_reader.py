"""The serving reader's direct encodings give Feast's and redis-py's bytes, and leave to them what they do not cover.

Why: a wrong key byte reads no row (every feature ``None``) without any error, so the direct encoding must equal
``serialize_entity_key`` for every value it takes; likewise a value read from its bytes, and a prepared ``HMGET``.
The answers over real stores are compared with Feast's in ``tests/integration/test_features.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

from mlplatform.features.online_reader import _direct_key_head, _direct_key_value, python_value, stored_value
from mlplatform.features.redis_hashes import HashFields


def _feast_key(join_key: str, kind: ValueType, value: Any) -> bytes:
    (proto,) = python_values_to_proto_values([value], kind)
    return serialize_entity_key(
        EntityKey(join_keys=[join_key], entity_values=[proto]), entity_key_serialization_version=3
    )


@pytest.mark.parametrize(
    ("join_key", "kind", "value"),
    [
        ("customer_id", ValueType.INT64, 1001),
        ("customer_id", ValueType.INT64, 0),
        ("customer_id", ValueType.INT64, -7),
        ("customer_id", ValueType.INT64, 2**63 - 1),
        ("customer_id", ValueType.INT64, -(2**63)),
        ("customer_id", ValueType.INT64, np.int64(42)),
        ("customer_id", ValueType.INT64, np.int32(42)),
        ("patient", ValueType.STRING, "p-17"),
        ("patient", ValueType.STRING, ""),
        ("patiënt", ValueType.STRING, "Zoë ✓"),
    ],
)
def test_direct_keys_are_feasts_bytes(join_key: str, kind: ValueType, value: Any) -> None:
    head = _direct_key_head([join_key], [kind], 3)
    encoded = _direct_key_value(kind, value)
    assert head is not None and encoded is not None
    assert head + encoded == _feast_key(join_key, kind, value)


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (ValueType.INT64, "1001"),
        (ValueType.INT64, 1001.0),
        (ValueType.INT64, True),
        (ValueType.INT64, 2**63),
        (ValueType.INT64, None),
        (ValueType.STRING, 5),
        (ValueType.STRING, b"raw"),
    ],
)
def test_a_value_not_of_its_keys_type_is_left_to_feast(kind: ValueType, value: Any) -> None:
    assert _direct_key_value(kind, value) is None


@pytest.mark.parametrize(
    ("join_keys", "kinds", "version"),
    [
        (["customer_id", "merchant_id"], [ValueType.INT64, ValueType.INT64], 3),
        (["day"], [ValueType.UNIX_TIMESTAMP], 3),
        (["code"], [ValueType.INT32], 3),
        (["customer_id"], [ValueType.INT64], 2),
    ],
)
def test_keys_the_direct_encoding_does_not_cover_go_through_feast(
    join_keys: list[str], kinds: list[ValueType], version: int
) -> None:
    assert _direct_key_head(join_keys, kinds, version) is None


@pytest.mark.parametrize(
    "value",
    [
        Value(double_val=12.5),
        Value(double_val=0.0),
        Value(double_val=-0.0),
        Value(double_val=float("inf")),
        Value(double_val=-1e-300),
        Value(int64_val=9),
        Value(int64_val=0),
        Value(int64_val=127),
        Value(int64_val=128),
        Value(int64_val=16_383),
        Value(int64_val=16_384),
        Value(int64_val=-1),
        Value(int64_val=-(2**63)),
        Value(int32_val=5),  # a varint too, under another tag
        Value(float_val=1.5),
        Value(string_val="ninebytes"),  # nine bytes again, but a string's tag
        Value(bool_val=False),
        Value(),
    ],
)
def test_stored_values_read_from_their_bytes_equal_feasts(value: Value) -> None:
    raw = value.SerializeToString()
    got = stored_value(raw, Value.FromString)
    expected = python_value(Value.FromString(raw))
    assert got == expected and type(got) is type(expected)
    if isinstance(expected, float):
        assert math.copysign(1.0, got) == math.copysign(1.0, expected)


def test_a_stored_nan_stays_nan() -> None:
    assert math.isnan(stored_value(Value(double_val=math.nan).SerializeToString(), Value.FromString))


@pytest.mark.parametrize("fields", [[b"a"], [b"\x00\xff\r\n", b"fieldtwo", b""]])
def test_prepared_hmgets_are_the_bytes_redis_py_sends(fields: list[bytes]) -> None:
    from redis.connection import Connection

    key = b"\x02\x00\x00\x00customer\r\n"
    packer: Any = Connection  # redis-py's connection is unannotated
    packed = b"".join(packer().pack_command("HMGET", key, *fields))
    assert HashFields(fields).command(key) == packed
