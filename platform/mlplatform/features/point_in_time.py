"""Point-in-time joins straight in DuckDB: one ``ASOF`` join per feature view, for training sets.

Why not Feast's DuckDB offline store: it plans the join through ibis as a range join (every source row of the
entity within the view's TTL, for every entity row), then ranks the matches to keep the latest, and converts
through pandas between steps: 24 s for a million entity rows against five million feature rows, against 3 s here
(docs/performance.md).  The
question has a direct answer in DuckDB: ``ASOF LEFT JOIN`` finds, for each entity row, the latest source row at or
before its timestamp in one sorted merge, and the TTL then only decides whether that row is recent enough.

Same answers as Feast's (``tests/integration/test_features.py`` compares both on the demo's data):
* per view, the source row with the latest event time ``<=`` the entity row's, and ``>=`` that time minus the
  view's TTL (none when the TTL is zero); among rows with the same key and event time, the latest ``created``;
* a row with no such source row keeps nulls; integer features with nulls come back as floats (pandas);
* on-demand views are Feast's own ``transform_arrow`` over the joined columns they declare (``_with_on_demand``).

What it does not cover raises ``UnsupportedJoinError`` at planning, and the caller uses Feast's join: sources
that are not one local parquet file, and views with a field mapping, a version tag or no entity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplatform.features.sources import file_source_path
from mlplatform.features.store import EVENT_TIMESTAMP

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureService, FeatureStore


class UnsupportedJoinError(ValueError):
    """The service needs something this join does not implement; use Feast's ``get_historical_features``."""


@dataclass(frozen=True)
class _ViewJoin:
    """One batch view's part of the join: its file, columns, keys (source column -> entity column) and TTL."""

    path: Path
    timestamp: str
    created: str | None
    keys: dict[str, str]
    features: list[str]
    ttl_us: int


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def plan_views(store: FeatureStore, service: FeatureService) -> tuple[list[_ViewJoin], list[Any]]:
    """The batch views' joins and the on-demand views (with their projections) of ``service``."""
    from feast.errors import FeatureViewNotFoundException

    joins: list[_ViewJoin] = []
    on_demand: list[Any] = []
    for projection in service.feature_view_projections:
        try:
            view = store.get_feature_view(projection.name)
        except FeatureViewNotFoundException:
            on_demand.append(store.get_on_demand_feature_view(projection.name).with_projection(projection))
            continue
        path = file_source_path(view)
        if path is None or not path.is_file():
            raise UnsupportedJoinError(f"{view.name}: its source is not one local parquet file")
        source: Any = view.batch_source  # a FileSource, as file_source_path found
        if source.field_mapping or getattr(projection, "version_tag", None) is not None or not view.entity_columns:
            raise UnsupportedJoinError(f"{view.name}: field mapping, version tag or no entity")
        join_map = projection.join_key_map or {}
        keys = {column.name: join_map.get(column.name, column.name) for column in view.entity_columns}
        ttl = view.ttl.total_seconds() if view.ttl else 0.0
        joins.append(
            _ViewJoin(
                path=path,
                timestamp=source.timestamp_field,
                created=source.created_timestamp_column or None,
                keys=keys,
                features=[feature.name for feature in projection.features],
                ttl_us=round(ttl * 1_000_000),
            )
        )
    return joins, on_demand


def _view_query(index: int, join: _ViewJoin) -> str:
    """The view's source as the join reads it: keys, event time and features, one row per (keys, event time)."""
    keys = ", ".join(_quote(column) for column in join.keys)
    columns = ", ".join(_quote(name) for name in [*join.keys, *join.features])
    latest_created = (
        f" QUALIFY row_number() OVER (PARTITION BY {keys}, {_quote(join.timestamp)} "
        f"ORDER BY {_quote(join.created)} DESC) = 1"
        if join.created
        else ""
    )
    path = str(join.path).replace("'", "''")
    return (
        f"v{index} AS (SELECT {columns}, {_quote(join.timestamp)} AS __mlp_ts "
        f"FROM read_parquet('{path}'){latest_created})"
    )


def _select_features(index: int, join: _ViewJoin) -> list[str]:
    if not join.ttl_us:
        return [f"v{index}.{_quote(name)} AS {_quote(name)}" for name in join.features]
    fresh = f"v{index}.__mlp_ts >= e.{_quote(EVENT_TIMESTAMP)} - to_microseconds({join.ttl_us})"
    return [f"CASE WHEN {fresh} THEN v{index}.{_quote(name)} END AS {_quote(name)}" for name in join.features]


def asof_join_sql(joins: list[_ViewJoin], entity_columns: list[str], order: str) -> str:
    """One query: the entity rows in ``order``, and each view's features ``ASOF LEFT JOIN``-ed on its keys and
    event time (an ``ASOF LEFT JOIN`` keeps every entity row exactly once)."""
    ctes = ", ".join(_view_query(index, join) for index, join in enumerate(joins))
    selected = [f"e.{_quote(column)}" for column in entity_columns]
    clauses = []
    for index, join in enumerate(joins):
        selected += _select_features(index, join)
        on = [f"e.{_quote(entity)} = v{index}.{_quote(source)}" for source, entity in join.keys.items()]
        on.append(f"e.{_quote(EVENT_TIMESTAMP)} >= v{index}.__mlp_ts")
        clauses.append(f"ASOF LEFT JOIN v{index} ON {' AND '.join(on)}")
    return f"WITH {ctes} SELECT {', '.join(selected)} FROM entities e {' '.join(clauses)} ORDER BY e.{_quote(order)}"


def point_in_time_features(
    store: FeatureStore, service: FeatureService, entities: pd.DataFrame, names: list[str], order: str
) -> pd.DataFrame:
    """The service's features ``names``, point-in-time correct, one row per entity row sorted by ``order``.

    ``entities`` must hold every join key, a timezone-aware ``event_timestamp`` and the ``order`` column (unique
    values).  Raises ``UnsupportedJoinError`` before reading anything when the service needs Feast's own join."""
    import duckdb

    joins, on_demand = plan_views(store, service)
    inputs = {key for join in joins for key in join.keys.values()} | set().union(*map(_declared_inputs, on_demand))
    carried = [order, *(column for column in entities.columns if column in inputs and column != order)]
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("entities", entities)
        table = connection.sql(asof_join_sql(joins, carried, order)).to_arrow_table()  # a relation: no extra copy
    finally:
        connection.close()
    assert table is not None
    for view in on_demand:
        table = _with_on_demand(view, table)
    frame: pd.DataFrame = table.select(names).to_pandas()
    return frame


def _declared_inputs(view: Any) -> set[str]:
    """The columns an on-demand view declares it reads: its sources' features, its request fields, its keys."""
    declared = {feature.name for source in view.source_feature_view_projections.values() for feature in source.features}
    declared |= {field.name for source in view.source_request_sources.values() for field in source.schema}
    return declared | {column.name for column in getattr(view, "entity_columns", None) or ()}


def _with_on_demand(view: Any, table: Any) -> Any:
    """``table`` with the on-demand view's requested features, by Feast's ``transform_arrow``.

    The query carries only the entity columns that the joins and the on-demand views declare, and the
    transformation is handed only its declared columns: Feast hands it the whole joined table, and turning every
    entity row's timestamps and labels into Python objects cost more than the transformation itself (8 of 13 s
    for a million rows).  A transformation that reads an undeclared column fails with a ``ValueError`` naming it
    (under Feast it would have found the column in a training set, and not found it online)."""
    import pyarrow as pa

    declared = _declared_inputs(view)
    try:
        produced = view.transform_arrow(table.select([n for n in table.column_names if n in declared]), False)
    except KeyError as error:
        raise ValueError(
            f"on-demand view {view.name!r} reads {error}, which it does not declare: add it to its request "
            f"source's schema (or read it from a declared feature view); it declares {sorted(declared)}"
        ) from None
    for feature in view.projection.features:
        column = produced.column(feature.name)
        table = table.append_column(pa.field(feature.name, column.type), column)
    return table
