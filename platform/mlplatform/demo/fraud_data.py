"""A deterministic, seeded generator of a card-transaction fraud data set for the demo and the tests.

Why synthetic: the demo must run offline, reproducibly and in seconds, yet exercise every part of the loop
(point-in-time training sets, online features, drift).  The fraud signal is built to be learnable from the
features the Feast repository serves, and only from those:

* fraud comes in *episodes*: a compromised card sees a burst of transactions minutes apart, so the velocity
  aggregates (``txn_count_1h``, ``amount_sum_1h``, ``distinct_categories_7d``) rise before the 2nd, 3rd... fraud;
* fraudulent amounts are several times the customer's usual amount (``amount / amount_mean_7d``), while some
  legitimate "big ticket" purchases and small "card testing" frauds keep the problem from being trivial;
* new accounts (``account_age_days``) and risky home regions (``home_region_risk``) see more episodes;
* fraud prefers night hours and risky merchant categories (in the labelled data, for models that use them).

Labels arrive late, as they do at a card issuer (``labelled_at``): a fraud is known when its chargeback comes in,
days after the authorisation (log-normal, median 3 days); a legitimate transaction is known once its statement
closes undisputed (2 to 10 days).  The rollout demo delivers each label that long after its request was scored.

Every aggregate snapshot at time ``s`` is computed from transactions strictly before ``s``.  Snapshots are
written one second after each transaction (so the latest snapshot at a later transaction holds all earlier ones,
offline and online alike) and at every midnight (so features never go stale beyond a day).

``drift_after`` changes the world after that instant only (amounts scale up, more online/foreign merchants, more
transactions per day); every row before it is byte-for-byte the same as without drift, because the drift draws
come from their own random streams.

``end`` defaults to a fixed date so that runs are reproducible; the demo passes today's midnight (UTC) so that
materialising up to now leaves fresh features in the online store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

DESCRIPTION = "the synthetic card-fraud data set of the bundled fraud_detector model"
MODEL = "fraud_detector"
"""The bundled model these files feed: they belong in its data directory, ``settings.model_data_dir(MODEL)``."""
DEFAULT_END = datetime(2025, 6, 1, tzinfo=UTC)
"""Fixed default end of the time range, so that default runs are reproducible."""

WARMUP_DAYS = 30
"""Days of history simulated before the range so the 30-day aggregates are complete from its first day."""

DAY = 86_400
HOUR = 3_600
_SNAPSHOT_LAG_S = 1
_CHARGEBACK_MEDIAN_DAYS = 3.0
_STATEMENT_DAYS = (2.0, 10.0)
"""A transaction's aggregate snapshot is stamped this long after it, so it includes the transaction."""

CATEGORIES = (
    "grocery",
    "restaurant",
    "fuel",
    "retail",
    "online_retail",
    "travel",
    "electronics",
    "jewelry",
    "digital_goods",
    "gambling",
    "cash_withdrawal",
    "foreign_online",
)
_LEGIT_MIX = (0.24, 0.18, 0.12, 0.15, 0.14, 0.03, 0.04, 0.01, 0.04, 0.01, 0.03, 0.01)
_DRIFT_MIX = (0.18, 0.15, 0.09, 0.12, 0.22, 0.03, 0.04, 0.01, 0.07, 0.01, 0.02, 0.06)
_FRAUD_MIX = (0.02, 0.02, 0.03, 0.05, 0.18, 0.05, 0.20, 0.10, 0.17, 0.08, 0.05, 0.05)
_BIG_TICKET_MIX = (0.0, 0.05, 0.0, 0.25, 0.15, 0.30, 0.20, 0.05, 0.0, 0.0, 0.0, 0.0)

TRANSACTION_STATS_FEATURES = (
    "txn_count_1h",
    "txn_count_24h",
    "txn_count_7d",
    "amount_sum_1h",
    "amount_sum_24h",
    "amount_mean_7d",
    "amount_mean_30d",
    "amount_std_30d",
    "distinct_categories_7d",
)
CUSTOMER_PROFILE_FEATURES = ("account_age_days", "credit_limit", "home_region_risk")

_DRIFT_AMOUNT_SCALE = 1.4
_DRIFT_EXTRA_RATE = 0.5


@dataclass(frozen=True)
class GeneratedData:
    """Where the parquet files went and how many rows each holds."""

    out_dir: Path
    customer_profile: Path
    transaction_stats: Path
    transactions: Path
    customers: int
    profile_rows: int
    stats_rows: int
    transaction_rows: int
    fraud_rate: float
    start: datetime
    end: datetime

    def summary(self) -> str:
        """One line of what was written, for the command that wrote it."""
        return (
            f"{self.out_dir}: {self.transaction_rows:,} transactions (fraud rate {self.fraud_rate:.2%}), "
            f"{self.stats_rows:,} aggregate snapshots, {self.profile_rows:,} profile rows, "
            f"{self.start.date()} .. {self.end.date()}"
        )

    @property
    def rows(self) -> int:
        """The labelled events: what the closed loop reports as written (its ``DataSummary``)."""
        return self.transaction_rows


@dataclass(frozen=True)
class _Customers:
    """Latent per-customer traits (index i is customer ``ids[i]``)."""

    ids: np.ndarray
    created_s: np.ndarray
    home_region_risk: np.ndarray
    credit_limit: np.ndarray
    usual_log_amount: np.ndarray
    daily_rate: np.ndarray


def generate(
    out_dir: Path,
    *,
    customers: int = 2000,
    days: int = 90,
    end: datetime | None = None,
    seed: int = 7,
    drift_after: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> GeneratedData:
    """Generate the three parquet files into ``out_dir`` (created if missing) and describe them.

    The range is ``[end - days, end)``; ``end`` must be timezone-aware (default ``DEFAULT_END``).
    """
    say = progress or (lambda _message: None)
    end = _check_inputs(customers, days, end or DEFAULT_END, drift_after)
    end_s = int(end.timestamp())
    start_s = end_s - days * DAY
    warm_s = start_s - WARMUP_DAYS * DAY
    streams = np.random.SeedSequence(seed).spawn(8)
    rngs = [np.random.default_rng(stream) for stream in streams]

    say(f"customers: {customers}")
    people = _customers(rngs[0], customers, warm_s, end_s)
    say("transactions")
    txns = pd.concat(
        [_legit(rngs[1], people, warm_s, end_s), _fraud(rngs[2], people, warm_s, end_s)], ignore_index=True
    )
    if drift_after is not None:
        say(f"drift after {drift_after.isoformat()}")
        txns = _apply_drift(rngs[3], rngs[4], txns, people, int(drift_after.timestamp()), end_s)
    txns = _finish_transactions(txns, people, end_s)
    say(f"aggregates over {len(txns):,} transactions")
    stats = transaction_stats(txns, people.ids, people.created_s, start_s, end_s)
    profile = _profiles(rngs[5], people, start_s, end_s)
    labelled = _labelled(txns, start_s, _label_delays(rngs[6], rngs[7], txns))

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / f"{name}.parquet" for name in ("customer_profile", "transaction_stats", "transactions")}
    for name, frame in (("customer_profile", profile), ("transaction_stats", stats), ("transactions", labelled)):
        say(f"writing {paths[name]} ({len(frame):,} rows)")
        frame.to_parquet(paths[name], index=False)
    return GeneratedData(
        out_dir=out_dir,
        customer_profile=paths["customer_profile"],
        transaction_stats=paths["transaction_stats"],
        transactions=paths["transactions"],
        customers=customers,
        profile_rows=len(profile),
        stats_rows=len(stats),
        transaction_rows=len(labelled),
        fraud_rate=float(labelled["is_fraud"].mean()) if len(labelled) else 0.0,
        start=datetime.fromtimestamp(start_s, UTC),
        end=end,
    )


def _check_inputs(customers: int, days: int, end: datetime, drift_after: datetime | None) -> datetime:
    """Reject inputs that would silently produce nonsense (naive datetimes are ambiguous about the zone)."""
    if customers < 1 or days < 1:
        raise ValueError(f"generate needs customers >= 1 and days >= 1, got customers={customers}, days={days}")
    for label, value in (("end", end), ("drift_after", drift_after)):
        if value is not None and value.tzinfo is None:
            raise ValueError(f"generate: {label}={value.isoformat()} must be timezone-aware (e.g. UTC)")
    return end.astimezone(UTC)


def _customers(rng: np.random.Generator, n: int, warm_s: int, end_s: int) -> _Customers:
    """Draw latent traits; 20% of accounts open during the simulated period (the 'new account' risk)."""
    is_new = rng.random(n) < 0.2
    old_created = warm_s - rng.uniform(60, 3650, n) * DAY
    new_created = warm_s + rng.uniform(0, max(end_s - warm_s - 5 * DAY, DAY), n)
    created = np.where(is_new, new_created, old_created).astype(np.int64)
    return _Customers(
        ids=np.arange(1001, 1001 + n, dtype=np.int64),
        created_s=created,
        home_region_risk=np.round(rng.beta(2, 8, n), 4),
        credit_limit=np.round(rng.lognormal(np.log(5000), 0.6, n), -2).clip(500, 50_000),
        usual_log_amount=rng.normal(np.log(40), 0.5, n),
        daily_rate=rng.gamma(2.0, 1.0, n).clip(0.1, 10),
    )


def _time_of_day(rng: np.random.Generator, n: int, night_share: float) -> np.ndarray:
    """Seconds into the day: mostly daytime (08-22h, peaking mid-day), a ``night_share`` between 00-06h."""
    day = rng.normal(14.5, 3.5, n).clip(7, 23.9) * HOUR
    night = rng.uniform(0, 6, n) * HOUR
    return np.where(rng.random(n) < night_share, night, day).astype(np.int64)


def _poisson_times(
    rng: np.random.Generator,
    rate_per_day: np.ndarray,
    begin_s: np.ndarray,
    end_s: int | np.ndarray,
    night_share: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Event counts per customer over ``[begin, end)`` at a daily rate; returns (customer index, time)."""
    end_each = np.broadcast_to(np.asarray(end_s, dtype=np.int64), begin_s.shape)
    span_days = np.maximum(end_each - begin_s, 0) / DAY
    counts = rng.poisson(rate_per_day * span_days)
    owner = np.repeat(np.arange(len(counts)), counts)
    day_index = np.floor(rng.random(len(owner)) * span_days[owner])
    day_start = (begin_s[owner] // DAY + day_index.astype(np.int64)) * DAY
    times = day_start + _time_of_day(rng, len(owner), night_share)
    keep = (times >= begin_s[owner]) & (times < end_each[owner])
    return owner[keep], times[keep]


def _legit(rng: np.random.Generator, people: _Customers, warm_s: int, end_s: int) -> pd.DataFrame:
    """Everyday purchases around each customer's usual amount, plus rare big-ticket ones that look risky."""
    begin = np.maximum(people.created_s, warm_s)
    owner, times = _poisson_times(rng, people.daily_rate, begin, end_s, night_share=0.03)
    n = len(owner)
    big = rng.random(n) < 0.02
    log_amount = people.usual_log_amount[owner] + rng.normal(0, 0.55, n) + np.where(big, rng.normal(1.4, 0.4, n), 0)
    category = np.where(big, _choice(rng, _BIG_TICKET_MIX, n), _choice(rng, _LEGIT_MIX, n))
    return _frame(owner, times, np.exp(log_amount), category, np.zeros(n, dtype=np.int64))


def _fraud(rng: np.random.Generator, people: _Customers, warm_s: int, end_s: int) -> pd.DataFrame:
    """Fraud episodes: bursts minutes apart, at night more often, large amounts in risky categories.

    Intensity grows with home-region risk, and new accounts get extra episodes in their first 30 days.
    """
    begin = np.maximum(people.created_s, warm_s)
    rate = 0.007 * (0.3 + 3.5 * people.home_region_risk)
    owner, first = _poisson_times(rng, rate, begin, end_s, night_share=0.45)
    new_account = people.created_s >= warm_s
    young_end = np.minimum(people.created_s + 30 * DAY, end_s)
    young_owner, young_first = _poisson_times(rng, np.where(new_account, 0.03, 0.0), begin, young_end, 0.45)
    owner = np.concatenate([owner, young_owner])
    first = np.concatenate([first, young_first])

    sizes = 1 + rng.poisson(3.5, len(owner))
    episode = np.repeat(np.arange(len(owner)), sizes)
    position = np.arange(len(episode)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    gaps = np.where(position == 0, 0.0, rng.exponential(9 * 60, len(episode)))
    offsets = pd.Series(gaps).groupby(episode).cumsum().to_numpy()
    times = first[episode] + offsets.astype(np.int64)
    who = owner[episode]
    n = len(episode)
    testing = (position == 0) & (rng.random(n) < 0.3)
    log_amount = people.usual_log_amount[who] + rng.normal(1.4, 0.7, n)
    amounts = np.where(testing, rng.uniform(1, 5, n), np.exp(log_amount))
    category = np.where(testing, "digital_goods", _choice(rng, _FRAUD_MIX, n))
    keep = times < end_s
    return _frame(who[keep], times[keep], amounts[keep], category[keep], np.ones(int(keep.sum()), dtype=np.int64))


def _apply_drift(
    rng_mix: np.random.Generator,
    rng_extra: np.random.Generator,
    txns: pd.DataFrame,
    people: _Customers,
    drift_s: int,
    end_s: int,
) -> pd.DataFrame:
    """After ``drift_s`` only: more legitimate transactions, larger amounts, more online/foreign merchants."""
    begin = np.maximum(people.created_s, drift_s)
    owner, times = _poisson_times(rng_extra, people.daily_rate * _DRIFT_EXTRA_RATE, begin, end_s, 0.05)
    n = len(owner)
    log_amount = people.usual_log_amount[owner] + rng_extra.normal(0, 0.55, n)
    extra = _frame(owner, times, np.exp(log_amount), _choice(rng_extra, _DRIFT_MIX, n), np.zeros(n, dtype=np.int64))
    txns = pd.concat([txns, extra], ignore_index=True)
    after = (txns["_t"] >= drift_s).to_numpy()
    txns.loc[after, "amount"] = txns.loc[after, "amount"] * _DRIFT_AMOUNT_SCALE
    legit_after = after & (txns["is_fraud"] == 0).to_numpy()
    redraw = legit_after & (rng_mix.random(len(txns)) < 0.5)
    txns.loc[redraw, "merchant_category"] = _choice(rng_mix, _DRIFT_MIX, int(redraw.sum()))
    return txns


def _choice(rng: np.random.Generator, mix: tuple[float, ...], n: int) -> np.ndarray:
    """Draw ``n`` merchant categories from a mix (normalised, so rounding in the table never matters)."""
    p = np.asarray(mix, dtype=float)
    return np.asarray(CATEGORIES, dtype=object)[rng.choice(len(CATEGORIES), size=n, p=p / p.sum())]


def _frame(
    owner: np.ndarray, times: np.ndarray, amount: np.ndarray, category: np.ndarray, fraud: np.ndarray
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "_owner": owner.astype(np.int64),
            "_t": times.astype(np.int64),
            "amount": amount,
            "merchant_category": category,
            "is_fraud": fraud,
        }
    )


def _finish_transactions(txns: pd.DataFrame, people: _Customers, end_s: int) -> pd.DataFrame:
    """Sort by time, round amounts to cents, number the transactions (ids are stable under later drift)."""
    txns = txns[txns["_t"] < end_s].copy()
    txns["amount"] = np.round(txns["amount"].to_numpy(), 2).clip(0.5, None)
    txns["customer_id"] = people.ids[txns["_owner"].to_numpy()]
    txns = txns.sort_values(["_t", "customer_id", "amount", "merchant_category"], kind="stable", ignore_index=True)
    txns["transaction_id"] = np.arange(1, len(txns) + 1, dtype=np.int64)
    return txns


def transaction_stats(
    txns: pd.DataFrame, ids: np.ndarray, created_s: np.ndarray, start_s: int, end_s: int
) -> pd.DataFrame:
    """Rolling aggregates per customer at each snapshot, from transactions strictly before the snapshot.

    ``txns`` needs ``_owner`` (customer index), ``_t`` (epoch seconds), ``amount`` and ``merchant_category``.
    Snapshots: one second after each transaction and every midnight, within ``[start, end]``.
    """
    snap_owner, snap_t = _snapshot_times(txns, created_s, start_s, end_s)
    order = np.lexsort((txns["_t"].to_numpy(), txns["_owner"].to_numpy()))
    owner = txns["_owner"].to_numpy()[order]
    t = txns["_t"].to_numpy()[order]
    amount = txns["amount"].to_numpy(dtype=float)[order]
    category = txns["merchant_category"].to_numpy()[order]

    # One sorted key per (customer, time): a window [s - w, s) never reaches into another customer's range.
    base = int(t.min()) - 31 * DAY if len(t) else 0
    stride = np.int64(10**10)
    keys = owner.astype(np.int64) * stride + (t - base)
    snap_keys = snap_owner.astype(np.int64) * stride + (snap_t - base)
    hi = np.searchsorted(keys, snap_keys, side="left")

    def window(seconds: int) -> np.ndarray:
        return np.asarray(hi - np.searchsorted(keys, snap_keys - seconds, side="left"), dtype=np.int64)

    def window_sum(values: np.ndarray, seconds: int) -> np.ndarray:
        cumulative = np.concatenate([[0.0], np.cumsum(values)])
        lo = np.searchsorted(keys, snap_keys - seconds, side="left")
        return np.asarray(cumulative[hi] - cumulative[lo], dtype=float)

    count_7d, count_30d = window(7 * DAY), window(30 * DAY)
    sum_30d = window_sum(amount, 30 * DAY)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_30d = np.where(count_30d > 0, sum_30d / count_30d, np.nan)
        variance = (window_sum(amount**2, 30 * DAY) - count_30d * mean_30d**2) / (count_30d - 1)
        std_30d = np.where(count_30d > 1, np.sqrt(np.clip(variance, 0, None)), np.nan)
        mean_7d = np.where(count_7d > 0, window_sum(amount, 7 * DAY) / count_7d, np.nan)
    distinct = sum(window_sum((category == name).astype(float), 7 * DAY) > 0.5 for name in CATEGORIES)
    stats = pd.DataFrame(
        {
            "customer_id": ids[snap_owner],
            "event_timestamp": _utc(snap_t),
            "txn_count_1h": window(HOUR),
            "txn_count_24h": window(DAY),
            "txn_count_7d": count_7d,
            "amount_sum_1h": np.round(window_sum(amount, HOUR), 2),
            "amount_sum_24h": np.round(window_sum(amount, DAY), 2),
            "amount_mean_7d": np.round(mean_7d, 4),
            "amount_mean_30d": np.round(mean_30d, 4),
            "amount_std_30d": np.round(std_30d, 4),
            "distinct_categories_7d": np.asarray(distinct, dtype=np.int64),
        }
    )
    for column in ("txn_count_1h", "txn_count_24h", "txn_count_7d"):
        stats[column] = stats[column].astype(np.int64)
    return stats


def _snapshot_times(
    txns: pd.DataFrame, created_s: np.ndarray, start_s: int, end_s: int
) -> tuple[np.ndarray, np.ndarray]:
    """(customer index, time) of every snapshot, sorted by time then customer, without duplicates."""
    after_txn = txns["_t"].to_numpy() + _SNAPSHOT_LAG_S
    txn_owner = txns["_owner"].to_numpy()
    midnights = np.arange(start_s, end_s + 1, DAY, dtype=np.int64)
    day_owner = np.repeat(np.arange(len(created_s)), len(midnights))
    day_t = np.tile(midnights, len(created_s))
    owner = np.concatenate([txn_owner, day_owner])
    t = np.concatenate([after_txn, day_t])
    keep = (t >= start_s) & (t <= end_s) & (t >= created_s[owner])
    frame = pd.DataFrame({"o": owner[keep], "t": t[keep]}).drop_duplicates()
    frame = frame.sort_values(["t", "o"], kind="stable")
    return frame["o"].to_numpy(), frame["t"].to_numpy()


def _profiles(rng: np.random.Generator, people: _Customers, start_s: int, end_s: int) -> pd.DataFrame:
    """Slowly changing customer attributes: a row when the account opens and then every 30 days.

    The first row of an older account is stamped 30 days before the range so every transaction has one.
    """
    first = np.maximum(people.created_s, start_s - 30 * DAY)
    rows = ((end_s - first) // (30 * DAY) + 1).astype(np.int64)
    owner = np.repeat(np.arange(len(first)), rows)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(rows) - rows, rows)
    t = first[owner] + k * 30 * DAY
    raises = rng.random(len(owner)) < 0.1
    limit_factor = pd.Series(np.where(raises & (k > 0), 1.25, 1.0)).groupby(owner).cumprod().to_numpy()
    risk_walk = pd.Series(np.where(k > 0, rng.normal(0, 0.01, len(owner)), 0.0)).groupby(owner).cumsum().to_numpy()
    timestamps = _utc(t)
    profile = pd.DataFrame(
        {
            "customer_id": people.ids[owner],
            "event_timestamp": timestamps,
            "created": timestamps,
            "account_age_days": ((t - people.created_s[owner]) // DAY).astype(np.int64),
            "credit_limit": np.round(people.credit_limit[owner] * limit_factor, -2),
            "home_region_risk": np.round(np.clip(people.home_region_risk[owner] + risk_walk, 0, 1), 4),
        }
    )
    return profile.sort_values(["event_timestamp", "customer_id"], kind="stable", ignore_index=True)


def _label_delays(rng_fraud: np.random.Generator, rng_legit: np.random.Generator, txns: pd.DataFrame) -> np.ndarray:
    """Seconds from each transaction to its label: a chargeback for fraud, a closed statement for the rest.

    Drawn per transaction id from streams of their own, so a transaction keeps its delay when drift adds others.
    """
    ids = txns["transaction_id"].to_numpy()
    size = int(ids.max()) + 1 if len(ids) else 0
    chargeback = np.exp(np.log(_CHARGEBACK_MEDIAN_DAYS) + 0.7 * rng_fraud.standard_normal(size))[ids]
    statement = rng_legit.uniform(*_STATEMENT_DAYS, size)[ids]
    days = np.where(txns["is_fraud"].to_numpy() == 1, chargeback, statement)
    delays: np.ndarray = np.round(days * DAY).astype(np.int64)
    return delays


def _labelled(txns: pd.DataFrame, start_s: int, label_delays: np.ndarray) -> pd.DataFrame:
    """The labelled entity rows: transactions inside the range (the warm-up only feeds the aggregates)."""
    inside_mask = (txns["_t"] >= start_s).to_numpy()
    inside = txns[inside_mask]
    return pd.DataFrame(
        {
            "transaction_id": inside["transaction_id"].to_numpy(),
            "customer_id": inside["customer_id"].to_numpy(dtype=np.int64),
            "event_timestamp": _utc(inside["_t"].to_numpy()),
            "amount": inside["amount"].to_numpy(dtype=float),
            "merchant_category": inside["merchant_category"].to_numpy(dtype=object),
            "is_fraud": inside["is_fraud"].to_numpy(dtype=np.int64),
            "labelled_at": _utc(inside["_t"].to_numpy() + label_delays[inside_mask]),
        }
    )


def _utc(seconds: np.ndarray) -> pd.DatetimeIndex:
    """Epoch seconds as timezone-aware UTC timestamps at microsecond resolution (what parquet readers expect)."""
    return pd.to_datetime(np.asarray(seconds, dtype=np.int64), unit="s", utc=True).as_unit("us")


def window_start(end: datetime, days: int) -> datetime:
    """The first instant of the range that ``generate(end=end, days=days)`` covers."""
    return end - timedelta(days=days)
