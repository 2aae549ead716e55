"""Realistic requests for any model: its latest labelled events, as entity ids the feature store knows.

``mlplatform traffic``, the loop's traffic bursts and its wait for a swapped server send these.  Each request is
one of the latest events of the model's label table (the events it is trained on): the event's entity id and its
request-time values (``spec.label.request_columns``), kept only where the entity is in the model's feature views'
parquet sources, named by the Feast registry, so the online store knows it after materialization.  Nothing here
knows a particular model: the spec says which key and which columns.
"""

from __future__ import annotations

from itertools import cycle, islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlplatform.config import Settings
    from mlplatform.features.store import FeatureStoreAdapter
    from mlplatform.specs import ModelSpec


class NoRequestsError(ValueError):
    """Requests cannot be made for a model: the message names the missing table or column and the fix."""


def sample_requests(settings: Settings, spec: ModelSpec, count: int) -> list[dict[str, Any]]:
    """``count`` single-entity requests (repeated when there are fewer): the label table's latest events whose
    entities the feature views hold, each with its own request-time values; without a label table, a model that
    takes no request values gets the entities its feature views updated last.

    Why events rather than distinct entities: the training set has a row per event, so an active entity weighs
    more there; requests drawn one per recently updated entity, with request values from unrelated events, weigh
    them otherwise, and the drift check called such undrifted traffic drifted."""
    sources = feature_sources(settings, spec)
    labels_path = settings.model_data_dir(spec.name) / spec.label.source
    if labels_path.is_file():
        requests = latest_events(labels_path, spec, count, known_keys(sources, spec.entity_key))
    elif spec.label.request_columns:
        raise NoRequestsError(
            f"{spec.name} takes request-time values ({', '.join(spec.label.request_columns)}) and they are sampled "
            f"from its label table, but {labels_path} does not exist; write it (spec: label.source)"
        )
    else:
        requests = [{spec.entity_key: key} for key in recent_keys(sources, spec.entity_key, count)]
    if not requests:
        listed = ", ".join(str(path) for path, _ in sources) or "none readable"
        raise NoRequestsError(
            f"no {spec.entity_key} values for {spec.name} that its feature views' sources ({listed}) hold; write "
            f"the model's feature tables and run `mlplatform features apply`"
        )
    return list(islice(cycle(requests), count))


def latest_events(labels_path: Path, spec: ModelSpec, count: int, known: pd.Index | None) -> list[dict[str, Any]]:
    """Entity id and request columns of the label table's latest ``count`` rows, oldest first, among the rows
    whose entity is in ``known`` (None: no feature source could be read, so every row)."""
    columns = [spec.entity_key, *spec.label.request_columns]
    why = f"named by {spec.name}'s spec"
    latest = latest_label_rows(labels_path, spec, [*columns, spec.label.timestamp_column], count, why, known)
    return [{str(key): value for key, value in row.items()} for row in latest[columns].to_dict("records")]


def latest_label_rows(
    labels_path: Path, spec: ModelSpec, columns: list[str], count: int, why: str, known: pd.Index | None = None
) -> pd.DataFrame:
    """``columns`` of the label table's latest ``count`` rows in event-time order, oldest first, among the rows
    whose entity is in ``known`` (None: every row); a column the file lacks is a ``NoRequestsError`` saying ``why``
    it is wanted."""
    import pandas as pd
    import pyarrow.parquet as pq

    present = set(pq.read_schema(labels_path).names)
    missing = [column for column in columns if column not in present]
    if missing:
        raise NoRequestsError(f"{labels_path} lacks column(s) {missing} {why}")
    frame = pd.read_parquet(labels_path, columns=list(dict.fromkeys(columns)))
    if known is not None:
        frame = frame[frame[spec.entity_key].isin(known)]
    return frame.sort_values(spec.label.timestamp_column, kind="stable").tail(count)


def known_keys(sources: list[tuple[Path, str]], entity_key: str) -> pd.Index | None:
    """Every entity id in ``sources`` (the ids the online store can know), or None when none of them is readable.

    An index rather than a Python set: a store of a million entities is filtered in one vectorised ``isin``."""
    import pandas as pd
    import pyarrow.parquet as pq

    readable = [path for path, _ in sources if path.is_file() and entity_key in pq.read_schema(path).names]
    if not readable:
        return None
    ids: pd.Index = pd.Index(
        pd.concat([pd.read_parquet(path, columns=[entity_key])[entity_key] for path in readable]).unique()
    )
    return ids


def feature_sources(settings: Settings, spec: ModelSpec) -> list[tuple[Path, str]]:
    """(parquet file, timestamp column) of each batch view in the model's feature service that is a local file."""
    from mlplatform.features.store import FeatureStoreAdapter

    try:
        views = local_batch_views(FeatureStoreAdapter(settings), spec)
    except (ValueError, RuntimeError) as error:  # unknown service, or nothing applied yet: the message says which
        raise NoRequestsError(f"no entity ids for {spec.name}: {error}") from None
    return [(Path(view.batch_source.path), view.batch_source.timestamp_field) for view in views]


def local_batch_views(features: FeatureStoreAdapter, spec: ModelSpec) -> list[Any]:
    """The Feast batch views of the model's feature service whose source is a local parquet file (on-demand views
    have no source of their own; remote sources cannot be read here)."""
    from feast import FileSource
    from feast.errors import FeatureViewNotFoundException

    views = []
    for projection in features.feature_service(spec.features.service).feature_view_projections:
        try:
            view = features.store.get_feature_view(projection.name)
        except FeatureViewNotFoundException:
            continue
        source = view.batch_source
        if isinstance(source, FileSource) and "://" not in source.path:
            views.append(view)
    return views


def recent_keys(sources: list[tuple[Path, str]], entity_key: str, count: int) -> list[Any]:
    """Up to ``count`` distinct entity ids, those with the latest rows across ``sources``, oldest first."""
    import pandas as pd
    import pyarrow.parquet as pq

    frames = []
    for path, timestamp in sources:
        if path.is_file() and {entity_key, timestamp} <= set(pq.read_schema(path).names):
            frame = pd.read_parquet(path, columns=[entity_key, timestamp])
            frames.append(frame.rename(columns={timestamp: "__time"}))
    if not frames:
        return []
    rows = pd.concat(frames, ignore_index=True).sort_values("__time", kind="stable")
    latest = rows.drop_duplicates(entity_key, keep="last").tail(count)
    keys: list[Any] = latest[entity_key].tolist()  # Python scalars, JSON-ready
    return keys


def labelled_events(settings: Settings, spec: ModelSpec, count: int, known_at: str | None) -> pd.DataFrame:
    """The label table's latest ``count`` rows, oldest first: entity key, request columns, label and event time,
    and ``known_at`` (when each label became known) when given; a replay sends them as requests and returns their
    labels later."""
    labels_path = settings.model_data_dir(spec.name) / spec.label.source
    if not labels_path.is_file():
        raise NoRequestsError(f"{spec.name}'s label table {labels_path} does not exist (spec: label.source)")
    columns = [spec.entity_key, *spec.label.request_columns, spec.label.column, spec.label.timestamp_column]
    if known_at is not None:
        columns.append(known_at)
    latest = latest_label_rows(labels_path, spec, columns, count, "that replaying its labels needs")
    return latest.reset_index(drop=True)
