"""Online lookups of one feature service with the plan made once, for model servers.

Why not ``FeatureStore.get_online_features`` per request: for a one-entity request most of its ~0.4 ms goes into
work around the read, not the read itself: converting every request value to protobuf, building a protobuf
response, converting it back with ``to_dict``, and runtime type checks.  A model server asks the same question
thousands of times a second, so ``OnlineFeatureReader`` resolves the service once (Feast's own resolution: which
views, which features, join keys, request data, on-demand views) and per request does only what must happen: the
entity keys, one ``online_read`` per feature view (the store's own read, sqlite or Redis), the conversion of the
values read, and the on-demand transformations called exactly as Feast calls them.

The answers equal Feast's (``tests/integration/test_features.py`` compares them on sqlite and Redis), and a
service using something this reader does not cover (non-python on-demand modes, aggregations, precomputed
vectors, versioned reads, entity-less views, full feature names) raises ``UnsupportedServiceError`` at planning,
so the caller keeps Feast's path for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore


class UnsupportedServiceError(ValueError):
    """The service uses a Feast feature this reader does not implement; use ``get_online_features`` instead."""


@dataclass(frozen=True)
class _ViewRead:
    """One batch feature view: what to read and under which request keys."""

    table: Any
    features: list[str]
    join_keys: list[str]
    key_types: list[Any]


@dataclass(frozen=True)
class _Transform:
    """One python-mode on-demand view: its inputs (declared sources) and its typed outputs."""

    view: Any
    inputs: list[str]
    outputs: list[tuple[str, Any]]


class OnlineFeatureReader:
    """``read(rows)`` gives ``{feature: [value per row]}`` for one feature service (``None`` where unknown)."""

    def __init__(self, store: FeatureStore, service: FeatureService) -> None:
        from feast.utils import _get_cached_request_context

        self._store = store
        self._provider = store._get_provider()
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

    @staticmethod
    def _plan_view(table: Any, features: list[str], type_map: dict[str, Any]) -> _ViewRead:
        if getattr(table.projection, "version_tag", None) is not None:
            raise UnsupportedServiceError(f"{table.name}: versioned reads")
        join_map = table.projection.join_key_map or {}
        columns = [column.name for column in table.entity_columns]
        keys = [join_map.get(column, column) for column in columns]
        return _ViewRead(table, features, keys, [type_map[key] for key in keys])

    @staticmethod
    def _plan_transform(view: Any, service: FeatureService) -> _Transform:
        if view.mode != "python" or view.aggregations or view.write_to_online_store:
            raise UnsupportedServiceError(f"{view.name}: only python-mode, non-aggregating, computed on read")
        projection = next(p for p in service.feature_view_projections if p.name == view.name)
        schema = {field.name: field.dtype.to_value_type() for field in view.schema}
        outputs = [(feature.name, schema[feature.name]) for feature in projection.features]
        sources = [
            feature.name for source in view.source_feature_view_projections.values() for feature in source.features
        ]
        return _Transform(view, sources, outputs)

    def read(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """Features for entity rows (join keys and request values, as ``get_online_features`` takes them)."""
        columns: dict[str, list[Any]] = {}
        for view in self._views:
            columns.update(self._read_view(view, rows))
        for transform in self._transforms:
            columns.update(self._apply(transform, rows, columns))
        return columns

    def _read_view(self, view: _ViewRead, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values

        keys = [tuple(row[key] for key in view.join_keys) for row in rows]
        unique = list(dict.fromkeys(keys))
        key_values = [python_values_to_proto_values([k[i] for k in unique], t) for i, t in enumerate(view.key_types)]
        entity_keys = [
            EntityKey(join_keys=view.join_keys, entity_values=[values[index] for values in key_values])
            for index in range(len(unique))
        ]
        found = self._provider.online_read(
            config=self._store.config,
            table=view.table,
            entity_keys=entity_keys,
            requested_features=list(view.features),  # stores may append internal fields to it
        )
        by_key: dict[tuple[Any, ...], dict[str, Any]] = {}
        for key, (_, values) in zip(unique, found, strict=True):
            if values is not None:
                by_key[key] = {
                    name: feast_value_type_to_python_type(values[name]) if name in values else None
                    for name in view.features
                }
        return {name: [by_key.get(key, {}).get(name) for key in keys] for name in view.features}

    @staticmethod
    def _apply(transform: _Transform, rows: list[dict[str, Any]], columns: dict[str, list[Any]]) -> dict[str, Any]:
        """The on-demand view's UDF on the columns Feast would give it, outputs cast through their declared type."""
        from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values

        inputs: dict[str, list[Any]] = {}
        for row in rows:
            for key, value in row.items():
                inputs.setdefault(key, []).append(value)
        inputs.update({name: columns[name] for name in transform.inputs if name in columns})
        produced = transform.view.transform_dict(inputs)
        return {
            name: [
                feast_value_type_to_python_type(value) for value in python_values_to_proto_values(produced[name], kind)
            ]
            for name, kind in transform.outputs
        }
