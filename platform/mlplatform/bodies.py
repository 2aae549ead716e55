"""Request bodies read with a bound and parsed without surprises, for every HTTP boundary (model servers, the
platform API's webhook): the caller turns these errors into its own 413 and 4xx answers.

Why one place: the model servers and the API must refuse the same hostile bodies the same way, and neither may
hold more of a body than its limit or let Python's JSON parser raise anything but a clear refusal.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from typing import Any


class OversizedBodyError(ValueError):
    """The body's declared length or its bytes received so far passed the limit; the message says which."""


class UnparsableJsonError(ValueError):
    """The body is not a JSON document Python can hold; the message says why, never echoing the body."""


async def read_capped(chunks: AsyncIterable[bytes], declared_length: str | None, limit: int) -> bytes:
    """The whole body, refused once its declared length or the bytes received so far pass ``limit``.

    Both checks: a client may send no Content-Length (chunked) or a false one; counting while receiving bounds the
    memory either way, and checking the header first spares reading anything of an honest oversized request.
    """
    if declared_length is not None and declared_length.strip().isdigit() and int(declared_length) > limit:
        raise OversizedBodyError(f"body: {int(declared_length)} bytes exceed the limit of {limit}")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise OversizedBodyError(f"body: more than {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def load_json(raw: bytes) -> Any:
    """The parsed document; everything Python's parser refuses is an ``UnparsableJsonError`` naming why.

    ``json.loads`` raises more than ``JSONDecodeError``: ``UnicodeDecodeError`` for bytes that are not UTF-8,
    ``ValueError`` for integers beyond Python's 4300-digit conversion limit, ``RecursionError`` for arrays or objects
    nested about a thousand deep.
    """
    try:
        return json.loads(raw)
    except UnicodeDecodeError as error:
        raise UnparsableJsonError(f"body: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise UnparsableJsonError(f"body: not valid JSON ({error})") from None
    except ValueError as error:  # the integer digit limit
        raise UnparsableJsonError(f"body: a number in it is out of range ({error})") from None
    except RecursionError:
        raise UnparsableJsonError("body: nested too deeply") from None
