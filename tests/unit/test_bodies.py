"""``bodies.load_json``: orjson parses where it can, and every body still parses to what Python's parser gives (or is
refused in its words), whichever parser took it."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from mlplatform import bodies

NOT_UTF8 = b"\xe9"


def _same(left: Any, right: Any) -> bool:
    """Equal documents, NaN equal to NaN and an int never equal to a float of the same value."""
    if isinstance(left, float) and isinstance(right, float):
        return left == right or (math.isnan(left) and math.isnan(right))
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_same(left[key], right[key]) for key in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(_same(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"instances": [{"customer_id": 2319, "amount": 34.45}]}',
        b'{"a": NaN, "b": Infinity, "c": -Infinity}',
        b'{"key": 9223372036854775807, "over": 9223372036854775808, "under": -9223372036854775809}',
        b'{"huge": 123456789012345678901234567890, "fraction": 0.12345678901234567890123}',
        b"[1e400, -1e400, 1e-400]",
        b'{"a": 1, "a": 2}',
        '{"text": "\\ud800 caf\\u00e9 \u00e9"}'.encode(),
        b'\xef\xbb\xbf{"bom": true}',
        '{"utf16": 1}'.encode("utf-16"),
        b"[" * 200 + b"]" * 200,
    ],
)
def test_every_body_parses_to_what_pythons_parser_gives(raw: bytes) -> None:
    assert _same(bodies.load_json(raw), json.loads(raw))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"a": "' + NOT_UTF8 + b'"}', "not UTF-8"),
        (b"[" * 5000, "nested too deeply"),
        (b'{"a": ', "not valid JSON"),
        (b"1" * 5000, "out of range"),
    ],
)
def test_a_refused_body_is_refused_in_pythons_words(raw: bytes, message: str) -> None:
    with pytest.raises(bodies.UnparsableJsonError, match=message):
        bodies.load_json(raw)
