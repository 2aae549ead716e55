"""What a feature view's parquet source holds: rows, and the first and last event time (in a window, too).

Why: materialization must know where a view's data starts (its first run loads everything, not only the last TTL)
and how many rows a run read, so a view that loads nothing is reported instead of silently staying empty; ``features
list`` shows the same numbers.  Only the timestamp column is read (pyarrow, lazily imported).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SourceStats:
    """Rows of a source file (in a window, when one was given) and the event-time range of those rows."""

    path: Path
    rows: int
    first: datetime | None
    last: datetime | None


def file_source_path(view: Any) -> Path | None:
    """The parquet file behind a Feast feature view, or None when its source is not a local file."""
    from feast import FileSource

    source = view.batch_source
    if not isinstance(source, FileSource) or "://" in source.path:
        return None
    return Path(source.path)


def source_stats(
    path: Path, timestamp_column: str, start: datetime | None = None, end: datetime | None = None
) -> SourceStats:
    """Rows with ``start <= timestamp <= end`` (the bounds Feast's materialization uses), and their time range.

    A missing file holds no rows.  Raises ``ValueError`` naming the file when the column is missing or is not a
    timestamp.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not path.is_file():
        return SourceStats(path=path, rows=0, first=None, last=None)
    schema = pq.read_schema(path)
    if timestamp_column not in schema.names:
        raise ValueError(f"{path}: no column {timestamp_column!r} (the view's timestamp column); it has {schema.names}")
    column_type = schema.field(timestamp_column).type
    if not pa.types.is_timestamp(column_type):
        raise ValueError(f"{path}: column {timestamp_column!r} is {column_type}, not a timestamp")
    times = pq.read_table(path, columns=[timestamp_column]).column(timestamp_column)
    mask = None
    for bound, compare in ((start, pc.greater_equal), (end, pc.less_equal)):
        if bound is not None:
            condition = compare(times, pa.scalar(_as_column_time(bound, column_type), type=column_type))
            mask = condition if mask is None else pc.and_(mask, condition)
    if mask is not None:
        times = times.filter(mask)
    if len(times) == 0 or times.null_count == len(times):
        return SourceStats(path=path, rows=len(times), first=None, last=None)
    bounds = pc.min_max(times)
    return SourceStats(path=path, rows=len(times), first=_utc(bounds["min"].as_py()), last=_utc(bounds["max"].as_py()))


def _as_column_time(moment: datetime, column_type: Any) -> datetime:
    """``moment`` comparable with the column: naive UTC for a column without a time zone."""
    return moment.astimezone(UTC) if column_type.tz else moment.astimezone(UTC).replace(tzinfo=None)


def _utc(moment: Any) -> datetime:
    """A timestamp read back from parquet as an aware UTC datetime (nanosecond values come back as pandas')."""
    value: datetime = moment.to_pydatetime() if hasattr(moment, "to_pydatetime") else moment
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
