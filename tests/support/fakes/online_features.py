"""An online feature reader over a dict (a fake: the real reader reads Feast's online store in
tests/integration, and unit tests of scoring need only its answer shape)."""

from __future__ import annotations

from typing import Any

from mlplatform.features.online_reader import OnlineFeatureReader


class TableFeatureReader(OnlineFeatureReader):
    """``read(rows)`` from ``{entity key value: {feature: value}}``; an unknown entity reads ``None`` everywhere,
    as Feast answers for an entity it has no row of."""

    def __init__(self, entity_key: str, table: dict[int, dict[str, float]], features: list[str]) -> None:
        self.entity_key = entity_key
        self.table = table
        self.features = features

    loop_safe = False
    """A table in memory is scored in the servers' threads, as a store that could hang would be."""
    reads_async = False

    def read(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        return {name: [self.table.get(row[self.entity_key], {}).get(name) for row in rows] for name in self.features}
