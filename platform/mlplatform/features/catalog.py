"""What the feature store holds, for people: every view with its source's size and freshness, and one entity's
online values by view or service name (``mlplatform features list`` and ``features get``).

Why separate from the adapter: these are read-only views for inspection, with input checks written for a person
typing names and ``key=value`` pairs; the adapter stays the path training and serving use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mlplatform.features.sources import SourceStats, file_source_path, source_stats

if TYPE_CHECKING:
    from pathlib import Path

    from mlplatform.features.store import FeatureStoreAdapter

_PARSERS: dict[str, Any] = {
    "Int64": int,
    "Int32": int,
    "Float64": float,
    "Float32": float,
    "String": str,
    "Bool": lambda raw: {"true": True, "false": False}[raw.lower()],
}


class FeatureLookupError(ValueError):
    """A lookup that cannot be answered: unknown name, malformed or missing keys, unknown entity."""


@dataclass(frozen=True)
class ViewSummary:
    """One feature view as ``features list`` shows it."""

    name: str
    kind: str
    """``batch`` (a source file, materialised) or ``on demand`` (computed at request time)."""
    entities: tuple[str, ...]
    features: int
    source: str
    source_rows: int | None
    """Rows in the source file; None when it is not a local file (or the view is on demand)."""
    latest_event: datetime | None
    materialized_until: datetime | None
    online: bool


def view_summaries(adapter: FeatureStoreAdapter) -> list[ViewSummary]:
    """Every registered view, batch ones first, by name."""
    adapter.require_applied()
    store = adapter.store
    summaries = []
    for view in sorted(store.list_feature_views(allow_cache=False), key=lambda item: item.name):
        path = file_source_path(view)
        batch: Any = view.batch_source
        stats = _stats(path, batch.timestamp_field) if path else None
        summaries.append(
            ViewSummary(
                name=view.name,
                kind="batch",
                entities=tuple(view.entities),
                features=len(view.features),
                source=str(path) if path else batch.name,
                source_rows=stats.rows if stats else None,
                latest_event=stats.last if stats else None,
                materialized_until=view.most_recent_end_time,
                online=view.online,
            )
        )
    for odfv in sorted(store.list_on_demand_feature_views(allow_cache=False), key=lambda item: item.name):
        inputs = [*odfv.source_feature_view_projections, *odfv.source_request_sources]
        summaries.append(
            ViewSummary(
                name=odfv.name,
                kind="on demand",
                entities=(),
                features=len(odfv.features),
                source="from " + ", ".join(inputs),
                source_rows=None,
                latest_event=None,
                materialized_until=None,
                online=True,
            )
        )
    return summaries


def _stats(path: Path, column: str) -> SourceStats | None:
    """The source's size and last event, or None when the file cannot be read as a view's source."""
    try:
        return source_stats(path, column)
    except ValueError:
        return None


def service_views(adapter: FeatureStoreAdapter) -> dict[str, list[str]]:
    """Every registered feature service and the views it serves, by name."""
    adapter.require_applied()
    services = adapter.store.list_feature_services()
    return {
        service.name: [projection.name for projection in service.feature_view_projections]
        for service in sorted(services, key=lambda item: item.name)
    }


def parse_entity(pairs: list[str]) -> dict[str, str]:
    """``key=value`` pairs as given on the command line (values stay text until the key's type is known)."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip() or not value.strip():
            raise FeatureLookupError(f"--entity {pair!r} is not key=value (e.g. --entity patient_id=42)")
        if key.strip() in parsed:
            raise FeatureLookupError(f"--entity {key.strip()!r} is given twice")
        parsed[key.strip()] = value.strip()
    return parsed


def online_values(adapter: FeatureStoreAdapter, name: str, pairs: dict[str, str]) -> dict[str, Any]:
    """The online values of a view or service for one entity: the join keys (and request values an on-demand
    view needs) come typed from ``pairs``; the answer maps each feature to its value."""
    from feast.errors import FeatureServiceNotFoundException, FeatureViewNotFoundException

    adapter.require_applied()
    store = adapter.store
    features: Any
    try:
        features = store.get_feature_service(name)
        batch, on_demand = _service_views(adapter, features)
    except FeatureServiceNotFoundException:
        batch, on_demand = [], []
        try:
            batch = [store.get_feature_view(name)]
        except FeatureViewNotFoundException:
            try:
                on_demand = [store.get_on_demand_feature_view(name)]
            except FeatureViewNotFoundException:
                raise FeatureLookupError(_unknown(adapter, name)) from None
        features = [f"{view.name}:{feature.name}" for view in [*batch, *on_demand] for feature in view.features]
    sources = [store.get_feature_view(source) for odfv in on_demand for source in odfv.source_feature_view_projections]
    wanted = _inputs([*batch, *sources], on_demand)
    row = _typed_row(name, pairs, wanted)
    answer = store.get_online_features(features=features, entity_rows=[row]).to_dict()
    values = {column: answer[column][0] for column in answer if column not in wanted}
    checked = [feature.name for view in batch for feature in view.features]
    if checked and all(values.get(column) is None for column in checked):
        keys = ", ".join(f"{key}={value}" for key, value in row.items())
        raise FeatureLookupError(
            f"no online values for {keys} in {name!r}: the entity is unknown, or its data is not materialized "
            "(run `mlplatform features materialize`)"
        )
    return values


def _service_views(adapter: FeatureStoreAdapter, service: Any) -> tuple[list[Any], list[Any]]:
    from feast.errors import FeatureViewNotFoundException

    batch, on_demand = [], []
    for projection in service.feature_view_projections:
        try:
            batch.append(adapter.store.get_feature_view(projection.name))
        except FeatureViewNotFoundException:
            on_demand.append(adapter.store.get_on_demand_feature_view(projection.name))
    return batch, on_demand


def _inputs(batch: list[Any], on_demand: list[Any]) -> dict[str, str]:
    """Join keys and request values the views need, with their Feast type names."""
    wanted: dict[str, str] = {}
    for view in batch:
        for column in view.entity_columns:
            wanted[column.name] = str(column.dtype)
    for odfv in on_demand:
        for request in odfv.source_request_sources.values():
            for field in request.schema:
                wanted[field.name] = str(field.dtype)
    return wanted


def _typed_row(name: str, pairs: dict[str, str], wanted: dict[str, str]) -> dict[str, Any]:
    """``pairs`` converted to the types the views declare; unknown or missing keys are named with the fix."""
    needs = ", ".join(f"{key} ({kind.lower()})" for key, kind in wanted.items())
    unknown = [key for key in pairs if key not in wanted]
    missing = [key for key in wanted if key not in pairs]
    if unknown or missing:
        problem = f"unknown key(s) {unknown}" if unknown else f"missing key(s) {missing}"
        raise FeatureLookupError(f"{problem} for {name!r}: it needs --entity for {needs}")
    row: dict[str, Any] = {}
    for key, raw in pairs.items():
        parse = _PARSERS.get(wanted[key], str)
        try:
            row[key] = parse(raw)
        except (ValueError, KeyError):
            raise FeatureLookupError(f"--entity {key}={raw}: not a {wanted[key].lower()} value") from None
    return row


def _unknown(adapter: FeatureStoreAdapter, name: str) -> str:
    store = adapter.store
    views = sorted(
        [view.name for view in store.list_feature_views(allow_cache=False)]
        + [view.name for view in store.list_on_demand_feature_views(allow_cache=False)]
    )
    services = sorted(service.name for service in store.list_feature_services())
    return (
        f"unknown feature view or service {name!r}; views: {', '.join(views) or 'none'}; "
        f"services: {', '.join(services) or 'none'}"
    )
