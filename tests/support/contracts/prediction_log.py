"""The prediction log: one contract, run against every backend (sqlite in tests/unit, PostgreSQL in
tests/integration)."""

from __future__ import annotations

import math
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from mlplatform.config import Settings, get_settings
from mlplatform.predictions.reader import read_prediction_log, sample_prediction_log
from mlplatform.predictions.records import BASE_COLUMNS, SAMPLE_COLUMNS, PredictionRecord
from mlplatform.predictions.writer import open_prediction_log
from mlplatform.store import PlatformStore

MODEL = "fraud_detector"
# Starts just before a UTC midnight so the records span two date partitions.
T0 = datetime(2026, 3, 1, 23, 59, 0, tzinfo=UTC)
THREADS = 4
PER_THREAD = 150


def log_settings(state_dir: Path, kind: str, *, migrate: bool = True, **serving: Any) -> Settings:
    """Settings for one prediction-log backend with small batches and a short flush interval; a database log's
    schema is migrated first, as `mlplatform db upgrade` does before model servers start."""
    options: dict[str, Any] = {"log_batch_size": 40, "log_flush_interval_s": 0.05, **serving}
    settings = get_settings(state_dir=state_dir, serving={"prediction_log": kind, **options})
    if kind == "postgres" and migrate:
        PlatformStore.migrated(settings.serving.prediction_log_url or settings.db_url).dispose()
    return settings


def make_record(index: int, *, model: str = MODEL, features: dict[str, float | None] | None = None) -> PredictionRecord:
    return PredictionRecord(
        request_id=f"req-{index:05d}",
        timestamp=T0 + timedelta(milliseconds=250 * index),
        model_name=model,
        model_version=str(1 + index % 2),
        entity={"customer_id": 1000 + index},
        features=features if features is not None else {"amount": index * 1.5, "txn_count_24h": None},
        score=(index % 100) / 100,
        label=index % 2,
    )


def check_contract(settings: Settings) -> None:
    """N records submitted from several threads are all persisted and read back with their values, in order."""
    written_calls: list[int] = []
    log = open_prediction_log(settings, on_write=written_calls.append)
    other = make_record(0, model="other_model")

    def submit_share(thread: int) -> None:
        indices = list(range(thread, THREADS * PER_THREAD, THREADS))
        for chunk in range(0, len(indices), 3):  # requests of 1-3 entities, as servers submit them
            assert log.submit([make_record(i) for i in indices[chunk : chunk + 3]]) == len(indices[chunk : chunk + 3])

    threads = [threading.Thread(target=submit_share, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log.submit([other]) == 1
    log.close()

    total = THREADS * PER_THREAD
    assert (log.written, log.dropped, sum(written_calls)) == (total + 1, 0, total + 1)
    frame = read_prediction_log(settings, MODEL)
    assert list(frame.columns) == [
        "request_id",
        "timestamp",
        "model_name",
        "model_version",
        "customer_id",
        "amount",
        "txn_count_24h",
        "score",
        "label",
        "arm",
        "shadow",
        "latency_s",
        "error",
    ]
    assert len(frame) == total
    assert frame["request_id"].tolist() == [f"req-{i:05d}" for i in range(total)]  # sorted by timestamp
    sample = frame.iloc[137]
    expected = make_record(137)
    assert sample["timestamp"] == expected.timestamp
    assert (sample["model_name"], sample["model_version"], sample["customer_id"]) == (MODEL, "2", 1137)
    assert (sample["amount"], sample["score"], sample["label"]) == (137 * 1.5, 0.37, 1)
    assert frame["txn_count_24h"].isna().all()
    assert str(frame["timestamp"].dtype) == "datetime64[us, UTC]"


def check_window(settings: Settings) -> None:
    """``start`` is inclusive, ``end`` exclusive, in UTC whatever zone the bounds are given in."""
    start = T0 + timedelta(seconds=50)  # record 200
    end = T0 + timedelta(seconds=75)  # record 300, excluded
    window = read_prediction_log(settings, MODEL, start, end)
    assert window["request_id"].tolist() == [f"req-{i:05d}" for i in range(200, 300)]
    plus_two = timezone(timedelta(hours=2))
    assert len(read_prediction_log(settings, MODEL, start.astimezone(plus_two), end.astimezone(plus_two))) == 100
    assert len(read_prediction_log(settings, MODEL, start=T0 + timedelta(seconds=140))) == THREADS * PER_THREAD - 560
    assert len(read_prediction_log(settings, MODEL, end=T0 + timedelta(seconds=1))) == 4
    assert read_prediction_log(settings, "other_model")["request_id"].tolist() == ["req-00000"]
    assert list(read_prediction_log(settings, "unknown_model").columns) == list(BASE_COLUMNS)


def check_regression_records(settings: Settings) -> None:
    """A regression model's records carry its predicted value as ``score`` and no class: the label reads back
    null (pandas' nullable ``Int64``), next to a classifier's labels in the same log."""
    log = open_prediction_log(settings)
    values = [12.5, -3.25, 1e6]
    records = [
        replace(make_record(index, model="regressor"), score=value, label=None) for index, value in enumerate(values)
    ]
    assert log.submit([*records, make_record(0, model="classifier")]) == 4
    log.close()
    frame = read_prediction_log(settings, "regressor")
    assert frame["score"].tolist() == values
    assert frame["label"].isna().all() and str(frame["label"].dtype) == "Int64"
    assert read_prediction_log(settings, "classifier")["label"].tolist() == [0]


SAMPLED_FEATURES = ["amount", "txn_count_24h", "not_logged"]


def _write_sampling_log(settings: Settings) -> tuple[datetime, datetime]:
    """1,200 records of the model over two date partitions (and one of another model); returns a window holding
    records 200-1099 (900 rows, 40 of them before midnight)."""
    log = open_prediction_log(settings)
    for first in range(0, 1200, 3):
        assert log.submit([make_record(index) for index in range(first, first + 3)]) == 3
    assert log.submit([make_record(500, model="other_model")]) == 1
    log.close()
    return T0 + timedelta(seconds=50), T0 + timedelta(seconds=275)


def check_sample(settings: Settings) -> None:
    """A window no larger than the cap is all of it, exactly as ``read_prediction_log`` gives it; a larger one is
    a uniform sample of exactly the cap, counted over the whole window, the same at every call."""
    start, end = _write_sampling_log(settings)
    whole = sample_prediction_log(settings, MODEL, start, end, features=SAMPLED_FEATURES, max_rows=900)
    read = read_prediction_log(settings, MODEL, start, end)
    columns = [*SAMPLE_COLUMNS, "amount", "txn_count_24h"]
    assert (whole.rows, whole.rows_by_version, whole.sampled) == (900, {"1": 450, "2": 450}, False)
    assert list(whole.frame.columns) == [*SAMPLE_COLUMNS, *SAMPLED_FEATURES]
    assert whole.frame[columns].equals(read[columns])
    assert whole.frame["not_logged"].isna().all() and str(whole.frame["not_logged"].dtype) == "float64"

    sample = sample_prediction_log(settings, MODEL, start, end, features=SAMPLED_FEATURES, max_rows=100)
    assert (sample.rows, sample.rows_by_version, sample.max_rows, sample.sampled) == (
        900,
        whole.rows_by_version,
        100,
        True,
    )
    assert len(sample.frame) == 100  # never more than the cap
    indices = (sample.frame["amount"] / 1.5).round().astype(int)
    assert indices.is_unique and indices.between(200, 1099).all()  # without replacement, inside the window
    assert sample.frame["timestamp"].is_monotonic_increasing
    assert (indices < 425).sum() > 10 and (indices >= 875).sum() > 10  # spread over the window, not its start
    assert abs(sample.frame["amount"].mean() - read["amount"].mean()) < 4 * read["amount"].std() / 10
    again = sample_prediction_log(settings, MODEL, start, end, features=SAMPLED_FEATURES, max_rows=100)
    assert again.frame.equals(sample.frame)

    empty = sample_prediction_log(settings, "unknown_model", start, end, features=["amount"], max_rows=100)
    assert (empty.rows, len(empty.frame), list(empty.frame.columns)) == (0, 0, [*SAMPLE_COLUMNS, "amount"])


def check_rollout_records(settings: Settings) -> None:
    """A rollout's records keep their arm, shadow flag, latency and failures; a window sample (what drift reads)
    holds the answered, scored rows only."""
    log = open_prediction_log(settings)
    answered = make_record(0)
    shadow = replace(make_record(0), model_version="9", arm="candidate", shadow=True, latency_s=0.004)
    failed = replace(make_record(1), arm="candidate", score=None, label=None, error="ValueError: " + "x" * 300)
    assert log.submit([answered, shadow, failed]) == 3
    log.close()
    frame = read_prediction_log(settings, MODEL)
    assert frame[["arm", "shadow"]].values.tolist() == [["champion", False], ["candidate", True], ["candidate", False]]
    assert frame["latency_s"].iloc[1] == 0.004 and frame["latency_s"].isna().tolist() == [True, False, True]
    assert frame["error"].iloc[2] == ("ValueError: " + "x" * 300)[:200] and frame["error"].iloc[0] is None
    assert math.isnan(frame["score"].iloc[2])
    sample = sample_prediction_log(settings, MODEL, None, None, features=["amount"], max_rows=100)
    assert (sample.rows, sample.frame["model_version"].tolist()) == (1, ["1"])
