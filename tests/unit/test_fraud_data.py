"""The synthetic fraud data: reproducible, plausible, drift only where asked, aggregates without look-ahead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlplatform.demo.fraud_data import CATEGORIES, DEFAULT_END, TRANSACTION_STATS_FEATURES, generate

END = datetime(2025, 6, 1, tzinfo=UTC)
FILES = ("customer_profile", "transaction_stats", "transactions")


def _read(directory: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(directory / f"{name}.parquet") for name in FILES}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("fraud")
    generate(directory, customers=300, days=20, end=END, seed=11)
    return directory


def test_same_seed_same_bytes_and_other_seed_differs(small: Path, tmp_path: Path) -> None:
    generate(tmp_path / "again", customers=300, days=20, end=END, seed=11)
    generate(tmp_path / "other", customers=300, days=20, end=END, seed=12)
    for name in FILES:
        first = (small / f"{name}.parquet").read_bytes()
        assert first == (tmp_path / "again" / f"{name}.parquet").read_bytes(), name
    assert not _read(small)["transactions"].equals(_read(tmp_path / "other")["transactions"])


def test_schema_and_plausibility(small: Path) -> None:
    frames = _read(small)
    txns = frames["transactions"]
    assert list(txns.columns) == [
        "transaction_id",
        "customer_id",
        "event_timestamp",
        "amount",
        "merchant_category",
        "is_fraud",
        "labelled_at",
    ]
    assert list(frames["transaction_stats"].columns) == ["customer_id", "event_timestamp", *TRANSACTION_STATS_FEATURES]
    assert list(frames["customer_profile"].columns) == [
        "customer_id",
        "event_timestamp",
        "created",
        "account_age_days",
        "credit_limit",
        "home_region_risk",
    ]
    for frame in frames.values():
        assert str(frame["event_timestamp"].dt.tz) == "UTC"
        assert frame["customer_id"].dtype == np.int64
    assert txns["transaction_id"].is_unique
    assert set(txns["is_fraud"].unique()) <= {0, 1}
    assert set(txns["merchant_category"].unique()) <= set(CATEGORIES)
    assert (txns["amount"] > 0).all()
    assert txns["event_timestamp"].min() >= END - timedelta(days=20)
    assert txns["event_timestamp"].max() < END
    assert 0.01 <= txns["is_fraud"].mean() <= 0.03
    delay_days = (txns["labelled_at"] - txns["event_timestamp"]).dt.total_seconds() / 86_400
    fraud = txns["is_fraud"] == 1
    assert delay_days[~fraud].between(2, 10).all()
    assert 2 <= delay_days[fraud].median() <= 4 and (delay_days[fraud] > 0).all()
    fraud_median = txns.loc[txns["is_fraud"] == 1, "amount"].median()
    assert fraud_median > 2 * txns.loc[txns["is_fraud"] == 0, "amount"].median()


def test_default_end_is_fixed() -> None:
    assert datetime(2025, 6, 1, tzinfo=UTC) == DEFAULT_END


def test_naive_end_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(tmp_path, customers=5, days=2, end=datetime(2025, 1, 1))


def test_drift_changes_only_rows_after_the_date(small: Path, tmp_path: Path) -> None:
    drift_at = END - timedelta(days=8)
    generate(tmp_path, customers=300, days=20, end=END, seed=11, drift_after=drift_at)
    plain, drifted = _read(small), _read(tmp_path)
    for name in FILES:
        before_plain = plain[name][plain[name]["event_timestamp"] < drift_at].reset_index(drop=True)
        before_drift = drifted[name][drifted[name]["event_timestamp"] < drift_at].reset_index(drop=True)
        pd.testing.assert_frame_equal(before_plain, before_drift, obj=name)
    after_plain = plain["transactions"][plain["transactions"]["event_timestamp"] >= drift_at]
    after_drift = drifted["transactions"][drifted["transactions"]["event_timestamp"] >= drift_at]
    assert after_drift["amount"].median() > 1.2 * after_plain["amount"].median()
    assert len(after_drift) > 1.3 * len(after_plain)
    online = ["online_retail", "foreign_online"]
    assert after_drift["merchant_category"].isin(online).mean() > after_plain["merchant_category"].isin(online).mean()


def _brute_force_stats(txns: pd.DataFrame, customer: int, at: pd.Timestamp) -> dict[str, float]:
    """Aggregates straight from the definition: transactions of the customer strictly before ``at``."""
    mine = txns[(txns["customer_id"] == customer) & (txns["event_timestamp"] < at)]

    def within(delta: timedelta) -> pd.DataFrame:
        return mine[mine["event_timestamp"] >= at - delta]

    day, week, month = within(timedelta(days=1)), within(timedelta(days=7)), within(timedelta(days=30))
    return {
        "txn_count_1h": len(within(timedelta(hours=1))),
        "txn_count_24h": len(day),
        "txn_count_7d": len(week),
        "amount_sum_24h": day["amount"].sum(),
        "amount_mean_7d": week["amount"].mean() if len(week) else np.nan,
        "amount_mean_30d": month["amount"].mean() if len(month) else np.nan,
        "amount_std_30d": month["amount"].std() if len(month) > 1 else np.nan,
        "distinct_categories_7d": week["merchant_category"].nunique(),
    }


def test_aggregates_use_only_transactions_strictly_before_the_snapshot(tmp_path: Path) -> None:
    # days=40 > the 30-day window, so the early part of the range is checked against transactions in range only
    # when the window fits inside it; warm-up transactions are not in transactions.parquet.
    generate(tmp_path, customers=40, days=40, end=END, seed=5)
    frames = _read(tmp_path)
    txns, stats = frames["transactions"], frames["transaction_stats"]
    first_full = txns["event_timestamp"].min() + timedelta(days=31)
    checkable = stats[stats["event_timestamp"] >= first_full]
    sample = checkable.sample(n=150, random_state=0)
    for row in sample.itertuples(index=False):
        expected = _brute_force_stats(txns, row.customer_id, row.event_timestamp)
        for name, value in expected.items():
            assert getattr(row, name) == pytest.approx(value, rel=1e-6, abs=1e-3, nan_ok=True), (name, row)
    # A snapshot exactly at a transaction's time must not include that transaction.
    txn = txns[txns["event_timestamp"] >= first_full].iloc[0]
    at_txn = _brute_force_stats(txns, txn["customer_id"], txn["event_timestamp"])
    after = _brute_force_stats(txns, txn["customer_id"], txn["event_timestamp"] + timedelta(seconds=1))
    assert after["txn_count_1h"] == at_txn["txn_count_1h"] + 1
    snap = stats[(stats["customer_id"] == txn["customer_id"]) & (stats["event_timestamp"] == txn["event_timestamp"])]
    if len(snap):
        assert snap["txn_count_1h"].iloc[0] == at_txn["txn_count_1h"]


def test_signal_is_learnable(tmp_path: Path) -> None:
    """The features the Feast repository serves separate fraud well (the demo model's premise)."""
    sklearn_ensemble = pytest.importorskip("sklearn.ensemble")
    from sklearn.metrics import roc_auc_score

    generate(tmp_path, customers=400, days=35, end=END, seed=3)
    frames = _read(tmp_path)
    txns = frames["transactions"].sort_values("event_timestamp")
    data = pd.merge_asof(txns, frames["transaction_stats"], on="event_timestamp", by="customer_id")
    profile = frames["customer_profile"].drop(columns="created")
    data = pd.merge_asof(data, profile, on="event_timestamp", by="customer_id")
    data["amount_to_mean_7d"] = data["amount"] / data["amount_mean_7d"]
    data["amount_zscore_30d"] = (data["amount"] - data["amount_mean_30d"]) / data["amount_std_30d"]
    features = [c for c in data.columns if c not in {"transaction_id", "customer_id", "event_timestamp"}]
    features = [c for c in features if c not in {"merchant_category", "is_fraud", "labelled_at"}]
    cut = data["event_timestamp"].quantile(0.7)
    train, test = data[data["event_timestamp"] < cut], data[data["event_timestamp"] >= cut]
    model = sklearn_ensemble.HistGradientBoostingClassifier(max_iter=60, random_state=0).fit(
        train[features], train["is_fraud"]
    )
    assert roc_auc_score(test["is_fraud"], model.predict_proba(test[features])[:, 1]) >= 0.85
