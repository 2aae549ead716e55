"""Where prediction-log records are persisted: partitioned parquet (embedded) or a PostgreSQL table (production).

Read back as one flat frame per model (``records_frame``'s shape): base columns, one column per entity key and
per feature, sorted by time.
"""

from __future__ import annotations

import math
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlplatform.predictions.records import PredictionRecord, ordered_frame, records_frame, to_utc, union_keys

if TYPE_CHECKING:
    from mlplatform.config import Settings
    from mlplatform.store.db import PlatformStore


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

    def close(self) -> None:
        """Release connections; the default sink holds none."""
        return None


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
            pq.write_table(table, temporary)
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

            self._connected = PlatformStore.connect(self.url)
        return self._connected

    def write(self, records: Sequence[PredictionRecord]) -> None:
        from sqlalchemy import insert
        from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

        from mlplatform.store.models import PredictionLogRow

        rows = [_row(record) for record in records]
        try:
            with self._store.engine.begin() as connection:
                connection.execute(insert(PredictionLogRow), rows)  # one executemany per batch
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
            Row.request_id, Row.ts, Row.model_name, Row.model_version, Row.entity, Row.features, Row.score, Row.label
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
            }
            for row in rows
        ]
        return records_frame(base, [row.entity for row in rows], [row.features for row in rows])

    def close(self) -> None:
        if self._connected is not None:
            self._connected.dispose()


def _row(record: PredictionRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "ts": to_utc(record.timestamp),
        "model_name": record.model_name,
        "model_version": record.model_version,
        "entity": {key: _json_scalar(value) for key, value in record.entity.items()},
        # JSON has no NaN/Infinity (PostgreSQL rejects them): a non-finite feature is stored as null.
        "features": {key: _finite_or_none(value) for key, value in record.features.items()},
        "score": float(record.score),
        "label": None if record.label is None else int(record.label),
    }


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
