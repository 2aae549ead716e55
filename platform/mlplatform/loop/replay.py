"""Replayed events see the features they had when they happened.

The online store holds each entity's latest features; a replayed event from two days ago would be scored with
today's, which no model was trained on (training joins features as of each event).  So, just before an event's
request, ``AsOfFeatures`` writes into the online store, for every batch view of the model's feature service keyed by
its entity, the view's row as of the event (the latest at or before its time, as the point-in-time training join
picks it), as a streaming feature pipeline would have.  ``restore`` loads the latest rows again afterwards.

Events are written in chunks of distinct entities (one online write per view and chunk), so a customer's two events
in a row each get their own moment's features.  Views keyed otherwise, or not read from local files, keep their
latest rows.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlplatform.config import Settings
    from mlplatform.specs import ModelSpec


@dataclass(frozen=True)
class _View:
    name: str
    timestamp: str
    rows: pd.DataFrame
    """The view's source rows, in source order."""
    as_of: list[int | None]
    """Per event: the position in ``rows`` of its row as of the event (None: the entity had none yet)."""


class AsOfFeatures:
    """The model's batch-view rows as of each replayed event, written to the online store on demand."""

    def __init__(self, settings: Settings, spec: ModelSpec, events: pd.DataFrame) -> None:
        from mlplatform.features.store import FeatureStoreAdapter

        self.adapter = FeatureStoreAdapter(settings)
        self.entities: list[Any] = events[spec.entity_key].tolist()
        self.views = list(self._views(spec, events))
        self.written = 0
        """Events whose features are in the online store."""

    def _views(self, spec: ModelSpec, events: pd.DataFrame) -> Any:
        from mlplatform.loop.traffic import local_batch_views

        for view in local_batch_views(self.adapter, spec):
            if view.join_keys == [spec.entity_key]:
                timestamp = view.batch_source.timestamp_field
                yield _View(view.name, timestamp, *rows_as_of(view.batch_source.path, timestamp, spec, events))

    def before(self, index: int, limit: int) -> None:
        """Make sure event ``index`` has its features: write the next chunk of at most ``limit`` events of distinct
        entities, starting there, when it is not written yet."""
        if index < self.written:
            return
        end = chunk_end(self.entities, index, limit)
        for view in self.views:
            rows = [row for row in view.as_of[index:end] if row is not None]
            if rows:
                self.adapter.store.write_to_online_store(view.name, view.rows.iloc[rows])
        self.written = end

    def restore(self) -> float:
        """Load every view's latest rows again (the whole range), as the demo left them; returns the seconds."""
        import pandas as pd

        if not self.views:
            return 0.0
        earliest = min(pd.to_datetime(view.rows[view.timestamp], utc=True).min() for view in self.views)
        with contextlib.redirect_stdout(io.StringIO()):  # Feast prints its own progress
            return self.adapter.materialize(datetime.now(UTC), earliest.to_pydatetime()).seconds


def chunk_end(entities: list[Any], start: int, limit: int) -> int:
    """End (exclusive) of the chunk from ``start``: at most ``limit`` events, stopping before an entity repeats."""
    end, seen = start, set()
    while end < len(entities) and end - start < limit and entities[end] not in seen:
        seen.add(entities[end])
        end += 1
    return end


def rows_as_of(
    path: str, timestamp: str, spec: ModelSpec, events: pd.DataFrame
) -> tuple[pd.DataFrame, list[int | None]]:
    """The source's rows and the position of each event's row as of its time."""
    import pandas as pd

    rows = pd.read_parquet(path)
    key, time_column = spec.entity_key, spec.label.timestamp_column
    left = pd.DataFrame(
        {
            "__event": range(len(events)),
            key: events[key].to_numpy(),
            "__time": pd.to_datetime(events[time_column], utc=True).dt.as_unit("us"),
        }
    ).sort_values("__time", kind="stable")
    right = pd.DataFrame(
        {"__row": range(len(rows)), key: rows[key].to_numpy(), "__time": pd.to_datetime(rows[timestamp], utc=True)}
    )
    right["__time"] = right["__time"].dt.as_unit("us")
    right = right.sort_values("__time", kind="stable")
    joined = pd.merge_asof(left, right, on="__time", by=key, direction="backward").sort_values("__event")
    as_of = [None if pd.isna(row) else int(row) for row in joined["__row"]]
    return rows, as_of
