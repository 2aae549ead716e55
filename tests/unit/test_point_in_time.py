"""The direct point-in-time join's on-demand step: a transformation gets its declared columns, and one that reads
an undeclared column gets an error naming it and what it declares (the join's answers against Feast's are in
``tests/integration/test_features.py``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pyarrow as pa
import pytest

from mlplatform.features.point_in_time import _with_on_demand


class OnDemandView:
    """The parts of a Feast on-demand view the join reads, with a transformation given as a function."""

    def __init__(self, udf: Any) -> None:
        self.name = "context"
        source = SimpleNamespace(features=[SimpleNamespace(name="mean_7d")])
        request = SimpleNamespace(schema=[SimpleNamespace(name="amount")])
        self.source_feature_view_projections = {"stats": source}
        self.source_request_sources = {"request": request}
        self.projection = SimpleNamespace(features=[SimpleNamespace(name="ratio")])
        self.udf = udf
        self.seen: list[str] = []

    def transform_arrow(self, table: pa.Table, full_feature_names: bool) -> pa.Table:
        self.seen = list(table.column_names)
        return pa.Table.from_pydict(self.udf(table.to_pydict()))


TABLE = pa.table({"row": [0, 1], "amount": [10.0, 30.0], "mean_7d": [5.0, None], "label": [0, 1]})


def test_the_transformation_gets_its_declared_columns_and_its_features_are_appended() -> None:
    view = OnDemandView(
        lambda inputs: {
            "ratio": [a / m if m else None for a, m in zip(inputs["amount"], inputs["mean_7d"], strict=True)]
        }
    )
    joined = _with_on_demand(view, TABLE)
    assert view.seen == ["amount", "mean_7d"]
    assert joined.column("ratio").to_pylist() == [2.0, None]
    assert joined.column_names == [*TABLE.column_names, "ratio"]


def test_a_transformation_reading_an_undeclared_column_is_told_which() -> None:
    view = OnDemandView(lambda inputs: {"ratio": inputs["label"]})
    with pytest.raises(ValueError, match=r"'context' reads 'label', which it does not declare.*'amount', 'mean_7d'"):
        _with_on_demand(view, TABLE)
