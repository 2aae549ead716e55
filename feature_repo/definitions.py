"""Feast definitions of the fraud demo: one entity, two batch feature views, one on-demand view, one service.

Built by a function rather than at import time because the parquet locations come from the platform's settings
(``settings.data_dir``), which are read once at an entry point and passed down.  The platform loads this file by
path (``mlplatform.features.store``), never as a package.

Source files are written by ``mlplatform data generate`` (``mlplatform.demo.fraud_data``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

FEATURE_SERVICE = "fraud_detector_v1"
OWNER = "fraud-ml@mlplatform.local"

PROFILE_FEATURES = {"account_age_days": "int", "credit_limit": "float", "home_region_risk": "float"}
STATS_FEATURES = {
    "txn_count_1h": "int",
    "txn_count_24h": "int",
    "txn_count_7d": "int",
    "amount_sum_1h": "float",
    "amount_sum_24h": "float",
    "amount_mean_7d": "float",
    "amount_mean_30d": "float",
    "amount_std_30d": "float",
    "distinct_categories_7d": "int",
}
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


def build_definitions(data_dir: Path) -> list[object]:
    """All Feast objects of this repository, with sources under ``data_dir``; order matches ``feast apply``."""
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, RequestSource, ValueType
    from feast.on_demand_feature_view import OnDemandFeatureView
    from feast.types import Float64, Int64

    dtypes = {"int": Int64, "float": Float64}
    customer = Entity(
        name="customer",
        join_keys=["customer_id"],
        value_type=ValueType.INT64,
        description="A card holder; every transaction belongs to one.",
    )
    profile_source = FileSource(
        name="customer_profile_source",
        path=str(data_dir / "customer_profile.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
        description="Slowly changing customer attributes, one row per customer per change.",
    )
    stats_source = FileSource(
        name="transaction_stats_source",
        path=str(data_dir / "transaction_stats.parquet"),
        timestamp_field="event_timestamp",
        description="Rolling spend aggregates per customer, from transactions strictly before each snapshot.",
    )
    profile = FeatureView(
        name="customer_profile",
        entities=[customer],
        ttl=timedelta(days=365),
        schema=[Field(name=name, dtype=dtypes[kind]) for name, kind in PROFILE_FEATURES.items()],
        source=profile_source,
        online=True,
        description="Account age, credit limit and home-region risk; changes monthly at most.",
        tags={"domain": "fraud", "freshness": "daily"},
        owner=OWNER,
    )
    stats = FeatureView(
        name="transaction_stats",
        entities=[customer],
        ttl=timedelta(days=2),
        schema=[Field(name=name, dtype=dtypes[kind]) for name, kind in STATS_FEATURES.items()],
        source=stats_source,
        online=True,
        description="Velocity and spend aggregates over 1h/24h/7d/30d; older than 2 days counts as missing.",
        tags={"domain": "fraud", "freshness": "per-transaction"},
        owner=OWNER,
    )
    request = RequestSource(
        name="transaction_request",
        schema=[Field(name="amount", dtype=Float64)],
        description="The amount of the transaction being scored, known only at request time.",
    )
    context = OnDemandFeatureView(
        name="transaction_context",
        sources=[stats, request],
        schema=[Field(name=name, dtype=Float64) for name in CONTEXT_FEATURES],
        udf=_by_value(transaction_context),
        udf_string=_source_of(transaction_context),
        mode="python",
        description="The requested amount relative to the customer's recent spending.",
        tags={"domain": "fraud", "computed": "request-time"},
        owner=OWNER,
    )
    service = FeatureService(
        name=FEATURE_SERVICE,
        features=[profile, stats, context],
        description="Features of the card-fraud model, version 1.",
        tags={"model": "fraud_detector", "domain": "fraud"},
        owner=OWNER,
    )
    return [customer, profile_source, stats_source, profile, stats, request, context, service]


def _source_of(function: Any) -> str:
    """The function's source text, which Feast keeps in the registry for display."""
    import inspect

    return inspect.getsource(function)


def _by_value(function: Any) -> Any:
    """A copy of ``function`` that Feast's dill pickles by value, not as a reference to this module.

    This file is loaded by path under a private module name, so a by-reference pickle would not load in another
    process (a model server).  Feast's own ``@on_demand_feature_view`` decorator does the same (module
    ``__main__``); the copy leaves the module's function untouched.
    """
    import types

    copy = types.FunctionType(function.__code__, {"__builtins__": __builtins__}, function.__name__)
    copy.__module__ = "__main__"
    copy.__doc__ = function.__doc__
    return copy
