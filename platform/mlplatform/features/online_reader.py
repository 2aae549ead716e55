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
  every other kind still goes through Feast's converter.
* **On-demand views are called through their transformation**, not the typeguard-checked ``transform_dict``
  (see ``_Transform``).  Other stores (Redis) are read through the store's own ``online_read``.

The answers equal Feast's (``tests/integration/test_features.py`` compares them on sqlite and Redis), and a
service using something this reader does not cover (non-python on-demand modes, aggregations, precomputed
vectors, versioned reads, entity-less views, full feature names) raises ``UnsupportedServiceError`` at planning,
so the caller keeps Feast's path for it.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

SCALAR_KINDS = frozenset(("int32_val", "int64_val", "double_val", "float_val", "bool_val", "string_val", "bytes_val"))
"""Value kinds Feast's converter returns as they are (no JSON, collection, timestamp, UUID or decimal handling)."""

SQLITE_CACHE_KIB = 64 * 1024
SQLITE_MMAP_BYTES = 256 * 1024 * 1024
"""Upper bounds (cache memory, mapped address space) for the reader's sqlite connection; a store uses only its size."""


class UnsupportedServiceError(ValueError):
    """The service uses a Feast feature this reader does not implement; use ``get_online_features`` instead."""


@dataclass(frozen=True)
class _ViewRead:
    """One batch feature view: what to read and under which request keys."""

    table: Any
    features: list[str]
    join_keys: list[str]
    key_types: list[Any]
    sqlite_table: str | None = None
    """The quoted table name when the view is read straight from the sqlite store."""


@dataclass(frozen=True)
class _Keys:
    """The entity keys of one request for views joined on the same keys: per row, distinct, and encoded."""

    per_row: list[tuple[Any, ...]]
    unique: list[tuple[Any, ...]]
    protos: list[Any]
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


def python_value(value: Any) -> Any:
    """A Feast ``Value`` proto as Feast's ``feast_value_type_to_python_type`` gives it, plain scalars first."""
    kind = value.WhichOneof("val")
    if kind is None:
        return None
    if kind in SCALAR_KINDS:
        return getattr(value, kind)
    from feast.type_map import feast_value_type_to_python_type

    return feast_value_type_to_python_type(value)


class OnlineFeatureReader:
    """``read(rows)`` gives ``{feature: [value per row]}`` for one feature service (``None`` where unknown)."""

    def __init__(self, store: FeatureStore, service: FeatureService) -> None:
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
        self._sqlite = _sqlite_connection(store, self._provider)
        context = _get_cached_request_context(store.registry, store.project, service, False)
        odfvs, type_map, grouped, entityless = context[1], context[3], context[5], context[8]
        if entityless:
            raise UnsupportedServiceError(f"{service.name}: entity-less feature views")
        if getattr(service, "precompute_online", False):
            raise UnsupportedServiceError(f"{service.name}: precomputed online vectors")
        self._views = [self._plan_view(table, list(features), type_map) for table, features in grouped]
        self._transforms = [self._plan_transform(view, service) for view in odfvs]
        self.features = [
            feature.name for projection in service.feature_view_projections for feature in projection.features
        ]
        """Every feature of the service in definition order (the keys of ``read``)."""

    def _plan_view(self, table: Any, features: list[str], type_map: dict[str, Any]) -> _ViewRead:
        if getattr(table.projection, "version_tag", None) is not None:
            raise UnsupportedServiceError(f"{table.name}: versioned reads")
        join_map = table.projection.join_key_map or {}
        columns = [column.name for column in table.entity_columns]
        keys = [join_map.get(column, column) for column in columns]
        return _ViewRead(table, features, keys, [type_map[key] for key in keys], self._sqlite_table(table))

    def _sqlite_table(self, table: Any) -> str | None:
        if self._sqlite is None:
            return None
        from feast.infra.online_stores.sqlite import _quote_id, _table_id

        versioned = self._store.config.registry.enable_online_feature_view_versioning
        return str(_quote_id(_table_id(self._store.project, table, versioned)))

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
        keyed: dict[tuple[str, ...], _Keys] = {}  # views joined on the same keys share their encoded keys
        for view in self._views:
            keys = keyed.get(tuple(view.join_keys))
            if keys is None:
                keys = keyed[tuple(view.join_keys)] = self._keys(view, rows)
            columns.update(self._read_view(view, keys))
        for transform in self._transforms:
            columns.update(self._apply(transform, rows, columns))
        return columns

    def _keys(self, view: _ViewRead, rows: list[dict[str, Any]]) -> _Keys:
        per_row = [tuple(row[key] for key in view.join_keys) for row in rows]
        unique = list(dict.fromkeys(per_row))
        key_values = [self._to_protos([k[i] for k in unique], t) for i, t in enumerate(view.key_types)]
        protos = [
            self._entity_key(join_keys=view.join_keys, entity_values=[values[index] for values in key_values])
            for index in range(len(unique))
        ]
        version = self._key_version
        blobs = [self._serialize_key(key, entity_key_serialization_version=version) for key in protos]
        return _Keys(per_row, unique, protos, blobs)

    def _read_view(self, view: _ViewRead, keys: _Keys) -> dict[str, list[Any]]:
        by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
        unique = keys.unique
        if view.sqlite_table is not None:
            parse = self._parse_value
            found = self._sqlite_read(view.sqlite_table, keys.serialized)
            for key, blob in zip(unique, keys.serialized, strict=True):
                values = found.get(blob)
                if values is not None:
                    by_key[key] = {
                        name: None if (raw := values.get(name)) is None else python_value(parse(raw))
                        for name in view.features
                    }
        else:
            read = self._provider.online_read(
                config=self._store.config,
                table=view.table,
                entity_keys=keys.protos,
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


def _sqlite_connection(store: FeatureStore, provider: Any) -> sqlite3.Connection | None:
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
    connection = sqlite3.connect(SqliteOnlineStore._get_db_path(store.config), check_same_thread=False)
    connection.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    connection.execute(f"PRAGMA mmap_size = {SQLITE_MMAP_BYTES}")
    return connection
