"""The Feast adapter: apply definitions, materialise, build point-in-time training sets, look features up online.

Why an adapter: the rest of the platform (training, serving, the CLI) talks to features through these few methods
with plain types, so Feast's configuration, its import cost and its quirks stay in one place.  The ``RepoConfig``
is built from ``Settings`` here (no ``feature_store.yaml``), and the definitions are every model folder's
``features.yaml`` (and ``features.py``), compiled by ``mlplatform.features.declarative``.

Feast and pandas are imported inside methods so that importing this module (e.g. from the CLI) stays cheap.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlplatform.config import FeastSettings, Settings

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd
    from feast import FeatureService, FeatureStore, RepoConfig

    from mlplatform.features.online_reader import OnlineFeatureReader
    from mlplatform.features.sources import SourceStats

ROW_ID = "__mlp_row_id"
"""Column added to the entity frame so every entity row can be found again after Feast's join."""
EVENT_TIMESTAMP = "event_timestamp"
_FINGERPRINT_LENGTH = 12
_DEDUPLICATING_OFFLINE_STORES = frozenset({"file"})
"""Offline stores whose point-in-time join returns one row per (join keys, timestamp), not per entity row."""
_DEFAULT_FIRST_WINDOW = timedelta(days=365)
"""How far back the first incremental run of a view without a TTL reaches."""


@dataclass(frozen=True)
class ViewLoad:
    """One view's part of a materialisation run: the window read and the source rows inside it."""

    view: str
    source: str
    start: datetime | None
    end: datetime
    rows: int | None
    """Source rows with an event time in ``[start, end]``; None when the source is not a local file."""
    skipped: bool = False
    """Already materialised up to ``end``: nothing was read."""

    @property
    def empty(self) -> bool:
        """Nothing was loaded although the view was due: a missing file, or no rows in the window."""
        return not self.skipped and self.rows == 0

    def warning(self) -> str:
        """What an empty load means and where to look."""
        window = f"{self.start.isoformat() if self.start else '(no data)'} .. {self.end.isoformat()}"
        return (
            f"feature view {self.view!r} loaded no rows: its source {self.source} has no rows with an event time "
            f"in {window} (is the file there, and does its data reach this window?)"
        )


@dataclass(frozen=True)
class MaterializeResult:
    """What one materialisation run loaded into the online store."""

    end: datetime
    start: datetime | None
    incremental: bool
    feature_views: list[str]
    seconds: float
    online_store: str = field(default="sqlite")
    loads: tuple[ViewLoad, ...] = ()

    @property
    def rows(self) -> dict[str, int | None]:
        """Source rows read per view (None: not a local file, or already up to date)."""
        return {load.view: None if load.skipped else load.rows for load in self.loads}

    @property
    def empty(self) -> list[ViewLoad]:
        """Views that were due but loaded nothing."""
        return [load for load in self.loads if load.empty]


class MaterializeError(RuntimeError):
    """Feast could not read a view's source; the message names the view, the file and the fix."""


_VOLATILE_FIELDS = frozenset({"meta", "file_options", "data_source_class_type"})
"""Proto fields that say when/where rather than what: registry timestamps, data locations."""


REDIS_TIMEOUT_OPTIONS = ("socket_timeout", "socket_connect_timeout")


def redis_connection_string(feast: FeastSettings) -> str:
    """The configured connection string with ``feast.redis_timeout_s`` as its timeouts where it names none.

    Without them, redis-py waits forever on a blackholed Redis (its default socket timeout is none), and every
    process reading features (model servers, materialisation, training) hangs with it."""
    named = {part.split("=", 1)[0].strip() for part in feast.redis_connection_string.split(",") if "=" in part}
    extra = [f"{option}={feast.redis_timeout_s:g}" for option in REDIS_TIMEOUT_OPTIONS if option not in named]
    return ",".join([feast.redis_connection_string, *extra])


def _strip_volatile(message: Any) -> None:
    """Clear ``_VOLATILE_FIELDS`` anywhere inside a protobuf message, so equal definitions hash equal."""
    for descriptor, value in message.ListFields():
        if descriptor.name in _VOLATILE_FIELDS:
            message.ClearField(descriptor.name)
        elif descriptor.message_type is None:
            continue
        elif descriptor.message_type.GetOptions().map_entry:
            if descriptor.message_type.fields_by_name["value"].message_type is not None:
                for item in value.values():
                    _strip_volatile(item)
        elif descriptor.label == descriptor.LABEL_REPEATED:
            for item in value:
                _strip_volatile(item)
        else:
            _strip_volatile(value)


@contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Silence warnings users cannot act on: Feast's "experimental" note on every on-demand view, and a
    deprecation inside ibis (DuckDB's ``fetch_arrow_table``) that only ibis can fix."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="On demand feature view is an experimental feature")
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r"fetch_arrow_table\(\) is deprecated")
        yield


def _is_conversion_error(error: Exception) -> bool:
    """Errors of reading a source whose column types Feast's engines cannot convert (e.g. DuckDB cannot cast
    timezone-aware nanosecond timestamps), as opposed to bugs or an unreachable store."""
    import duckdb
    import pyarrow as pa

    return isinstance(error, duckdb.ConversionException | duckdb.InvalidInputException | pa.ArrowException)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0][:300]


class FeatureStoreAdapter:
    """Feast behind plain methods; build one per process from the settings and reuse it."""

    def __init__(self, settings: Settings, progress: Callable[[str], None] | None = None) -> None:
        self._settings = settings
        self._progress = progress or (lambda _message: None)
        self._store: FeatureStore | None = None

    # ----------------------------------------------------------------- configuration

    def repo_config(self) -> RepoConfig:
        """The Feast configuration the settings describe (what a ``feature_store.yaml`` would say)."""
        from feast import RepoConfig

        feast = self._settings.feast
        online: dict[str, Any]
        if feast.online_store == "redis":
            online = {"type": "redis", "connection_string": redis_connection_string(feast)}
        else:
            online = {"type": "sqlite", "path": str(self._settings.feast_online_path)}
        return RepoConfig(
            project=feast.project,
            provider="local",
            registry={"registry_type": "file", "path": str(self._settings.feast_registry_path)},
            online_store=online,
            offline_store={"type": feast.offline_store},
            repo_path=feast.repo_path,
            entity_key_serialization_version=3,
        )

    @property
    def store(self) -> FeatureStore:
        """The Feast ``FeatureStore``, created on first use (directories for local files are made then)."""
        if self._store is None:
            from feast import FeatureStore

            self._settings.feast_registry_path.parent.mkdir(parents=True, exist_ok=True)
            self._settings.feast_online_path.parent.mkdir(parents=True, exist_ok=True)
            self._store = FeatureStore(config=self.repo_config())
        return self._store

    def definitions(self) -> list[object]:
        """Every model's Feast objects (``features.yaml`` + ``features.py`` of each folder in the model roots)."""
        from mlplatform.features.declarative import load_feature_definitions
        from mlplatform.specs import model_folders

        return load_feature_definitions(model_folders(self._settings.model_roots), self._settings.model_data_dir)

    # ----------------------------------------------------------------- registry

    def apply(self) -> list[str]:
        """Register every definition (idempotent: applying unchanged definitions changes nothing).

        Objects removed from the model folders are not deleted from the registry (Feast's partial apply).
        """
        objects = self.definitions()
        self._progress(f"applying {len(objects)} Feast objects to project {self._settings.feast.project!r}")
        with _quiet_libraries():
            self.store.apply(objects)  # type: ignore[arg-type]
        names = [str(getattr(item, "name", type(item).__name__)) for item in objects]
        self._progress("applied: " + ", ".join(names))
        return names

    def feature_service(self, name: str) -> FeatureService:
        """A registered feature service; an unknown name is a ``ValueError`` listing the ones that exist."""
        from feast.errors import FeatureServiceNotFoundException

        self.require_applied()
        try:
            return self.store.get_feature_service(name, allow_cache=False)
        except FeatureServiceNotFoundException:
            available = sorted(service.name for service in self.store.list_feature_services())
            raise ValueError(
                f"unknown feature service {name!r} in Feast project {self._settings.feast.project!r}; "
                f"available: {', '.join(available) or 'none'}"
            ) from None

    def online_reader(self, feature_service: str) -> OnlineFeatureReader:
        """A planned-once online lookup of the service for model servers (see ``online_reader``)."""
        from mlplatform.features.online_reader import OnlineFeatureReader

        serving = self._settings.serving
        timeout = serving.loop_read_timeout_s if serving.score_on_loop == "auto" else None
        return OnlineFeatureReader(self.store, self.feature_service(feature_service), loop_timeout_s=timeout)

    def feature_names(self, feature_service: str) -> list[str]:
        """The service's feature columns in a stable order (definition order): the columns a model sees."""
        service = self.feature_service(feature_service)
        return [feature.name for projection in service.feature_view_projections for feature in projection.features]

    def feature_service_lineage(self, name: str) -> dict[str, str]:
        """Tags that pin which features a model was trained on, e.g. for MLflow.

        Keys: ``feast.project``, ``feast.feature_service``, ``feast.feature_views`` (comma-separated) and per view
        ``feast.view.<view>.features`` (comma-separated) and ``feast.view.<view>.version`` (a short hash of the
        view's definition: schema, entities, TTL, source fields and transformation code; not the data location
        or registry timestamps, so the same definitions give the same version everywhere).
        """
        service = self.feature_service(name)
        tags = {
            "feast.project": self._settings.feast.project,
            "feast.feature_service": service.name,
            "feast.feature_views": ",".join(p.name for p in service.feature_view_projections),
        }
        for projection in service.feature_view_projections:
            tags[f"feast.view.{projection.name}.features"] = ",".join(f.name for f in projection.features)
            tags[f"feast.view.{projection.name}.version"] = self._view_fingerprint(projection.name)
        return tags

    def _view_fingerprint(self, view_name: str) -> str:
        """A stable short hash of a view's definition (see ``feature_service_lineage``)."""
        from feast.errors import FeatureViewNotFoundException

        try:
            spec = self.store.get_feature_view(view_name).to_proto().spec
        except FeatureViewNotFoundException:
            spec = self.store.get_on_demand_feature_view(view_name).to_proto().spec
            # Pickled bytecode differs between Python builds; body_text (the source) stays in the hash.
            spec.feature_transformation.user_defined_function.ClearField("body")
        _strip_volatile(spec)
        blob: bytes = spec.SerializeToString(deterministic=True)
        return hashlib.sha256(blob).hexdigest()[:_FINGERPRINT_LENGTH]

    def require_applied(self) -> None:
        """Fail with the fix in the message when the registry holds nothing for this project yet."""
        registry = self._settings.feast_registry_path
        if registry.exists() and self.store.list_feature_views(allow_cache=False):
            return
        raise RuntimeError(
            f"the Feast registry {registry} has no feature views for project {self._settings.feast.project!r}: "
            "run `mlplatform features apply` first"
        )

    # ----------------------------------------------------------------- online

    def materialize(self, end: datetime, start: datetime | None = None) -> MaterializeResult:
        """Load feature values up to ``end`` into the online store, view by view, counting the source rows read.

        Without ``start`` the run is incremental: each view continues from where its last run ended, and the first
        run of a view starts at its source's earliest event time (so history older than the TTL is loaded too).
        With ``start``, exactly ``[start, end]`` is loaded.  Timestamps must be timezone-aware.  A view that loads
        nothing is reported (progress and ``MaterializeResult.empty``), not an error: one model's missing data
        must not keep the others' features stale.
        """
        for label, value in (("end", end), ("start", start)):
            if value is not None and value.tzinfo is None:
                raise ValueError(f"materialize: {label}={value.isoformat()} must be timezone-aware (e.g. UTC)")
        if start is not None and start >= end:
            raise ValueError(f"materialize: start {start.isoformat()} must be before end {end.isoformat()}")
        self.require_applied()
        views = [view for view in self.store.list_feature_views(allow_cache=False) if view.online]
        began = time.perf_counter()
        loads = tuple(
            self._materialize_view(view, end, start, f"[{index}/{len(views)}]")
            for index, view in enumerate(views, start=1)
        )
        seconds = time.perf_counter() - began
        self._progress(f"materialized {len(views)} feature views in {seconds:.1f} s")
        return MaterializeResult(
            end=end.astimezone(UTC),
            start=start.astimezone(UTC) if start else None,
            incremental=start is None,
            feature_views=[view.name for view in views],
            seconds=seconds,
            online_store=self._settings.feast.online_store,
            loads=loads,
        )

    def _materialize_view(self, view: Any, end: datetime, start: datetime | None, step: str) -> ViewLoad:
        """One view over ``[begin, end]``: ``start``, else where its last run ended, else its first event time.

        Feast's own incremental run starts a never-materialised view at *now* minus its TTL, which skips older
        rows and loads nothing when ``end`` lies in the past.  A window without source rows is not sent to Feast
        (the view's last end stays where it was, so the next run reads that window again).
        """
        from mlplatform.features.sources import file_source_path

        path = file_source_path(view)
        source = str(path) if path else str(view.batch_source.name)
        if start is None and view.most_recent_end_time is not None and view.most_recent_end_time >= end:
            self._progress(f"{step} {view.name}: already materialized up to {view.most_recent_end_time}")
            return ViewLoad(view.name, source, view.most_recent_end_time, end, rows=0, skipped=True)
        column = view.batch_source.timestamp_field
        begin = start or view.most_recent_end_time
        rows: int | None = None
        if path is None:  # not a local file: the first run reaches back one TTL, rows are not counted
            begin = begin or end - (view.ttl or _DEFAULT_FIRST_WINDOW)
        else:
            begin = begin or self._source_stats(view.name, path, column).first
            rows = self._source_stats(view.name, path, column, begin, end).rows if begin else 0
        load = ViewLoad(view.name, source, begin, end, rows)
        if begin is None or begin >= end or rows == 0:
            self._progress(f"{step} warning: {load.warning()}")
            return load
        self._progress(f"{step} materializing {view.name} from {begin.isoformat()} to {end.isoformat()}")
        try:
            with _quiet_libraries():
                self.store.materialize(start_date=begin, end_date=end, feature_views=[view.name])
        except Exception as error:
            if not _is_conversion_error(error):
                raise
            raise MaterializeError(
                f"feature view {view.name!r}: Feast could not read its source {source}: "
                f"{type(error).__name__}: {_first_line(error)}\n  fix: event timestamps must be timezone-aware "
                "UTC at microsecond precision (pandas: df[col] = pd.to_datetime(df[col], utc=True).astype("
                "'datetime64[us, UTC]')); `mlplatform models init` converts them"
            ) from error
        self._progress(f"{step} {view.name}: {rows if rows is not None else 'unknown'} source rows read")
        return load

    def _source_stats(
        self, view: str, path: Path, column: str, start: datetime | None = None, end: datetime | None = None
    ) -> SourceStats:
        """The source's rows in a window; a source Feast could not read either is a ``MaterializeError``."""
        from mlplatform.features.sources import source_stats

        try:
            return source_stats(path, column, start, end)
        except ValueError as error:
            raise MaterializeError(f"feature view {view!r}: {error}") from None

    def online_features(self, feature_service: str, entity_rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """Latest feature values for entity rows (join keys plus request values such as ``amount``).

        Returns columns: the join keys and every feature of the service, one value per row (``None`` if unknown).
        """
        if not entity_rows:
            raise ValueError(f"online_features({feature_service!r}) needs at least one entity row")
        service = self.feature_service(feature_service)
        response = self.store.get_online_features(features=service, entity_rows=entity_rows).to_dict()
        names = self.feature_names(feature_service)
        keys = [column for column in response if column not in names]
        return {column: list(response[column]) for column in [*keys, *names]}

    # ----------------------------------------------------------------- offline

    def training_set(self, entity_df: pd.DataFrame, feature_service: str) -> pd.DataFrame:
        """Point-in-time correct features for each entity row, in the entity frame's row order.

        ``entity_df`` needs the join key(s) and an ``event_timestamp`` column (timezone-aware, or naive UTC); other
        columns (labels, request values such as ``amount``) pass through.  Each row gets, per feature view, the
        latest source row with ``event_timestamp <=`` the row's timestamp and within the view's TTL.  Integer
        features come back as floats (nulls are NaN).

        Policy: an entity row with no such source row is KEPT, with nulls for that view's features; it is never
        dropped and never filled from a later source row.  Feast's DuckDB store keeps such rows but its file
        store drops them (and collapses rows sharing keys and timestamp), so the result is always left-joined back
        onto the entity frame by a row id, and for the file store repeated (keys, timestamp) pairs go in separate
        joins.  The output has exactly ``len(entity_df)`` rows: the entity columns, then
        ``feature_names(feature_service)``.
        """
        import pandas as pd

        self._check_entity_df(entity_df, feature_service)
        service = self.feature_service(feature_service)
        names = self.feature_names(feature_service)
        entities = entity_df.reset_index(drop=True)
        entities[EVENT_TIMESTAMP] = pd.to_datetime(entities[EVENT_TIMESTAMP], utc=True)
        entities[ROW_ID] = range(len(entities))
        self._progress(f"point-in-time join of {len(entities):,} entity rows with {feature_service!r}")
        direct = self._direct_historical(entities, service, names)
        if direct is not None:  # one row per entity row, in the entity frame's order
            return pd.concat([entities.drop(columns=ROW_ID), direct], axis=1)
        features = pd.concat(
            [self._historical(part, service, names) for part in self._unique_key_parts(entities, service)],
            ignore_index=True,
        )
        result = entities.merge(features, on=ROW_ID, how="left", validate="one_to_one", sort=False)
        return result.sort_values(ROW_ID, kind="stable").drop(columns=ROW_ID).reset_index(drop=True)

    def _direct_historical(
        self, entities: pd.DataFrame, service: FeatureService, names: list[str]
    ) -> pd.DataFrame | None:
        """The join straight in DuckDB (``features.point_in_time``), the features alone in ``ROW_ID`` order, where
        the offline store is DuckDB and the service's views allow it; ``None`` where Feast's own join must answer."""
        from mlplatform.features.point_in_time import UnsupportedJoinError, point_in_time_features

        if self._settings.feast.offline_store != "duckdb":
            return None
        self._check_join_keys(entities, service)
        try:
            joined = point_in_time_features(self.store, service, entities, names, order=ROW_ID)
        except UnsupportedJoinError as reason:
            self._progress(f"point-in-time join through Feast's offline store ({reason})")
            return None
        if len(joined) != len(entities):
            raise RuntimeError(f"the point-in-time join returned {len(joined)} rows for {len(entities)} entity rows")
        return joined

    def _historical(self, entities: pd.DataFrame, service: FeatureService, names: list[str]) -> pd.DataFrame:
        """One Feast point-in-time join: the row id and the feature columns of the rows Feast returned."""
        with _quiet_libraries():
            joined = self.store.get_historical_features(entity_df=entities, features=service).to_df()
        missing = [name for name in names if name not in joined.columns]
        if missing:
            raise RuntimeError(f"Feast returned no column(s) {missing} for feature service {service.name!r}")
        return joined[[ROW_ID, *names]]

    def _unique_key_parts(self, entities: pd.DataFrame, service: FeatureService) -> list[pd.DataFrame]:
        """Split the entity frame so no part repeats a (join keys, timestamp) pair, where the store needs it.

        Feast's file store keeps one row per (join keys, timestamp) even when request values differ, which would
        turn a duplicate's features into nulls; its DuckDB store returns every row, so it gets one part.
        """
        keys = self._check_join_keys(entities, service)
        if self._settings.feast.offline_store not in _DEDUPLICATING_OFFLINE_STORES:
            return [entities]
        layer = entities.groupby([*keys, EVENT_TIMESTAMP], sort=False, dropna=False).cumcount()
        return [entities[layer == index] for index in range(int(layer.max()) + 1)]

    def _check_join_keys(self, entities: pd.DataFrame, service: FeatureService) -> list[str]:
        """The service's join keys, all of which the entity frame must hold (else a ``ValueError`` naming them)."""
        keys = self._join_keys(service)
        absent = [key for key in keys if key not in entities.columns]
        if absent:
            raise ValueError(
                f"training_set({service.name!r}): the entity frame lacks join key column(s) {absent}; "
                f"it has {[c for c in entities.columns if c != ROW_ID]}"
            )
        return keys

    def _join_keys(self, service: FeatureService) -> list[str]:
        """Entity join-key columns the service's batch views need in the entity frame."""
        from feast.errors import FeatureViewNotFoundException

        keys: list[str] = []
        for projection in service.feature_view_projections:
            try:
                view = self.store.get_feature_view(projection.name)
            except FeatureViewNotFoundException:
                continue  # an on-demand view: its inputs come from other views and request data
            for column in view.entity_columns:
                key = projection.join_key_map.get(column.name, column.name)
                if key not in keys:
                    keys.append(key)
        return keys

    def _check_entity_df(self, entity_df: pd.DataFrame, feature_service: str) -> None:
        """Name what is wrong with an entity frame before Feast fails on it with a less helpful message."""
        if entity_df.empty:
            raise ValueError(f"training_set({feature_service!r}): the entity frame is empty (no rows)")
        if EVENT_TIMESTAMP not in entity_df.columns:
            raise ValueError(
                f"training_set({feature_service!r}): the entity frame needs an {EVENT_TIMESTAMP!r} column; "
                f"it has {list(entity_df.columns)}"
            )
        if ROW_ID in entity_df.columns:
            raise ValueError(f"training_set({feature_service!r}): column {ROW_ID!r} is reserved")
