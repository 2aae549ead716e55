"""Point-in-time joins straight in DuckDB: one ``ASOF`` join per feature view, for training sets.

Why not Feast's DuckDB offline store: it plans the join through ibis as a range join (every source row of the
entity within the view's TTL, for every entity row), then ranks the matches to keep the latest, and converts
through pandas between steps.  For a million entity rows that took 51 s and 2.3 GB (docs/performance.md).  The
question has a direct answer in DuckDB: ``ASOF LEFT JOIN`` finds, for each entity row, the latest source row at or
before its timestamp in one sorted merge, and the TTL then only decides whether that row is recent enough.

Same answers as Feast's (``tests/integration/test_features.py`` compares both on the demo's data):
* per view, the source row with the latest event time ``<=`` the entity row's, and ``>=`` that time minus the
  view's TTL (none when the TTL is zero); among rows with the same key and event time, the latest ``created``;
* a row with no such source row keeps nulls; integer features with nulls come back as floats (pandas);
* on-demand views are Feast's own ``transform_arrow`` over the joined table, as ``RetrievalJob.to_arrow`` calls it.

What it does not cover raises ``UnsupportedJoinError`` at planning, and the caller uses Feast's join: sources
that are not one local parquet file, and views with a field mapping, a version tag or no entity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from feast import FeatureService, FeatureStore

EVENT_TIMESTAMP = "event_timestamp"


class UnsupportedJoinError(ValueError):
    """The service needs something this join does not implement; use Feast's ``get_historical_features``."""


@dataclass(frozen=True)
class _ViewJoin:
    """One batch view's part of the join: its file, columns, keys (source column -> entity column) and TTL."""

    name: str
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
    from feast import FileSource
    from feast.errors import FeatureViewNotFoundException

    joins: list[_ViewJoin] = []
    on_demand: list[Any] = []
    for projection in service.feature_view_projections:
        try:
            view = store.get_feature_view(projection.name)
        except FeatureViewNotFoundException:
            on_demand.append(store.get_on_demand_feature_view(projection.name).with_projection(projection))
            continue
        source = view.batch_source
        if not isinstance(source, FileSource) or "://" in source.path or not Path(source.path).is_file():
            raise UnsupportedJoinError(f"{view.name}: its source is not one local parquet file")
        if source.field_mapping or getattr(projection, "version_tag", None) is not None or not view.entity_columns:
            raise UnsupportedJoinError(f"{view.name}: field mapping, version tag or no entity")
        join_map = projection.join_key_map or {}
        keys = {column.name: join_map.get(column.name, column.name) for column in view.entity_columns}
        ttl = view.ttl.total_seconds() if view.ttl else 0.0
        joins.append(
            _ViewJoin(
                name=view.name,
                path=Path(source.path),
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


def asof_join_sql(joins: list[_ViewJoin], entity_columns: list[str]) -> str:
    """One query: the entity rows, and each view's features ``ASOF LEFT JOIN``-ed on its keys and event time."""
    ctes = ", ".join(_view_query(index, join) for index, join in enumerate(joins))
    selected = [f"e.{_quote(column)}" for column in entity_columns]
    clauses = []
    for index, join in enumerate(joins):
        selected += _select_features(index, join)
        on = [f"e.{_quote(entity)} = v{index}.{_quote(source)}" for source, entity in join.keys.items()]
        on.append(f"e.{_quote(EVENT_TIMESTAMP)} >= v{index}.__mlp_ts")
        clauses.append(f"ASOF LEFT JOIN v{index} ON {' AND '.join(on)}")
    return f"WITH {ctes} SELECT {', '.join(selected)} FROM entities e {' '.join(clauses)}"


def point_in_time_features(
    store: FeatureStore, service: FeatureService, entities: pd.DataFrame, names: list[str]
) -> pd.DataFrame:
    """The entity frame's columns and the service's features ``names``, point-in-time correct, in any row order.

    ``entities`` must hold every join key and a timezone-aware ``event_timestamp``.  Raises
    ``UnsupportedJoinError`` before reading anything when the service needs Feast's own join."""
    import duckdb
    import pyarrow as pa

    joins, on_demand = plan_views(store, service)
    connection = duckdb.connect()
    try:
        connection.execute("SET TimeZone = 'UTC'")
        connection.register("entities", entities)
        table = connection.execute(asof_join_sql(joins, list(entities.columns))).to_arrow_table()
    finally:
        connection.close()
    for view in on_demand:
        produced = view.transform_arrow(table, False)
        wanted = [feature.name for feature in view.projection.features]
        for name in wanted:
            column = produced.column(name)
            table = table.append_column(pa.field(name, column.type), column)
    frame: pd.DataFrame = table.select([*entities.columns, *names]).to_pandas()
    return frame
