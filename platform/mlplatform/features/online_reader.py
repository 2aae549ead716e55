"""Online lookups of one feature service with the plan made once, for model servers.

Why not ``FeatureStore.get_online_features`` per request: for a one-entity request most of its ~0.4 ms goes into
work around the read, not the read itself: converting every request value to protobuf, building a protobuf
response, converting it back with ``to_dict``, and runtime type checks.  A model server asks the same question
thousands of times a second, so ``OnlineFeatureReader`` resolves the service once (Feast's own resolution: which
views, which features, join keys, request data, on-demand views) and per request does only what must happen: the
entity keys, one read per feature view, the conversion of the values read, and the on-demand transformations
called with the inputs Feast gives them.

Three more layers are cut where they are pure overhead for a model server:
* **The sqlite store is read with one query per view on a connection of the reader's own**, selecting only the
  entity key, feature name and value.  Feast's ``SqliteOnlineStore.online_read`` also parses every row's
  ``event_ts`` into a timezone-aware datetime (its connection declares types), which the lookup never uses: at
  32 entities that was 384 datetimes per request.  Table names and key bytes come from Feast's own functions.
* **Values are decoded with a scalar fast path**: ``int64_val``, ``double_val`` and the other plain scalars are
  what Feast's ``feast_value_type_to_python_type`` returns unchanged, so only those skip its chain of checks;
  every other kind still goes through Feast's converter.  A ``double_val`` and a small ``int64_val`` are read
  from their wire bytes without parsing the message (``stored_value``).
* **The Redis store is read in one round trip per request**: one pipelined ``HMGET`` per entity asks for the
  features of every view joined on that entity (Feast keeps them in one hash per entity key), with the hash
  field names computed at planning.  Feast's ``RedisOnlineStore.online_read`` makes one round trip per view,
  hashes every field name per request, and decodes each view's timestamp, which the lookup never uses.  A
  single server is read on connections of the reader's own, made with the options of the store's own client
  (Feast's connection string: TLS, password, database), with the commands encoded once per field list
  (``redis_hashes``); a cluster or sentinel set-up through the store's client, pipelined; a store set to
  Feast's ``glide`` client through ``online_read``.  ``read_async`` reads the same single server with the
  replies awaited on the server's event loop, which scores other requests meanwhile.
* **Entity keys are encoded directly** for the common case (one ``int64`` or ``string`` join key): the encoding
  is Feast's, with the constant head computed once, instead of a protobuf per value and Feast's generic
  serializer.  Other keys go through Feast's own functions.
* **On-demand views are called through their transformation**, not the typeguard-checked ``transform_dict``
  (see ``_Transform``).  Other online stores are read through the store's own ``online_read``.

The answers equal Feast's (``tests/integration/test_features.py`` compares them on sqlite and Redis, and
``tests/unit/test_online_reader.py`` the key encodings), and a
service using something this reader does not cover (non-python on-demand modes, aggregations, precomputed
vectors, versioned reads, entity-less views, full feature names) raises ``UnsupportedServiceError`` at planning,
so the caller keeps Feast's path for it.
"""

from __future__ import annotations

import math
import sqlite3
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from mlplatform.features.redis_hashes import HashFields, HashReads, loop_hash_reads

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

SCALAR_KINDS = frozenset(("int32_val", "int64_val", "double_val", "float_val", "bool_val", "string_val", "bytes_val"))
"""Value kinds Feast's converter returns as they are (no JSON, collection, timestamp, UUID or decimal handling)."""

SQLITE_CACHE_KIB = 64 * 1024
SQLITE_MMAP_BYTES = 256 * 1024 * 1024
"""Upper bounds (cache memory, mapped address space) for the reader's sqlite connection; a store uses only its size."""

SQLITE_LOCK_WAIT_S = 5.0
"""How long a sqlite read waits for a writer's lock where no ``loop_timeout_s`` bounds it (Python's default)."""

DIRECT_KEY_VERSION = 3
"""The entity key serialization version whose layout ``_direct_key_head`` writes (Feast's current one)."""
INT64_RANGE = (-(2**63), 2**63)
DOUBLE_TAG = 0x29
"""The first byte of a serialized ``Value`` holding a ``double_val`` (field 5, 64-bit wire type)."""
INT64_TAG = 0x20
"""The first byte of a serialized ``Value`` holding an ``int64_val`` (field 4, varint)."""
VARINT_MORE = 0x80
"""A varint byte with this bit set is followed by another."""
_unpack_double = struct.Struct("<d").unpack_from


class UnsupportedServiceError(ValueError):
    """The service uses a Feast feature this reader does not implement; use ``get_online_features`` instead."""


@dataclass(frozen=True)
class _ViewRead:
    """One batch feature view: what to read, and where its features sit in its group's Redis hash fields."""

    table: Any
    features: list[str]
    sqlite_table: str | None = None
    """The quoted table name when the view is read straight from the sqlite store."""
    redis_fields: tuple[bytes, ...] = ()
    """The Redis hash field of each feature (Feast's ``murmur3("view:feature")``), when read straight from Redis."""


@dataclass(frozen=True)
class _Group:
    """The batch views joined on the same entity keys: one encoded key per entity serves them all, and on Redis
    one hash per entity holds all their features."""

    join_keys: list[str]
    key_types: list[Any]
    views: list[_ViewRead]
    key_head: bytes | None
    """The constant head of a one-key encoding (key count, name), when its values can be encoded directly."""

    @cached_property
    def redis_fields(self) -> list[bytes]:
        """Every view's Redis hash fields, in view order (first asked once planning is done)."""
        return [field for view in self.views for field in view.redis_fields]

    @cached_property
    def redis_command(self) -> HashFields:
        """The ``HMGET`` of ``redis_fields``, encoded once."""
        return HashFields(self.redis_fields)


@dataclass(frozen=True)
class _Keys:
    """The entity keys of one request for one group: per row, distinct, and encoded."""

    per_row: list[tuple[Any, ...]]
    unique: list[tuple[Any, ...]]
    serialized: list[bytes]


@dataclass(frozen=True)
class _Transform:
    """One python-mode on-demand view: its transformation, inputs (declared sources) and typed outputs.

    ``call`` is the view's transformation itself (batch or singleton, as the view declares), not the view's
    ``transform_dict``: that method is wrapped by typeguard, whose argument and result checks walked every
    input and output dict, about a fifth of a one-entity lookup.  ``sources`` are the (short, full) names of the
    declared source features: the short names are the inputs, and ``transform_dict`` fills in both ways before
    the call.
    """

    call: Any
    sources: list[tuple[str, str]]
    outputs: list[tuple[str, Any]]


def stored_value(raw: bytes, parse: Callable[[bytes], Any]) -> Any:
    """A serialized Feast ``Value`` as ``python_value`` gives it.  The commonest feature values are read straight
    from their wire bytes, about a fifth of the cost of parsing the message: a ``double_val`` (its tag, then eight
    little-endian bytes) and an ``int64_val`` below 16,384 (its tag, then a varint of one or two bytes).  A message
    of that length starting with that tag can hold nothing else; everything else is parsed."""
    size = len(raw)
    if size == 9 and raw[0] == DOUBLE_TAG:
        return _unpack_double(raw, 1)[0]
    if size == 2 and raw[0] == INT64_TAG and raw[1] < VARINT_MORE:
        return raw[1]
    if size == 3 and raw[0] == INT64_TAG and raw[1] >= VARINT_MORE > raw[2]:
        return (raw[1] - VARINT_MORE) | (raw[2] << 7)
    return python_value(parse(raw))


def python_value(value: Any) -> Any:
    """A Feast ``Value`` proto as Feast's ``feast_value_type_to_python_type`` gives it, plain scalars first."""
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    if kind in SCALAR_KINDS:
        return getattr(value, kind)
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(value)


def _direct_key_head(join_keys: list[str], key_types: list[Any], version: int) -> bytes | None:
    """The bytes Feast's ``serialize_entity_key`` writes before a lone key's value (key count, type, name), or
    ``None`` where the value cannot be encoded directly (several keys, a key type other than int64 or string,
    another serialization version)."""
    from feast.value_type import ValueType

    if version != DIRECT_KEY_VERSION or len(join_keys) != 1 or key_types[0] not in (ValueType.INT64, ValueType.STRING):
        return None
    name = join_keys[0].encode("utf8")
    return struct.pack("<III", 1, ValueType.STRING.value, len(name)) + name


@cache
def _key_value_types() -> tuple[Any, Any]:
    """Feast's ``ValueType.INT64`` and ``STRING``, imported once: ``_direct_key_value`` runs per key per request,
    where an import statement would cost more than the encoding."""
    from feast.value_type import ValueType

    return ValueType.INT64, ValueType.STRING


def _direct_key_value(kind: Any, value: Any) -> bytes | None:
    """A lone key's value as Feast serializes it (type, length, bytes), or ``None`` for a value of another Python
    type than the key's, which Feast's converter must judge."""
    int64, string = _key_value_types()
    if kind == int64 and (type(value) is int or isinstance(value, np.integer)):
        number = int(value)
        if INT64_RANGE[0] <= number < INT64_RANGE[1]:
            return struct.pack("<IIq", int64.value, 8, number)
    elif kind == string and type(value) is str:
        raw = value.encode("utf8")
        return struct.pack("<II", string.value, len(raw)) + raw
    return None


class OnlineFeatureReader:
    """``read(rows)`` gives ``{feature: [value per row]}`` for one feature service (``None`` where unknown)."""

    def __init__(self, store: FeatureStore, service: FeatureService, *, loop_timeout_s: float | None = None) -> None:
        """``loop_timeout_s``: when set, every read of a store this reader reads directly fails within it (sqlite's
        wait for a writer's lock; Redis through a client of the reader's own with that socket and connect
        timeout), so that a model server may read on its event loop (``loop_safe``)."""
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value
        from feast.type_map import python_values_to_proto_values
        from feast.utils import _get_cached_request_context
        from feast.value_type import ValueType

        # Feast's helpers bound once: an import statement per value would cost more than the value's decoding.
        self._entity_key = EntityKey
        self._parse_value = Value.FromString
        self._to_protos = python_values_to_proto_values
        self._double = ValueType.DOUBLE
        self._key_version = store.config.entity_key_serialization_version
        self._serialize_key = serialize_entity_key
        self._store = store
        self._provider = store._get_provider()
        self._sqlite = _sqlite_connection(store, self._provider, loop_timeout_s)
        self._redis = _redis_client(store, self._provider)
        pool = _single_server_pool(self._redis)
        self._hashes = None if pool is None else _hash_reads(pool, loop_timeout_s)
        # Awaited only with a time-out: without one the reads run in the scoring threads.
        self._loop_hashes = (
            None
            if pool is None or loop_timeout_s is None
            else loop_hash_reads(pool.connection_class, pool.connection_kwargs, loop_timeout_s)
        )
        self.loop_safe = loop_timeout_s is not None and (self._sqlite is not None or self._hashes is not None)
        """Whether every read fails within ``loop_timeout_s``: a local sqlite file, or a single Redis server read
        on connections of the reader's own (for a Redis cluster or sentinel set-up, Feast's own client keeps its
        time-outs, and the reads their thread)."""
        self.reads_async = self._loop_hashes is not None
        """Whether ``read_async`` may be awaited on the event loop: a single Redis server over a plain socket, every
        read bounded by ``loop_timeout_s`` (``redis_hashes.LoopHashReads``)."""
        self._project = store.project.encode("utf8")
        context = _get_cached_request_context(store.registry, store.project, service, False)
        odfvs, type_map, grouped, entityless = context[1], context[3], context[5], context[8]
        if entityless:
            raise UnsupportedServiceError(f"{service.name}: entity-less feature views")
        if getattr(service, "precompute_online", False):
            raise UnsupportedServiceError(f"{service.name}: precomputed online vectors")
        self._groups = self._plan_groups(grouped, type_map)
        self._transforms = [self._plan_transform(view, service) for view in odfvs]
        self.features = [
            feature.name for projection in service.feature_view_projections for feature in projection.features
        ]
        """Every feature of the service in definition order (the keys of ``read``)."""

    @property
    def direct_store(self) -> str | None:
        """The online store this reader reads itself (``sqlite`` or ``redis``); ``None`` where it calls the
        store's own ``online_read``."""
        if self._sqlite is not None:
            return "sqlite"
        return "redis" if self._redis is not None else None

    def _plan_groups(self, grouped: list[tuple[Any, Any]], type_map: dict[str, Any]) -> list[_Group]:
        groups: dict[tuple[str, ...], _Group] = {}
        for table, features in grouped:
            if getattr(table.projection, "version_tag", None) is not None:
                raise UnsupportedServiceError(f"{table.name}: versioned reads")
            join_map = table.projection.join_key_map or {}
            keys = [join_map.get(column.name, column.name) for column in table.entity_columns]
            group = groups.get(tuple(keys))
            if group is None:
                key_types = [type_map[key] for key in keys]
                head = _direct_key_head(keys, key_types, self._key_version)
                group = groups[tuple(keys)] = _Group(keys, key_types, [], head)
            group.views.append(self._plan_view(table, list(features)))
        return list(groups.values())

    def _plan_view(self, table: Any, features: list[str]) -> _ViewRead:
        return _ViewRead(table, features, self._sqlite_table(table), self._redis_fields(table, features))

    def _sqlite_table(self, table: Any) -> str | None:
        if self._sqlite is None:
            return None
        from feast.infra.online_stores.sqlite import _quote_id, _table_id

        versioned = self._store.config.registry.enable_online_feature_view_versioning
        return str(_quote_id(_table_id(self._store.project, table, versioned)))

    def _redis_fields(self, table: Any, features: list[str]) -> tuple[bytes, ...]:
        if self._redis is None:
            return ()
        from feast.infra.online_stores.helpers import _mmh3
        from feast.infra.online_stores.redis import _versioned_fv_name

        name = _versioned_fv_name(table, self._store.config)
        return tuple(_mmh3(f"{name}:{feature}") for feature in features)

    @staticmethod
    def _plan_transform(view: Any, service: FeatureService) -> _Transform:
        if view.mode != "python" or view.aggregations or view.write_to_online_store:
            raise UnsupportedServiceError(f"{view.name}: only python-mode, non-aggregating, computed on read")
        projection = next(p for p in service.feature_view_projections if p.name == view.name)
        schema = {field.name: field.dtype.to_value_type() for field in view.schema}
        outputs = [(feature.name, schema[feature.name]) for feature in projection.features]
        sources = [
            (feature.name, f"{source.name}__{feature.name}")
            for source in view.source_feature_view_projections.values()
            for feature in source.features
        ]
        transformation = view.feature_transformation
        call = transformation.transform_singleton if view.singleton else transformation.transform
        return _Transform(call, sources, outputs)

    def read(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """Features for entity rows (join keys and request values, as ``get_online_features`` takes them)."""
        columns: dict[str, list[Any]] = {}
        keyed = [(group, self._keys(group, rows)) for group in self._groups]
        if self._redis is not None:
            columns.update(self._redis_read(keyed))
        else:
            for group, keys in keyed:
                for view in group.views:
                    columns.update(self._read_view(view, group, keys))
        return self._transformed(rows, columns)

    async def read_async(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """``read``, awaiting the store's replies on the running event loop (only where ``reads_async``)."""
        if self._loop_hashes is None:
            raise RuntimeError("this reader cannot read on the event loop (reads_async is False)")
        keyed = [(group, self._keys(group, rows)) for group in self._groups]
        replies = await self._loop_hashes.replies(self._redis_commands(keyed))
        return self._transformed(rows, self._redis_columns(keyed, replies))

    def _transformed(self, rows: list[dict[str, Any]], columns: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """``columns`` with the on-demand views' outputs added."""
        for transform in self._transforms:
            columns.update(self._apply(transform, rows, columns))
        return columns

    def _keys(self, group: _Group, rows: list[dict[str, Any]]) -> _Keys:
        if len(group.join_keys) == 1:  # the common case, without a generator per row (32 rows: 13 -> 2 us)
            (name,) = group.join_keys
            per_row = [(row[name],) for row in rows]
        else:
            per_row = [tuple(row[key] for key in group.join_keys) for row in rows]
        unique = list(dict.fromkeys(per_row))
        return _Keys(per_row, unique, self._encode(group, unique))

    def _encode(self, group: _Group, unique: list[tuple[Any, ...]]) -> list[bytes]:
        """Feast's serialized entity keys: directly where the group allows it and every value has its key's
        type, else through Feast's converter and serializer."""
        if group.key_head is not None:
            kind = group.key_types[0]
            values = [_direct_key_value(kind, key[0]) for key in unique]
            if all(value is not None for value in values):
                return [group.key_head + value for value in values if value is not None]
        version = self._key_version
        return [
            self._serialize_key(key, entity_key_serialization_version=version) for key in self._protos(group, unique)
        ]

    def _protos(self, group: _Group, unique: list[tuple[Any, ...]]) -> list[Any]:
        key_values = [self._to_protos([k[i] for k in unique], t) for i, t in enumerate(group.key_types)]
        return [
            self._entity_key(join_keys=group.join_keys, entity_values=[values[index] for values in key_values])
            for index in range(len(unique))
        ]

    def _read_view(self, view: _ViewRead, group: _Group, keys: _Keys) -> dict[str, list[Any]]:
        by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
        unique = keys.unique
        if view.sqlite_table is not None:
            parse = self._parse_value
            found = self._sqlite_read(view.sqlite_table, keys.serialized)
            for key, blob in zip(unique, keys.serialized, strict=True):
                values = found.get(blob)
                if values is not None:
                    by_key[key] = {
                        name: None if (raw := values.get(name)) is None else stored_value(raw, parse)
                        for name in view.features
                    }
        else:
            read = self._provider.online_read(
                config=self._store.config,
                table=view.table,
                entity_keys=self._protos(group, unique),
                requested_features=list(view.features),  # stores may append internal fields to it
            )
            for key, (_, protos) in zip(unique, read, strict=True):
                if protos is not None:
                    by_key[key] = {
                        name: python_value(protos[name]) if name in protos else None for name in view.features
                    }
        return {name: [by_key.get(key, {}).get(name) for key in keys.per_row] for name in view.features}

    def _sqlite_read(self, table: str, blobs: list[bytes]) -> dict[bytes, dict[str, bytes]]:
        """``{serialized entity key: {feature name: serialized Value}}`` for the keys the table holds."""
        assert self._sqlite is not None
        marks = ",".join("?" * len(blobs))
        found: dict[bytes, dict[str, bytes]] = {}
        query = f"SELECT entity_key, feature_name, value FROM {table} WHERE entity_key IN ({marks})"
        for entity_key, name, value in self._sqlite.execute(query, blobs):
            found.setdefault(entity_key, {})[name] = value
        return found

    def _redis_read(self, keyed: list[tuple[_Group, _Keys]]) -> dict[str, list[Any]]:
        """Every group's features in one round trip: an ``HMGET`` of all its views' fields per distinct entity.

        A missing hash or field is ``None``, as Feast gives it (an empty ``Value``)."""
        assert self._redis is not None
        if self._hashes is not None:
            replies = self._hashes.replies(self._redis_commands(keyed))
        else:
            project = self._project
            with self._redis.pipeline(transaction=False) as pipe:
                for group, keys in keyed:
                    for blob in keys.serialized:
                        pipe.hmget(blob + project, group.redis_fields)
                replies = pipe.execute()
        return self._redis_columns(keyed, replies)

    def _redis_commands(self, keyed: list[tuple[_Group, _Keys]]) -> list[bytes]:
        """The prepared ``HMGET`` of each group's fields for each of its distinct entities."""
        project = self._project
        return [group.redis_command.command(blob + project) for group, keys in keyed for blob in keys.serialized]

    def _redis_columns(self, keyed: list[tuple[_Group, _Keys]], replies: list[Any]) -> dict[str, list[Any]]:
        """``{feature: [value per row]}`` from the ``HMGET`` replies, in ``_redis_commands`` order."""
        parse = self._parse_value
        columns: dict[str, list[Any]] = {}
        start = 0
        for group, keys in keyed:
            decoded = {
                key: [None if raw is None else stored_value(raw, parse) for raw in reply]
                for key, reply in zip(keys.unique, replies[start : start + len(keys.unique)], strict=True)
            }
            start += len(keys.unique)
            offset = 0
            for view in group.views:
                for index, name in enumerate(view.features, start=offset):
                    columns[name] = [decoded[key][index] for key in keys.per_row]
                offset += len(view.features)
        return columns

    def _apply(
        self, transform: _Transform, rows: list[dict[str, Any]], columns: dict[str, list[Any]]
    ) -> dict[str, list[Any]]:
        """The on-demand view's UDF on the columns Feast would give it, outputs cast through their declared type."""
        inputs: dict[str, list[Any]] = {}
        for row in rows:
            for key, value in row.items():
                inputs.setdefault(key, []).append(value)
        inputs.update({short: columns[short] for short, _ in transform.sources if short in columns})
        for short, full in transform.sources:  # a UDF may use either name, as under Feast's ``transform_dict``
            if full in inputs:
                inputs[short] = inputs[full]
            elif short in inputs:
                inputs[full] = inputs[short]
        produced = transform.call(inputs)
        return {name: self._cast(produced[name], kind) for name, kind in transform.outputs}

    def _cast(self, values: list[Any], kind: Any) -> list[Any]:
        """Values through the declared type as Feast does (to protos and back); floats to DOUBLE directly, since
        that round trip only turns NaN into ``None``."""
        if kind == self._double and all(type(value) is float or value is None for value in values):
            return [None if value is None or math.isnan(value) else value for value in values]
        return [python_value(value) for value in self._to_protos(values, kind)]


def _sqlite_connection(store: FeatureStore, provider: Any, lock_timeout_s: float | None) -> sqlite3.Connection | None:
    """A connection of the reader's own to the sqlite online store (``None`` for other stores).

    Without declared-type parsing (Feast's connection turns every ``event_ts`` into a datetime), and shared by
    the server's threads like Feast's own (``check_same_thread=False``; each statement runs under sqlite's lock).
    Pages are read through a memory map and kept in a cache large enough for a demo-sized store: sqlite's
    default 2 MB cache and one ``pread`` per page cost a third of a one-entity lookup over 2,000 customers
    (178 -> 123 us).  Both stay correct while materialization writes: sqlite drops cached pages whenever
    another connection has changed the file.
    """
    from feast.infra.online_stores.sqlite import SqliteOnlineStore

    if type(provider.online_store) is not SqliteOnlineStore:
        return None
    path = SqliteOnlineStore._get_db_path(store.config)
    connection = sqlite3.connect(
        path, timeout=SQLITE_LOCK_WAIT_S if lock_timeout_s is None else lock_timeout_s, check_same_thread=False
    )
    connection.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    connection.execute(f"PRAGMA mmap_size = {SQLITE_MMAP_BYTES}")
    return connection


def _single_server_pool(client: Any) -> Any:
    """The connection pool of the single Redis server ``client`` talks to; ``None`` for no client, and for a
    cluster or sentinel client (their reads keep the client's pipeline)."""
    import redis

    if client is None or type(client) is not redis.Redis or type(client.connection_pool) is not redis.ConnectionPool:
        return None
    return client.connection_pool


def _hash_reads(pool: Any, timeout_s: float | None) -> HashReads:
    """Reads of the server a single-server ``pool`` names on connections of the reader's own, with its connection
    options (TLS, password, database).  With ``timeout_s``, socket and connect time-outs of at most that and no
    retries (redis-py retries a timed-out call three times, with back-offs of up to seconds: on the event loop,
    that blocked the probes for 5 s)."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options = dict(pool.connection_kwargs)
    if timeout_s is not None:
        for option in ("socket_timeout", "socket_connect_timeout"):
            options[option] = min(options.get(option) or timeout_s, timeout_s)
        options["retry"] = Retry(NoBackoff(), 0)  # a failed read is the store's fail-fast window's to handle
    return HashReads(pool.connection_class, options)


def _redis_client(store: FeatureStore, provider: Any) -> Any:
    """The Redis store's own redis-py client (``None`` for other stores, and for Feast's ``glide`` client).

    The store's client is built from Feast's connection string, with the time-outs, TLS, cluster or sentinel
    set-up it names, and is safe to share between the server's threads (a connection pool)."""
    from feast.infra.online_stores.redis import RedisClient, RedisOnlineStore

    online = provider.online_store
    config = store.config.online_store
    if type(online) is not RedisOnlineStore or config.client != RedisClient.redis:
        return None
    return online._get_client(config)
