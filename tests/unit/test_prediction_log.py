"""The prediction log: N records in from many threads -> N records out, overflow counted, nothing lost on close.

The contract (``check_contract``) runs here against the parquet sink and against the SQL sink on sqlite, and in
``tests/integration/test_prediction_log_postgres.py`` against a real PostgreSQL.  Fault cases (a sink that blocks
or fails) use small test sinks, named as such; nothing fakes a database.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlplatform.predictions.reader import read_prediction_log
from mlplatform.predictions.records import BASE_COLUMNS, PredictionRecord
from mlplatform.predictions.sinks import PredictionSink, Reservoir
from mlplatform.predictions.writer import BatchingPredictionLog, open_prediction_log
from tests.support.contracts.prediction_log import (
    MODEL,
    T0,
    check_contract,
    check_regression_records,
    check_rollout_records,
    check_sample,
    check_window,
    log_settings,
    make_record,
)
from tests.support.waiting import wait_for


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_n_records_in_from_many_threads_n_records_out(tmp_path: Path, kind: str) -> None:
    if kind == "sqlite":  # the SQL sink on sqlite: the PostgreSQL code path, minus the server
        settings = log_settings(tmp_path, "postgres", prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}")
    else:
        settings = log_settings(tmp_path, "parquet")
    check_contract(settings)
    check_window(settings)


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_regression_records_have_no_label(tmp_path: Path, kind: str) -> None:
    if kind == "sqlite":  # the SQL sink on sqlite: migration 0007 made the label nullable
        settings = log_settings(tmp_path, "postgres", prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}")
    else:
        settings = log_settings(tmp_path, "parquet")
    check_regression_records(settings)


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_rollout_records_keep_arm_shadow_latency_and_failures(tmp_path: Path, kind: str) -> None:
    if kind == "sqlite":  # the SQL sink on sqlite: migration 0011's columns
        settings = log_settings(tmp_path, "postgres", prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}")
    else:
        settings = log_settings(tmp_path, "parquet")
    check_rollout_records(settings)


@pytest.mark.parametrize("kind", ["parquet", "sqlite"])
def test_a_window_is_sampled_where_the_log_lives_never_beyond_the_cap(tmp_path: Path, kind: str) -> None:
    if kind == "sqlite":  # the SQL sink on sqlite: counted and sampled by the database
        settings = log_settings(tmp_path, "postgres", prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}")
    else:
        settings = log_settings(tmp_path, "parquet")
    check_sample(settings)


def _numbered_batches(sizes: list[int]) -> list[pa.RecordBatch]:
    schema = pa.schema([("timestamp", pa.timestamp("us", tz="UTC")), ("model_version", pa.string())])
    batches, first = [], 0
    for size in sizes:
        stamps = pa.array(np.arange(first, first + size) * 1_000_000, pa.timestamp("us", tz="UTC"))
        batches.append(pa.record_batch([stamps, pa.array(["1"] * size)], schema=schema))
        first += size
    return batches


def _seconds(frame: pd.DataFrame) -> list[int]:
    return [int(moment.timestamp()) for moment in frame["timestamp"]]


def test_the_reservoir_holds_at_most_its_size_and_its_sample_ignores_batch_boundaries() -> None:
    batches = _numbered_batches([1000] * 20)
    reservoir = Reservoir(batches[0].schema, 300, seed=7)
    for batch in batches:
        reservoir.offer(batch)
        assert reservoir.held < 600  # memory: twice the sample at most, whatever the window
    sample = reservoir.sample()
    assert (sample.rows, len(sample.frame), sample.rows_by_version) == (20_000, 300, {"1": 20_000})
    regrouped = Reservoir(batches[0].schema, 300, seed=7)
    for batch in _numbered_batches([7, 13_000, 6_993]):
        regrouped.offer(batch)
    assert _seconds(regrouped.sample().frame) == _seconds(sample.frame)


def test_the_reservoir_draws_every_row_equally_often() -> None:
    """200 seeds, 10 of 100 rows each: each row is expected 20 times; a sampler biased towards the first or last
    batches would leave some rows near 0 or 40 (binomial sd 4.2, so 5..40 fails a fair sampler about once in 10^4)."""
    batches = _numbered_batches([30, 30, 40])
    counts = np.zeros(100, dtype=int)
    for seed in range(200):
        reservoir = Reservoir(batches[0].schema, 10, seed=seed)
        for batch in batches:
            reservoir.offer(batch)
        counts[_seconds(reservoir.sample().frame)] += 1
    assert counts.sum() == 2000 and counts.min() >= 5 and counts.max() <= 40
    assert abs(counts[:30].mean() - counts[70:].mean()) < 4


def test_parquet_layout_is_partitioned_by_model_and_date(tmp_path: Path) -> None:
    settings = log_settings(tmp_path, "parquet")
    log = open_prediction_log(settings)
    log.submit([make_record(i) for i in range(0, 400, 100)])  # 23:59:00 and 00:00:25 ... next day
    log.close()
    root = settings.serving_dir / "predictions" / f"model={MODEL}"
    assert sorted(path.name for path in root.iterdir()) == ["date=2026-03-01", "date=2026-03-02"]
    assert all(path.name.startswith("part-") for path in root.glob("date=*/*"))


def test_parquet_files_keep_statistics_where_reads_prune_and_dictionaries_where_values_repeat(tmp_path: Path) -> None:
    """The writer thread computes only what reads use: the timestamp's range (a window skips row groups by it),
    dictionaries for the columns that repeat; a window read still finds exactly its records."""
    settings = log_settings(tmp_path, "parquet", log_batch_size=500)
    log = open_prediction_log(settings)
    log.submit([make_record(i) for i in range(200)])  # 23:59:00.00 to 23:59:49.75, one file
    log.close()
    (path,) = (settings.serving_dir / "predictions" / f"model={MODEL}").glob("date=*/part-*.parquet")
    group = pq.ParquetFile(path).metadata.row_group(0)
    chunks = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    stamps = chunks["timestamp"].statistics
    assert stamps is not None and stamps.has_min_max
    assert (stamps.min, stamps.max) == (T0, T0 + timedelta(milliseconds=250 * 199))
    assert all(chunks[name].statistics is None for name in ("score", "amount", "customer_id", "request_id"))
    assert chunks["model_version"].has_dictionary_page and chunks["arm"].has_dictionary_page
    assert not chunks["request_id"].has_dictionary_page and not chunks["amount"].has_dictionary_page
    window = read_prediction_log(settings, MODEL, T0 + timedelta(seconds=10), T0 + timedelta(seconds=20))
    assert window["request_id"].tolist() == [f"req-{index:05d}" for index in range(40, 80)]


def test_parquet_reads_files_whose_schemas_differ(tmp_path: Path) -> None:
    """A new model version adds a feature; an entity key changed type: both still read into one frame."""
    settings = log_settings(tmp_path, "parquet")
    log = open_prediction_log(settings)
    log.submit([make_record(0, features={"amount": 1.0})])
    log.close()
    log = open_prediction_log(settings)
    log.submit([make_record(1, features={"amount": 2.0, "new_feature": 7.0})])
    log.close()
    log = open_prediction_log(settings)
    log.submit([dataclasses.replace(make_record(2), entity={"customer_id": "c-3"})])
    log.close()

    frame = read_prediction_log(settings, MODEL)
    assert frame["request_id"].tolist() == ["req-00000", "req-00001", "req-00002"]
    assert frame["customer_id"].tolist() == [1000, 1001, "c-3"]
    assert frame["amount"].tolist()[:2] == [1.0, 2.0]
    assert pd.isna(frame["new_feature"].iloc[0]) and frame["new_feature"].iloc[1] == 7.0


class BlockingSinkForTest(PredictionSink):
    """Fault injection: ``write`` blocks until the test releases it, like a sink that hangs."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.records: list[PredictionRecord] = []

    def write(self, records: Sequence[PredictionRecord]) -> None:
        self.entered.set()
        self.release.wait(10)
        self.records.extend(records)

    def read(self, model_name: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        raise NotImplementedError("BlockingSinkForTest only records writes")


def test_full_queue_drops_and_counts_without_blocking() -> None:
    sink = BlockingSinkForTest()
    drops: list[int] = []
    log = BatchingPredictionLog(sink, queue_size=10, batch_size=5, flush_interval_s=0.01, on_drop=drops.append)
    accepted = 0
    slowest = 0.0
    for index in range(200):
        began = time.perf_counter()
        accepted += log.submit([make_record(index)])
        slowest = max(slowest, time.perf_counter() - began)
        if index == 0:
            assert sink.entered.wait(5), "the writer did not take the first record into the sink"

    assert slowest < 0.05, f"submit blocked for {slowest:.3f} s"
    assert 10 <= accepted <= 10 + 5
    assert log.dropped == 200 - accepted == sum(drops)
    sink.release.set()
    log.close()
    assert log.written == accepted == len(sink.records)
    assert log.submit([make_record(999)]) == 0  # closed: refused and counted
    assert log.dropped == 200 - accepted + 1


class SlowSinkForTest(PredictionSink):
    """A healthy sink that takes its time, like a database under load."""

    def __init__(self) -> None:
        self.records: list[PredictionRecord] = []

    def write(self, records: Sequence[PredictionRecord]) -> None:
        time.sleep(0.005)  # the sink's latency, not a wait
        self.records.extend(records)

    def read(self, model_name: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        raise NotImplementedError("SlowSinkForTest only records writes")


def test_a_burst_never_drops_what_was_accepted() -> None:
    """Overflow is refused at ``submit``; everything ``submit`` accepted is written, however big the burst."""
    sink = SlowSinkForTest()
    log = BatchingPredictionLog(sink, queue_size=100, batch_size=10, flush_interval_s=0.01)
    accepted = sum(log.submit([make_record(index)]) for index in range(5_000))
    log.close()
    assert 100 <= accepted < 5_000
    assert log.written == accepted == len(sink.records)
    assert log.dropped == 5_000 - accepted


def test_close_flushes_everything_accepted(tmp_path: Path) -> None:
    """A long flush interval and a big batch: only ``close`` can have written the records."""
    settings = log_settings(tmp_path, "parquet", log_flush_interval_s=600, log_batch_size=10_000)
    log = open_prediction_log(settings)
    assert log.submit([make_record(i) for i in range(25)]) == 25
    began = time.perf_counter()
    log.close()
    assert time.perf_counter() - began < 2
    assert log.written == 25
    assert len(read_prediction_log(settings, MODEL)) == 25


class FlakySinkForTest(PredictionSink):
    """Fault injection: the first ``failures`` writes raise ConnectionError (or ``error``), then writes succeed."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionError("sink down")
        self.attempts = 0
        self.records: list[PredictionRecord] = []

    def write(self, records: Sequence[PredictionRecord]) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise self.error
        self.records.extend(records)

    def read(self, model_name: str, start: datetime | None = None, end: datetime | None = None) -> pd.DataFrame:
        raise NotImplementedError("FlakySinkForTest only records writes")


def test_failed_writes_are_retried_until_the_sink_recovers() -> None:
    sink = FlakySinkForTest(failures=3)
    log = BatchingPredictionLog(sink, queue_size=100, batch_size=10, flush_interval_s=0.01)
    assert log.submit([make_record(i) for i in range(30)]) == 30
    log.close(timeout=5)
    assert (log.written, log.dropped, len(sink.records)) == (30, 0, 30)
    assert sink.attempts >= 3 + 3  # three failures, then at least three batches of up to 10


def test_a_sink_that_stays_down_costs_records_not_the_server(caplog: pytest.LogCaptureFixture) -> None:
    sink = FlakySinkForTest(failures=10**9)
    log = BatchingPredictionLog(sink, queue_size=20, batch_size=5, flush_interval_s=0.01)
    accepted = sum(log.submit([make_record(i)]) for i in range(50))
    # The writer takes the queue into memory (then fails, retries, drops beyond the bound) before more arrive.
    wait_for(lambda: sink.attempts >= 1, 5, "the writer's first write attempt")
    accepted += sum(log.submit([make_record(i)]) for i in range(50, 60))
    began = time.perf_counter()
    log.close(timeout=0.3)
    assert time.perf_counter() - began < 2
    assert log.written == 0
    assert log.dropped == 60  # refused at the queue, given up in memory, or unwritten at close: all counted
    assert accepted >= 20
    assert "req-" not in caplog.text  # errors are logged without record contents
    assert "ConnectionError" in caplog.text


def test_a_batch_the_sink_rejects_as_invalid_is_dropped_not_retried() -> None:
    sink = FlakySinkForTest(failures=1, error=ValueError("cannot store this"))
    log = BatchingPredictionLog(sink, queue_size=100, batch_size=5, flush_interval_s=0.01)
    log.submit([make_record(i) for i in range(5)])
    log.close()
    assert (log.written, log.dropped, sink.attempts) == (0, 5, 1)


def test_off_accepts_everything_and_keeps_nothing(tmp_path: Path) -> None:
    settings = log_settings(tmp_path, "off")
    log = open_prediction_log(settings, on_drop=lambda n: pytest.fail("off never drops"))
    assert log.submit([make_record(i) for i in range(7)]) == 7
    log.close()
    assert (log.written, log.dropped) == (0, 0)
    assert not (settings.serving_dir / "predictions").exists()
    assert list(read_prediction_log(settings, MODEL).columns) == list(BASE_COLUMNS)


def test_records_are_checked_on_the_request_path() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        PredictionRecord("r", datetime(2026, 1, 1), MODEL, "1", {"id": 1}, {}, 0.1, 0)
    with pytest.raises(ValueError, match="score"):
        PredictionRecord("r", T0, MODEL, "1", {"id": 1}, {"score": 1.0}, 0.1, 0)
    with pytest.raises(ValueError, match="both"):
        PredictionRecord("r", T0, MODEL, "1", {"id": 1}, {"id": 1.0}, 0.1, 0)


def test_values_the_database_rejects_cost_their_batch_only(tmp_path: Path) -> None:
    """A NOT NULL violation is not worth retrying: that batch is dropped (counted), later batches are written."""
    settings = log_settings(tmp_path, "postgres", prediction_log_url=f"sqlite:///{tmp_path / 'log.db'}")
    log = open_prediction_log(settings)
    log.submit([dataclasses.replace(make_record(0), request_id=None)])  # type: ignore[arg-type]
    wait_for(lambda: log.dropped == 1, 10, "the rejected batch to be dropped alone", interval=0.01)
    log.submit([make_record(i) for i in range(1, 4)])
    log.close()
    assert (log.written, log.dropped) == (3, 1)
    assert read_prediction_log(settings, MODEL)["request_id"].tolist() == ["req-00001", "req-00002", "req-00003"]


def test_mixed_entity_types_in_one_batch_are_kept_as_strings(tmp_path: Path) -> None:
    settings = log_settings(tmp_path, "parquet")
    log = open_prediction_log(settings)
    log.submit([make_record(0), dataclasses.replace(make_record(1), entity={"customer_id": "c-1"})])
    log.close()
    assert (log.written, log.dropped) == (2, 0)
    assert read_prediction_log(settings, MODEL)["customer_id"].tolist() == ["1000", "c-1"]


def test_the_sql_sink_waits_for_an_unreachable_database_instead_of_failing_the_server(tmp_path: Path) -> None:
    """Opening the log must not need the database: records wait in memory and are counted if never written."""
    unreachable = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"
    log = open_prediction_log(log_settings(tmp_path, "postgres", migrate=False, prediction_log_url=unreachable))
    assert log.submit([make_record(0)]) == 1
    log.close(timeout=0.5)
    assert (log.written, log.dropped) == (0, 1)


def test_the_copy_text_holds_the_insert_rows_values_in_its_columns() -> None:
    """COPY names its columns and the text gives their values: read back as COPY's text format reads it (escapes
    undone, ``\\N`` as null), each line must hold ``_row``'s values, whatever tabs, newlines or backslashes
    the strings carry."""
    from mlplatform.predictions.sinks import COPY_COLUMNS, _copy_text, _row
    from mlplatform.store.models import PredictionLogRow

    assert sorted(COPY_COLUMNS) == sorted(c.name for c in PredictionLogRow.__table__.columns if c.name != "id")
    awkward = dataclasses.replace(
        make_record(7),
        request_id="tab\there",
        model_name="back\\slash",
        entity={"customer_id": 'quote" and \\ back'},
        score=None,
        label=None,
        latency_s=0.002,
        error="line\nbreak\r\tand more",
    )
    for record in (make_record(7), awkward):
        row = _row(record)
        assert sorted(COPY_COLUMNS) == sorted(row)
        (line,) = _copy_text([record]).split("\n")[:-1]
        values = dict(zip(COPY_COLUMNS, map(_read_copy_field, line.split("\t")), strict=True))
        assert datetime.fromisoformat(str(values.pop("ts"))) == row.pop("ts")
        assert {name: json.loads(str(values.pop(name))) for name in ("entity", "features")} == {
            "entity": row.pop("entity"),
            "features": row.pop("features"),
        }
        assert values == {name: None if value is None else _as_copy_text(value) for name, value in row.items()}


def _read_copy_field(field: str) -> str | None:
    """One field of COPY's text format as PostgreSQL reads it."""
    if field == "\\N":
        return None
    escapes = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}
    return re.sub(r"\\.", lambda match: escapes[match.group()], field)


def _as_copy_text(value: object) -> str:
    if isinstance(value, bool):
        return "t" if value else "f"
    return repr(value) if isinstance(value, float) else str(value)
