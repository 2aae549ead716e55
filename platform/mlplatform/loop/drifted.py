"""The loop's data for a model without a generator: its own feature table, then that table with drifted rows.

``mlplatform loop run MODEL --drifted FILE`` passes a ``DriftedTable`` as the loop's ``RegenerateData``.  FILE holds
the same columns as one of the model's feature tables (a view's parquet source; the one whose columns match) with
the shifted values, usually at later timestamps.  The baseline step puts the table back as it was before the loop
touched it; the drift step writes it again with FILE's rows appended, so those rows are each entity's latest values
and the online store serves them once materialized, while the history the labels were joined with stays.

The table as it was is kept beside it (``.<name>.before-drift.parquet``) with the size and time of the last write
the loop made; when the table no longer matches that write (someone wrote new data), the new table becomes the
baseline.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlplatform.loop.traffic import NoRequestsError, feature_sources

if TYPE_CHECKING:
    import pandas as pd

    from mlplatform.config import Settings
    from mlplatform.specs import ModelSpec


class DriftedTableError(ValueError):
    """The drifted table cannot stand in for one of the model's feature tables; the message says why and the fix."""


@dataclass(frozen=True)
class WrittenTable:
    """What one write of the feature table holds: its rows and its first event time (the loop's ``DataSummary``)."""

    rows: int
    start: datetime


class DriftedTable:
    """``RegenerateData`` from a drifted copy of one of the model's feature tables (see the module docstring)."""

    def __init__(self, settings: Settings, spec: ModelSpec, drifted: Path) -> None:
        import pandas as pd

        if not drifted.is_file():
            raise DriftedTableError(f"--drifted {drifted}: no such file")
        try:
            self.drifted = pd.read_parquet(drifted)
        except (OSError, ValueError) as error:
            raise DriftedTableError(f"--drifted {drifted}: not a readable parquet file ({error})") from None
        self.target, self.timestamp = _matching_source(settings, spec, drifted, list(self.drifted.columns))
        self.backup = self.target.with_name(f".{self.target.stem}.before-drift.parquet")
        self.marker = self.target.with_name(f".{self.target.stem}.before-drift.json")

    def __call__(self, data_dir: Path, *, end: datetime, drift_after: datetime | None) -> WrittenTable:
        """Baseline (``drift_after`` None): the table as it was; drift: with the drifted rows appended.

        ``data_dir``, ``end`` and ``drift_after``'s date mean nothing here: the files say where and when.
        """
        import pandas as pd

        self._keep_baseline()
        baseline = pd.read_parquet(self.backup)
        table = baseline if drift_after is None else pd.concat([baseline, self._like(baseline)], ignore_index=True)
        partial = self.target.with_name(f".{self.target.name}.tmp")
        table.to_parquet(partial, index=False)
        partial.replace(self.target)
        self.marker.write_text(json.dumps(_signature(self.target)))
        return WrittenTable(rows=len(table), start=_first(table[self.timestamp]))

    def _keep_baseline(self) -> None:
        """Copy the table aside unless what is there now is the loop's own last write."""
        written = json.loads(self.marker.read_text()) if self.marker.is_file() else None
        if self.backup.is_file() and written == _signature(self.target):
            return
        partial = self.backup.with_name(f"{self.backup.name}.tmp")
        partial.write_bytes(self.target.read_bytes())
        partial.replace(self.backup)

    def _like(self, baseline: pd.DataFrame) -> pd.DataFrame:
        """The drifted rows with the table's column order and types (naive times read as UTC)."""
        import pandas as pd

        rows = self.drifted[list(baseline.columns)].copy()
        for column in baseline.columns:
            wanted = baseline[column].dtype
            try:
                if isinstance(wanted, pd.DatetimeTZDtype) and rows[column].dt.tz is None:
                    rows[column] = rows[column].dt.tz_localize(UTC)
                rows[column] = rows[column].astype(wanted)
            except (TypeError, ValueError, AttributeError) as error:
                raise DriftedTableError(
                    f"--drifted: column {column!r} is {rows[column].dtype}, and {self.target} has {wanted}: {error}"
                ) from None
        return rows


def _matching_source(settings: Settings, spec: ModelSpec, drifted: Path, columns: list[str]) -> tuple[Path, str]:
    """The model's feature table with exactly the drifted table's columns, and its timestamp column."""
    import pyarrow.parquet as pq

    try:
        sources = feature_sources(settings, spec)
    except NoRequestsError as error:  # no feature service registered for the model yet
        raise DriftedTableError(f"--drifted {drifted}: {error}") from None
    found: list[str] = []
    for path, timestamp in sources:
        if not path.is_file():
            found.append(f"{path} (missing)")
            continue
        names = pq.read_schema(path).names
        if set(names) == set(columns):
            return path, timestamp
        found.append(f"{path} {names}")
    raise DriftedTableError(
        f"--drifted {drifted} has columns {columns}, which match none of {spec.name}'s feature tables: "
        f"{'; '.join(found) or 'none (its feature views have no local parquet sources)'}; give it the same "
        "columns as the table it drifts"
    )


def _signature(path: Path) -> dict[str, int]:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _first(times: pd.Series) -> datetime:
    """The earliest event time as an aware UTC datetime (the loop materializes from there)."""
    first: Any = times.min()
    moment: datetime = first.to_pydatetime()
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
