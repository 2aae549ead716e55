"""The floor for a server that must fetch features: the bare model server plus one direct read from the store.

Usage: python benchmarks/bare_store_server.py MODEL_DIR --port 8398 --store redis://127.0.0.1:6379
           --project bench --key customer_id --views '{"view": ["feature", ...]}' --inputs a,b,c
(``--store sqlite:///path/to/online_store.db`` for Feast's sqlite store).

POST /predict {"keys": [id, ...], "request": [[value, ...], ...]} -> {"probabilities": [...]}.  The stored
features of every key come from the online store in one read (Redis: one pipelined ``HMGET`` per key over every
view's fields, in one round trip; sqlite: one ``SELECT ... IN`` per view), in the layouts Feast wrote them; the
model inputs that are not stored come inline in ``request`` (computed by the client, in ``--inputs`` order
without the stored ones).  Nothing else: no Feast SDK, no request validation beyond JSON, no prediction log, no
metrics, no model swaps.  The platform's servers are reported against this as "bare + store", the floor for a
server that fetches its features; only the store's wire format is shared with Feast (entity keys as Feast
serializes a lone int64 key, values as Feast's ``Value`` protobuf, Redis fields as murmur3 of "view:feature").
"""

from __future__ import annotations

import argparse
import gc
import json
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

INT64, STRING = 4, 2
"""Feast's ``ValueType`` codes in the entity key encoding."""

Read = Callable[[list[int]], list[list[Any]]]
"""Stored feature values per key, in the order of the views' features (``None`` where missing)."""


def key_bytes(name: str, value: int) -> bytes:
    """Feast's serialization (version 3) of a lone int64 entity key."""
    raw = name.encode("utf8")
    return struct.pack("<III", 1, STRING, len(raw)) + raw + struct.pack("<IIq", INT64, 8, value)


def decode(raw: bytes | None, parse: Callable[[bytes], Any]) -> Any:
    if raw is None:
        return None
    value = parse(raw)
    kind = value.WhichOneof("val")
    return None if kind is None else getattr(value, kind)


def redis_reader(url: str, project: str, key: str, views: dict[str, list[str]]) -> Read:
    import mmh3
    import redis
    from feast.protos.feast.types.Value_pb2 import Value

    client = redis.Redis.from_url(url)
    fields = [
        struct.pack("<Q", mmh3.hash(f"{view}:{feature}", signed=False))[:4]
        for view, features in views.items()
        for feature in features
    ]
    suffix = project.encode("utf8")
    parse = Value.FromString

    def read(keys: list[int]) -> list[list[Any]]:
        with client.pipeline(transaction=False) as pipe:
            for value in keys:
                pipe.hmget(key_bytes(key, value) + suffix, fields)
            replies = pipe.execute()
        return [[decode(raw, parse) for raw in reply] for reply in replies]

    return read


def sqlite_reader(path: str, project: str, key: str, views: dict[str, list[str]]) -> Read:
    from feast.protos.feast.types.Value_pb2 import Value

    connection = sqlite3.connect(path, check_same_thread=False)
    parse = Value.FromString

    def read(keys: list[int]) -> list[list[Any]]:
        blobs = [key_bytes(key, value) for value in keys]
        marks = ",".join("?" * len(blobs))
        found: dict[bytes, dict[str, bytes]] = {}
        for view in views:
            query = f'SELECT entity_key, feature_name, value FROM "{project}_{view}" WHERE entity_key IN ({marks})'
            for entity_key, name, value in connection.execute(query, blobs):
                found.setdefault(entity_key, {})[f"{view}:{name}"] = value
        return [
            [
                decode(found.get(blob, {}).get(f"{view}:{feature}"), parse)
                for view, names in views.items()
                for feature in names
            ]
            for blob in blobs
        ]

    return read


def build_app(score: Any, read: Read, stored_columns: list[int], request_columns: list[int], width: int) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def predict(request: Request) -> JSONResponse:
        body = await request.json()
        stored = read(body["keys"])
        matrix = np.empty((len(stored), width), dtype=np.float64)
        matrix[:, stored_columns] = np.asarray(stored, dtype=np.float64)  # None -> NaN
        matrix[:, request_columns] = np.asarray(body["request"], dtype=np.float64)
        return JSONResponse({"probabilities": score(matrix).tolist()})

    async def ready(_: Request) -> JSONResponse:
        return JSONResponse({"ready": True})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", ready)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--store", required=True, help="redis://host:port or sqlite:///path")
    parser.add_argument("--project", required=True)
    parser.add_argument("--key", required=True, help="the entity's join key (int64)")
    parser.add_argument("--views", required=True, help='JSON {"view": ["feature", ...]} of the stored inputs')
    parser.add_argument("--inputs", required=True, help="comma-separated model inputs in fitted order")
    args = parser.parse_args()
    import warnings

    import uvicorn
    from threadpoolctl import threadpool_limits

    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    threadpool_limits(1)
    from mlplatform.serving.compiled_trees import positive_scorer
    from mlplatform.training.estimators import load_estimator

    views: dict[str, list[str]] = json.loads(args.views)
    inputs = args.inputs.split(",")
    stored_names = [feature for features in views.values() for feature in features]
    # Only the stored features the model takes are placed; the read still fetches every listed one.
    stored_columns = [inputs.index(name) if name in inputs else -1 for name in stored_names]
    if -1 in stored_columns:
        raise SystemExit("--views lists a feature the model does not take; list only model inputs")
    request_columns = [index for index, name in enumerate(inputs) if name not in stored_names]
    if args.store.startswith("redis://"):
        read = redis_reader(args.store, args.project, args.key, views)
    else:
        read = sqlite_reader(str(Path(args.store.removeprefix("sqlite://"))), args.project, args.key, views)
    score, _ = positive_scorer(load_estimator(Path(args.model_dir)), "bare-store")
    gc.freeze()
    app = build_app(score, read, stored_columns, request_columns, len(inputs))
    uvicorn.run(app, host="127.0.0.1", port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
