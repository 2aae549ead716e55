"""Where prediction-log records are persisted: partitioned parquet (embedded) or a PostgreSQL table (production).

Read back as one flat frame per model (``records_frame``'s shape): base columns, one column per entity key and
per feature, sorted by time.
"""

from __future__ import annotations

import functools
import json
import math
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlplatform.predictions.records import (
    MAX_ERROR_CHARS,
    SAMPLE_COLUMNS,
    PredictionRecord,
    WindowSample,
    ordered_frame,
    records_frame,
    sample_frame,
    to_utc,
    union_keys,
)

if TYPE_CHECKING:
    from mlplatform.config import Settings
    from mlplatform.store.db import PlatformStore


SAMPLE_SEED = 0
"""Seed of window samples: the same log and window always give the same sample (and the same drift verdict)."""
SAMPLE_STATEMENT_TIMEOUT_S = 600
"""Statement timeout of a window's count and sample in PostgreSQL: one scan of the window's index range, the only
long query the log serves, longer than the platform's default for its own short statements but still bounded."""
SCAN_BATCH_ROWS = 32_768
"""Rows decoded at a time while a window is scanned: with the sample, all a scan holds in memory."""
REPEATING_COLUMNS = ("model_name", "model_version", "arm", "error")
"""The parquet log's columns whose values repeat within a file (a dictionary encodes them in a few bytes); request
ids, entity keys and features mostly differ from row to row, where a dictionary costs CPU and saves nothing."""
PRUNING_COLUMNS = ("timestamp",)
"""The parquet log's columns whose statistics reads use (to skip row groups outside a window); statistics of the
others would be computed on the writer thread, in the server's process, for nobody."""


class PredictionSink(ABC):
    """Where batches of records are persisted and read back from.

    ``write`` raises ``ValueError``/``TypeError`` for records it can never store (the writer drops that batch,
    counted) and anything else for a failure worth retrying (connection lost, disk full).
    """

    @abstractmethod
    def write(self, records: Sequence[PredictionRecord]) -> None:
        """Persist one batch, all or nothing."""

    @abstractmethod
    def read(self, model_name: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        """Records of one model with ``start <= timestamp < end``, as a frame shaped by ``records_frame``."""

    def sample(
        self,
        model_name: str,
        start: datetime | None,
        end: datetime | None,
        *,
        features: list[str],
        max_rows: int,
        seed: int = SAMPLE_SEED,
    ) -> WindowSample:
        """At most ``max_rows`` uniformly drawn rows of the window with the window's counts, in memory bounded by
        the sample's size whatever the window's (what a drift check reads).  Answered, scored rows only: a rollout's
        shadow rows repeat the inputs of the champion's rows and would count them twice, and failures have no
        score."""
        raise NotImplementedError(f"{type(self).__name__} cannot sample a window of the prediction log")

    def close(self) -> None:
        """Release connections; the default sink holds none."""
        return None


def _sample_columns(features: list[str]) -> list[str]:
    clash = sorted(set(features) & set(SAMPLE_COLUMNS))
    if clash:
        raise ValueError(f"features named like the log's own columns cannot be sampled: {clash}")
    return list(dict.fromkeys(features))


_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class ParquetSink(PredictionSink):
    """Hive-partitioned parquet: ``root/model=<name>/date=YYYY-MM-DD/part-<uuid>.parquet``, one file per batch.

    Files are written under a temporary name and renamed, so readers never see half a file.  Entity keys and
    features are plain columns; which is which is kept in each file's schema metadata so reading can restore the
    documented column order.  Files of one model may differ in schema (a new model version adds a feature).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def write(self, records: Sequence[PredictionRecord]) -> None:
        """One file per (model, date) in the batch: all written under temporary names first, then renamed, so a
        failure leaves nothing behind and the retry cannot duplicate records."""
        groups: dict[tuple[str, date], list[PredictionRecord]] = {}
        for record in records:
            groups.setdefault((record.model_name, to_utc(record.timestamp).date()), []).append(record)
        staged: list[tuple[Path, Path]] = []
        try:
            for (model_name, day), group in groups.items():
                staged.append(self._stage_file(self._model_dir(model_name) / f"date={day.isoformat()}", group))
        except BaseException:
            for temporary, _ in staged:
                temporary.unlink(missing_ok=True)
            raise
        for temporary, final in staged:
            temporary.replace(final)

    def read(self, model_name: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        import pyarrow.dataset as ds

        files = self._files(model_name, start, end)
        if not files:
            return records_frame([], [], [])
        schemas = [fragment.physical_schema for fragment in ds.dataset(files, format="parquet").get_fragments()]
        frame = _read_parquet_files(files, schemas, start, end)
        entity_keys, feature_names = _column_roles(schemas)
        return ordered_frame(frame, entity_keys, feature_names)

    def sample(
        self,
        model_name: str,
        start: datetime | None,
        end: datetime | None,
        *,
        features: list[str],
        max_rows: int,
        seed: int = SAMPLE_SEED,
    ) -> WindowSample:
        """One pass over the window's files, one at a time and batch by batch, through a reservoir of ``max_rows``
        rows: memory is at most twice the sample plus one batch, only the columns asked for are decoded, and files
        of other days (by their directory) or row groups of other times (by their statistics) are not read."""
        import pyarrow as pa

        features = _sample_columns(features)
        schema = pa.schema(
            [
                ("timestamp", pa.timestamp("us", tz="UTC")),
                ("model_version", pa.string()),
                ("score", pa.float64()),
                *((name, pa.float64()) for name in features),
            ]
        )
        reservoir = Reservoir(schema, max_rows, seed)
        for path in self._files(model_name, start, end):
            for batch in _window_batches(path, schema, start, end):
                reservoir.offer(batch)
        return reservoir.sample()

    def _model_dir(self, model_name: str) -> Path:
        if not _SAFE_SEGMENT.match(model_name):
            raise ValueError(f"model name {model_name!r} cannot name a directory of the prediction log")
        return self.root / f"model={model_name}"

    def _stage_file(self, directory: Path, records: list[PredictionRecord]) -> tuple[Path, Path]:
        """Write ``records`` to a hidden temporary file in ``directory``; returns (temporary, final) paths."""
        import pyarrow.parquet as pq

        table = _arrow_table(records)
        directory.mkdir(parents=True, exist_ok=True)
        name = f"part-{uuid.uuid4().hex}.parquet"
        temporary = directory / f".{name}.tmp"
        try:
            # Against pyarrow's defaults, half the encoding CPU (500 real records a file: 3.0-4.3 -> 1.9-2.0 us a
            # record) and files a tenth smaller.
            pq.write_table(
                table, temporary, use_dictionary=list(REPEATING_COLUMNS), write_statistics=list(PRUNING_COLUMNS)
            )
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return temporary, directory / name

    def _files(self, model_name: str, start: datetime | None, end: datetime | None) -> list[str]:
        """Files in the date partitions that can hold records of the window (pruning by directory name)."""
        first = to_utc(start).date().isoformat() if start else ""
        last = to_utc(end).date().isoformat() if end else "9999-12-31"
        model_dir = self._model_dir(model_name)
        if not model_dir.is_dir():
            return []
        days = [d for d in model_dir.glob("date=*") if first <= d.name.removeprefix("date=") <= last]
        return sorted(str(path) for day in days for path in day.glob("part-*.parquet"))


def _arrow_table(records: list[PredictionRecord]) -> Any:
    """One batch as a pyarrow table; keys missing from some records are null, features are always float64."""
    import pyarrow as pa

    entity_keys = union_keys(record.entity for record in records)
    feature_names = union_keys(record.features for record in records)
    columns: dict[str, Any] = {
        "request_id": pa.array([r.request_id for r in records], pa.string()),
        "timestamp": pa.array([to_utc(r.timestamp) for r in records], pa.timestamp("us", tz="UTC")),
        "model_name": pa.array([r.model_name for r in records], pa.string()),
        "model_version": pa.array([r.model_version for r in records], pa.string()),
    }
    for key in entity_keys:
        columns[key] = _entity_array([r.entity.get(key) for r in records])
    for name in feature_names:
        columns[name] = pa.array([r.features.get(name) for r in records], pa.float64())
    columns["score"] = pa.array([r.score for r in records], pa.float64())
    columns["label"] = pa.array([r.label for r in records], pa.int64())
    columns["arm"] = pa.array([r.arm for r in records], pa.string())
    columns["shadow"] = pa.array([r.shadow for r in records], pa.bool_())
    columns["latency_s"] = pa.array([r.latency_s for r in records], pa.float64())
    columns["error"] = pa.array([_short_error(r.error) for r in records], pa.string())
    metadata = {"mlplatform.entity_keys": "\x1f".join(entity_keys), "mlplatform.features": "\x1f".join(feature_names)}
    return pa.table(columns).replace_schema_metadata(metadata)


def _entity_array(values: list[Any]) -> Any:
    """Entity values as pyarrow infers them; mixed types (ints and strings in one batch) are stored as strings
    rather than costing the whole batch."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if value is None else str(value) for value in values], pa.string())


def _read_parquet_files(
    files: list[str], schemas: list[Any], start: datetime | None, end: datetime | None
) -> pd.DataFrame:
    """All rows of ``files`` inside the window; one dataset scan when schemas unify, else file by file."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    condition = _arrow_window(start, end)
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive")
        return _arrow_to_pandas(ds.dataset(files, format="parquet", schema=schema).to_table(filter=condition))
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # An entity key stored as int in one file and as string in another: let pandas hold both (object).
        frames = [
            _arrow_to_pandas(ds.dataset(str(path), format="parquet").to_table(filter=condition)) for path in files
        ]
        return pd.concat([frame for frame in frames if not frame.empty] or frames[:1], ignore_index=True)


class Reservoir:
    """A uniform sample without replacement of at most ``size`` rows of the batches offered one at a time.

    Each row offered draws a random key and the sample is the ``size`` rows with the smallest keys (the bottom-k
    form of reservoir sampling): every subset of ``size`` rows is equally likely, and with fewer rows than ``size``
    every row is kept.  Candidates are gathered until they reach twice ``size``, then cut back to the ``size``
    smallest keys, whose largest becomes the bar later rows must pass: memory is at most twice the sample plus one
    batch, and cutting costs amortised constant time per row whatever the batches' sizes.  Keys come from one
    seeded stream in the order rows are offered, so the same rows in the same order give the same sample, however
    they are split into batches.
    """

    def __init__(self, schema: Any, size: int, seed: int) -> None:
        import numpy as np
        import pyarrow as pa

        if size < 1:
            raise ValueError(f"a sample needs room for at least one row, got max_rows={size}")
        self.size = size
        self.rows = 0
        self.rows_by_version: dict[str, int] = {}
        self._random = np.random.default_rng(seed)
        self._schema = schema.append(pa.field("_arrival", pa.int64()))
        self._tables: list[Any] = []
        self._keys: list[Any] = []
        self._held = 0
        self._bar = math.inf

    @property
    def held(self) -> int:
        """Rows kept now: fewer than twice ``size`` after every ``offer``."""
        return self._held

    def offer(self, batch: Any) -> None:
        """Count ``batch`` into the window and keep those of its rows whose keys may rank among the ``size``
        smallest."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        count = batch.num_rows
        if count == 0:
            return
        for item in pc.value_counts(batch.column("model_version")).to_pylist():
            version = str(item["values"])
            self.rows_by_version[version] = self.rows_by_version.get(version, 0) + int(item["counts"])
        arrival = pa.array(np.arange(self.rows, self.rows + count), pa.int64())
        self.rows += count
        keys = self._random.random(count)
        candidates = pa.Table.from_batches([batch.append_column("_arrival", arrival)], schema=self._schema)
        passing = keys < self._bar
        if not passing.all():
            candidates, keys = candidates.filter(pa.array(passing)), keys[passing]
        if len(keys) == 0:
            return
        self._tables.append(candidates)
        self._keys.append(keys)
        self._held += len(keys)
        if self._held >= 2 * self.size:
            self._cut()

    def _cut(self) -> None:
        """Keep only the ``size`` candidates with the smallest keys; the largest of them becomes the bar."""
        import numpy as np
        import pyarrow as pa

        kept = pa.concat_tables(self._tables) if self._tables else self._schema.empty_table()
        keys = np.concatenate(self._keys) if self._keys else np.empty(0)
        if len(keys) > self.size:
            smallest = np.argpartition(keys, self.size - 1)[: self.size]
            kept, keys = kept.take(pa.array(smallest)), keys[smallest]
            self._bar = float(keys.max())
        self._tables, self._keys, self._held = [kept.combine_chunks()], [keys], len(keys)

    def sample(self) -> WindowSample:
        """The rows kept, in the order they were offered within each timestamp (the log's own order)."""
        self._cut()
        kept = self._tables[0].sort_by([("timestamp", "ascending"), ("_arrival", "ascending")])
        frame: pd.DataFrame = kept.drop_columns(["_arrival"]).to_pandas()
        frame["model_version"] = frame["model_version"].astype(str)
        return WindowSample(frame.reset_index(drop=True), self.rows, dict(self.rows_by_version), self.size)


def _window_batches(path: str, schema: Any, start: datetime | None, end: datetime | None) -> Iterator[Any]:
    """The rows of one file inside the window as batches of ``schema`` (a column the file lacks is null), reading
    only the row groups whose time range meets the window and only the schema's columns, a batch at a time."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path, pre_buffer=False)
    present = [name for name in schema.names if name in file.schema_arrow.names]
    # Files written before rollouts hold answered, scored rows only: nothing to leave out.
    shadowed = "shadow" in file.schema_arrow.names
    groups = _row_groups_meeting(file.metadata, start, end)
    if not groups:
        return
    stamp = pa.timestamp("us", tz="UTC")
    read = [*present, "shadow", "error"] if shadowed else present
    for batch in file.iter_batches(SCAN_BATCH_ROWS, row_groups=groups, columns=read, use_threads=False):
        inside = pc.is_valid(batch.column("timestamp"))
        if shadowed:
            answered = pc.invert(pc.fill_null(batch.column("shadow"), False))
            inside = pc.and_(inside, pc.and_(answered, pc.is_null(batch.column("error"))))
        if start is not None:
            inside = pc.and_(inside, pc.greater_equal(batch.column("timestamp"), pa.scalar(to_utc(start), stamp)))
        if end is not None:
            inside = pc.and_(inside, pc.less(batch.column("timestamp"), pa.scalar(to_utc(end), stamp)))
        batch = batch.filter(inside)
        columns = [
            batch.column(field.name).cast(field.type) if field.name in present else pa.nulls(batch.num_rows, field.type)
            for field in schema
        ]
        yield pa.record_batch(columns, schema=schema)


def _row_groups_meeting(metadata: Any, start: datetime | None, end: datetime | None) -> list[int]:
    """Row groups whose timestamp statistics meet ``[start, end)`` (all of them where statistics are missing)."""
    column = metadata.schema.to_arrow_schema().get_field_index("timestamp")
    groups: list[int] = []
    for group in range(metadata.num_row_groups):
        statistics = metadata.row_group(group).column(column).statistics if column >= 0 else None
        if statistics is not None and statistics.has_min_max:
            if start is not None and to_utc(statistics.max) < to_utc(start):
                continue
            if end is not None and to_utc(statistics.min) >= to_utc(end):
                continue
        groups.append(group)
    return groups


def _arrow_window(start: datetime | None, end: datetime | None) -> Any:
    import pyarrow as pa
    import pyarrow.dataset as ds

    stamp = pa.timestamp("us", tz="UTC")
    condition = ds.scalar(True)
    if start is not None:
        condition = condition & (ds.field("timestamp") >= pa.scalar(to_utc(start), stamp))
    if end is not None:
        condition = condition & (ds.field("timestamp") < pa.scalar(to_utc(end), stamp))
    return condition


def _arrow_to_pandas(table: Any) -> pd.DataFrame:
    frame: pd.DataFrame = table.to_pandas()
    return frame


def _column_roles(schemas: list[Any]) -> tuple[list[str], list[str]]:
    """Entity keys and feature names over all files, from the metadata each file was written with."""
    entity_keys: dict[str, None] = {}
    feature_names: dict[str, None] = {}
    for schema in schemas:
        metadata = schema.metadata or {}
        for raw, target in (
            (metadata.get(b"mlplatform.entity_keys", b""), entity_keys),
            (metadata.get(b"mlplatform.features", b""), feature_names),
        ):
            target.update(dict.fromkeys(name for name in raw.decode().split("\x1f") if name))
    return list(entity_keys), list(feature_names)


class PostgresSink(PredictionSink):
    """The ``prediction_log`` table of a SQLAlchemy database (PostgreSQL in production; sqlite works too).

    Entity and features are JSON columns because their keys differ per model; reading expands them into columns.
    The sink never changes the schema (``mlplatform db upgrade`` does), so a role that may only insert into the
    log is enough.  It checks the schema's revision on first use rather than in the constructor (a server must
    start, and serve, while the log database is down): a schema it was not written for raises
    ``SchemaVersionError``, which the writer keeps retrying, records kept and the reason logged, rather than
    writing rows it may no longer understand or dropping them as bad values.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._connected: PlatformStore | None = None

    @property
    def _store(self) -> PlatformStore:
        if self._connected is None:
            from mlplatform.store.db import PlatformStore

            # No test of a pooled connection before each batch: a dead one fails the write, which the writer
            # retries (records kept) on a new connection; the test was a round trip per batch.
            self._connected = PlatformStore.connect(self.url, pre_ping=False)
        return self._connected

    def write(self, records: Sequence[PredictionRecord]) -> None:
        from sqlalchemy import insert
        from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

        from mlplatform.store.models import PredictionLogRow

        try:
            with self._store.engine.begin() as connection:
                if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
                    _copy_records(connection, records)
                else:  # one executemany per batch
                    connection.execute(insert(PredictionLogRow), [_row(record) for record in records])
        except (DataError, IntegrityError) as error:
            raise ValueError("the database rejected the batch's values") from error
        except StatementError as error:
            if isinstance(error, DBAPIError):
                raise  # connection or server trouble: worth a retry
            raise ValueError("the batch's values could not be bound to the statement") from error

    def read(self, model_name: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        from sqlalchemy import select

        from mlplatform.store.models import PredictionLogRow as Row

        query = select(
            Row.request_id,
            Row.ts,
            Row.model_name,
            Row.model_version,
            Row.entity,
            Row.features,
            Row.score,
            Row.label,
            Row.arm,
            Row.shadow,
            Row.latency_s,
            Row.error,
        ).where(Row.model_name == model_name)
        if start is not None:
            query = query.where(Row.ts >= to_utc(start))
        if end is not None:
            query = query.where(Row.ts < to_utc(end))
        with self._store.engine.connect() as connection:
            rows = connection.execute(query.order_by(Row.ts, Row.id)).all()
        base = [
            {
                "request_id": row.request_id,
                "timestamp": to_utc(row.ts),
                "model_name": row.model_name,
                "model_version": row.model_version,
                "score": row.score,
                "label": row.label,
                "arm": row.arm,
                "shadow": row.shadow,
                "latency_s": row.latency_s,
                "error": row.error,
            }
            for row in rows
        ]
        return records_frame(base, [row.entity for row in rows], [row.features for row in rows])

    def sample(
        self,
        model_name: str,
        start: datetime | None,
        end: datetime | None,
        *,
        features: list[str],
        max_rows: int,
        seed: int = SAMPLE_SEED,
    ) -> WindowSample:
        """Counted and sampled in the database: a ``GROUP BY`` over the window's index range gives the counts, and
        when the window holds more than ``max_rows`` rows, the rows with the smallest keys of a seeded hash of
        their id are the sample (a top-N the server keeps in ``max_rows`` rows of memory).  Only the sample crosses
        the wire, features taken out of their JSON by the server.

        A hash of the id rather than ``random()`` makes the sample the same at every run over the same window;
        rather than ``TABLESAMPLE``, which draws from the whole table before the window's ``WHERE``.
        """
        from sqlalchemy import func, or_, select

        from mlplatform.store.models import PredictionLogRow as Row

        if max_rows < 1:
            raise ValueError(f"a sample needs room for at least one row, got max_rows={max_rows}")
        features = _sample_columns(features)
        answered = or_(Row.shadow.is_(None), Row.shadow.is_(False))
        window = [Row.model_name == model_name, answered, Row.error.is_(None)]
        if start is not None:
            window.append(Row.ts >= to_utc(start))
        if end is not None:
            window.append(Row.ts < to_utc(end))
        counts = select(Row.model_version, func.count()).where(*window).group_by(Row.model_version)
        values = [Row.features[name].as_float() for name in features]
        query = select(Row.id, Row.ts, Row.model_version, Row.score, *values)
        with self._store.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SET LOCAL statement_timeout = '{SAMPLE_STATEMENT_TIMEOUT_S}s'")
            rows_by_version = {str(version): int(count) for version, count in connection.execute(counts)}
            rows = sum(rows_by_version.values())
            if rows > max_rows:
                # Ids first (the top-N of a hash), values after: a feature is taken out of its JSON for the
                # sample's rows only, not for every row of the window.
                key = _sample_key(connection.dialect.name, Row.id, seed)
                chosen = select(Row.id).where(*window).order_by(key, Row.id).limit(max_rows)
                query = query.where(Row.id.in_(chosen.scalar_subquery()))
            else:
                query = query.where(*window)
            # The log's own order: time, then insertion.
            fetched = sorted(connection.execute(query), key=lambda row: (to_utc(row[1]), row[0]))
        columns: dict[str, list[Any]] = {
            name: [row[index] for row in fetched] for index, name in enumerate(("id", *SAMPLE_COLUMNS, *features))
        }
        columns["timestamp"] = [to_utc(moment) for moment in columns["timestamp"]]
        return WindowSample(sample_frame(columns, features), rows, rows_by_version, max_rows)

    def close(self) -> None:
        if self._connected is not None:
            self._connected.dispose()


def _sample_key(dialect: str, row_id: Any, seed: int) -> Any:
    """A pseudo-random key per row that depends on its id and the seed only.

    PostgreSQL: ``hashint8extended`` (the seeded 64-bit hash hash partitioning uses, so it stays the same across
    server versions; a third of ``md5``'s cost).  Others (sqlite, for tests and single-user setups): a
    multiplicative hash modulo 2^31, uniform over ids but more regular; enough where windows are small.
    """
    from sqlalchemy import func

    if dialect == "postgresql":
        return func.hashint8extended(row_id, seed)
    return ((row_id % 2_147_483_648) * 1_103_515_245 + (seed % 2_147_483_648) + 12_345) % 2_147_483_648


def _copy_records(connection: Any, records: Sequence[PredictionRecord]) -> None:
    """The batch through PostgreSQL's ``COPY ... FROM STDIN`` on the transaction's own (psycopg) connection.

    Why: at ten thousand entity predictions a second (batches of 32 at 320/s), one ``INSERT`` per row, even
    batched by ``executemany``, made the server's writer fall behind and its bounded inbox drop records.  COPY
    streams the rows in one statement; it needs only the ``INSERT`` privilege the writer role has.  The rows go as
    COPY's text format, written here (``_copy_text``) and sent in one piece: the writer shares the server's core,
    so its cost per record is the server's, and psycopg's ``write_row`` adapted each value on its own (13 us of
    CPU per record here, against 3 for the text of batches of 32, and 8 where each record is a request of its
    own).  Values the server rejects are a ``ValueError`` (the batch is bad, retrying will not help); connection
    trouble propagates, for the writer to retry."""
    from psycopg import errors

    if not records:
        return
    cursor = connection.connection.driver_connection.cursor()
    try:
        with cursor, cursor.copy(f"COPY prediction_log ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
            copy.write(_copy_text(records))
    except (errors.DataError, errors.IntegrityError) as error:
        raise ValueError("the database rejected the batch's values") from error


COPY_COLUMNS = (
    "request_id",
    "ts",
    "model_name",
    "model_version",
    "entity",
    "features",
    "score",
    "label",
    "arm",
    "shadow",
    "latency_s",
    "error",
)
"""The columns ``_copy_text`` writes, in its order: the log table's columns but ``id`` (its sequence fills it)."""
_COPY_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
"""COPY's text format: a backslash, a column or row separator, or a carriage return inside a value is escaped."""


def _copy_text(records: Sequence[PredictionRecord]) -> str:
    """The records as COPY's text format, one line each in ``COPY_COLUMNS`` order.

    The columns a request's records share (request, time, model, arm, latency) are encoded once per request:
    consecutive records of one request carry the very same values.  The JSON columns come from ``_json_text``;
    JSON text holds no raw tab, newline or carriage return, so only its backslashes need escaping."""
    import orjson

    options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
    dumps = functools.partial(orjson.dumps, option=options | orjson.OPT_PASSTHROUGH_DATACLASS)
    lines = []
    shared: tuple[Any, ...] = ()
    head = tail = ""
    for record in records:
        request = (
            record.request_id,
            record.timestamp,
            record.model_name,
            record.model_version,
            record.arm,
            record.shadow,
            record.latency_s,
        )
        if request != shared:
            shared, (head, tail) = request, _copy_shared(record)
        entity = _json_text(record.entity, _json_scalar, dumps)
        features = _json_text(record.features, _finite_or_none, dumps)
        if "\\" in entity or "\\" in features:
            entity, features = entity.replace("\\", "\\\\"), features.replace("\\", "\\\\")
        label = _COPY_NULL if record.label is None else str(int(record.label))
        error = _COPY_NULL if record.error is None else _copy_field(_short_error(record.error))
        lines.append(f"{head}{entity}\t{features}\t{_copy_float(record.score)}\t{label}{tail}{error}\n")
    return "".join(lines)


def _copy_shared(record: PredictionRecord) -> tuple[str, str]:
    """The text of the columns before ``entity`` and between ``label`` and ``error``: the request's own."""
    stamp = to_utc(record.timestamp).isoformat()
    head = "\t".join(map(_copy_field, (record.request_id, stamp, record.model_name, record.model_version)))
    shadow = "t" if record.shadow else "f"
    return f"{head}\t", f"\t{_copy_field(record.arm)}\t{shadow}\t{_copy_float(record.latency_s)}\t"


def _copy_field(value: str | None) -> str:
    """A text value as COPY reads it; most need no escape, and finding that out costs a tenth of ``translate``."""
    if value is None:
        return _COPY_NULL
    text = str(value)
    return text if text.isprintable() and "\\" not in text else text.translate(_COPY_ESCAPES)


def _copy_float(value: float | None) -> str:
    """PostgreSQL reads ``repr``'s digits exactly, and ``nan``, ``inf`` and ``-inf`` as NaN and the infinities."""
    return _COPY_NULL if value is None else repr(float(value))


def _json_text(values: dict[str, Any], clean: Callable[[Any], Any], dumps: Callable[[Any], bytes]) -> str:
    """``values`` as JSON text holding the values ``_cleaned(values, clean)`` holds, in one call of orjson's
    ``dumps`` (``_copy_text``'s) where it can: a fifth of the standard encoder's time, and the writer shares the
    server's core.  For a record's values (float or missing features, plain or numpy entity keys) orjson writes
    what ``clean`` would give: numbers as numbers, non-finite floats as ``null`` (JSON has no NaN, and PostgreSQL
    rejects it), only more compactly.  Anything else (a datetime, a subclass, an integer beyond 64 bits) makes it
    raise, and goes through ``clean`` and the standard encoder."""
    try:
        return dumps(values).decode()
    except TypeError:
        return json.dumps(_cleaned(values, clean))


def _row(record: PredictionRecord) -> dict[str, Any]:
    """The log table's row for ``record`` (its columns but ``id``, in table order; ``INSERT``'s path, where
    ``_copy_text`` is ``COPY``'s), the JSON columns as values for SQLAlchemy's JSON type to encode.

    JSON has no NaN/Infinity (PostgreSQL rejects them): a non-finite feature is stored as null."""
    return {
        "request_id": record.request_id,
        "ts": to_utc(record.timestamp),
        "model_name": record.model_name,
        "model_version": record.model_version,
        "entity": _cleaned(record.entity, _json_scalar),
        "features": _cleaned(record.features, _finite_or_none),
        "score": None if record.score is None else float(record.score),
        "label": None if record.label is None else int(record.label),
        "arm": record.arm,
        "shadow": record.shadow,
        "latency_s": record.latency_s,
        "error": _short_error(record.error),
    }


def _cleaned(values: dict[str, Any], clean: Callable[[Any], Any]) -> dict[str, Any]:
    return {key: clean(value) for key, value in values.items()}


def _short_error(error: str | None) -> str | None:
    return None if error is None else error[:MAX_ERROR_CHARS]


def _json_scalar(value: Any) -> Any:
    """Plain Python scalars for JSON; numpy scalars (which json cannot encode) are unwrapped."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    item = getattr(value, "item", None)
    return item() if callable(item) else str(value)


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def prediction_log_dir(settings: Settings) -> Path:
    """Where the parquet prediction log lives."""
    return settings.serving_dir / "predictions"


def open_sink(settings: Settings) -> PredictionSink:
    """The sink ``settings.serving.prediction_log`` names ("off" has none)."""
    kind = settings.serving.prediction_log
    if kind == "parquet":
        return ParquetSink(prediction_log_dir(settings))
    if kind == "postgres":
        return PostgresSink(settings.serving.prediction_log_url or settings.db_url)
    raise ValueError(f"serving.prediction_log is {kind!r}: there is no prediction log to open a sink for")
