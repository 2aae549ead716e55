"""Request-time features of the card-fraud demo: what features.yaml cannot say.

The amount of the transaction being scored is only known at request time, so it comes from a request source, and
``transaction_context`` relates it to the customer's recent spending (the ``transaction_stats`` view of
features.yaml).  The platform loads this file by path and calls ``build_definitions`` (schema and contract:
``mlplatform.features.declarative``).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

OWNER = "fraud-ml@mlplatform.local"
CONTEXT_FEATURES = ("txn_amount", "amount_to_mean_7d", "amount_to_mean_30d", "amount_zscore_30d")


def transaction_context(inputs: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """How unusual the requested amount is for this customer (python mode: lists in, lists out).

    Missing history (no snapshot, no spending in the window) gives ``None`` rather than 0 or infinity, so the
    model sees "unknown" instead of a fake extreme.  Self-contained (no module globals) because Feast stores the
    function's source and bytecode in the registry.
    """
    import math

    def ratio(numerator: Any, denominator: Any) -> float | None:
        if numerator is None or denominator is None:
            return None
        numerator, denominator = float(numerator), float(denominator)
        if math.isnan(numerator) or math.isnan(denominator) or denominator <= 0:
            return None
        return numerator / denominator

    amounts = inputs["amount"]
    mean_7d, mean_30d, std_30d = inputs["amount_mean_7d"], inputs["amount_mean_30d"], inputs["amount_std_30d"]
    zscores = []
    for amount, mean, std in zip(amounts, mean_30d, std_30d, strict=True):
        excess = None if amount is None or mean is None else float(amount) - float(mean)
        zscores.append(ratio(excess, std) if excess is None or not math.isnan(excess) else None)
    return {
        "txn_amount": [None if amount is None else float(amount) for amount in amounts],
        "amount_to_mean_7d": [ratio(a, m) for a, m in zip(amounts, mean_7d, strict=True)],
        "amount_to_mean_30d": [ratio(a, m) for a, m in zip(amounts, mean_30d, strict=True)],
        "amount_zscore_30d": zscores,
    }


def build_definitions(views: dict[str, Any], data_dir: Path) -> list[object]:
    """The request source and the on-demand view over it and ``transaction_stats``."""
    from feast import Field, RequestSource
    from feast.on_demand_feature_view import OnDemandFeatureView
    from feast.types import Float64

    request = RequestSource(
        name="transaction_request",
        schema=[Field(name="amount", dtype=Float64)],
        description="The amount of the transaction being scored, known only at request time.",
    )
    context = OnDemandFeatureView(
        name="transaction_context",
        sources=[views["transaction_stats"], request],
        schema=[Field(name=name, dtype=Float64) for name in CONTEXT_FEATURES],
        udf=transaction_context,
        udf_string=inspect.getsource(transaction_context),
        mode="python",
        description="The requested amount relative to the customer's recent spending.",
        tags={"domain": "fraud", "computed": "request-time"},
        owner=OWNER,
    )
    return [request, context]
