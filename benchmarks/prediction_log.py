"""Prediction log: cost of ``submit`` on the request path and how fast each sink drains, parquet and PostgreSQL.

Usage: ``.venv/bin/python benchmarks/prediction_log.py [--postgres-url postgresql://postgres@127.0.0.1:5432]``
(default: ``$MLP_TEST_POSTGRES_URL``; without one the PostgreSQL rows are skipped).  Runs in well under a minute.

Two runs per sink, default settings (queue 10,000, batches of 500, flush every 1 s), one record per ``submit``
as a server answering one entity per request does, 20 features per record:

* **paced**: an open-loop 2,000 submits/s for 3 s: submit latency at a realistic load, where nothing may drop;
* **burst**: 50,000 submits as fast as one thread can: submit throughput (records/s accepted or refused) and
  latency with the queue overflowing, plus the sink's drain rate (records written per second until ``close``).

PostgreSQL runs against a scratch database that is created and dropped here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mlplatform.config import Settings, get_settings
from mlplatform.predictions.records import PredictionRecord
from mlplatform.predictions.writer import open_prediction_log
from mlplatform.store.db import PlatformStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.environment import scratch_postgres

FEATURES = 20
PACED_RATE = 2_000
PACED_SECONDS = 3.0
BURST_RECORDS = 50_000


@dataclass
class Result:
    sink: str
    run: str
    submits_per_s: float
    p50_us: float
    p99_us: float
    max_us: float
    accepted: int
    dropped: int
    written: int
    drain_per_s: float


def records(count: int) -> list[PredictionRecord]:
    """Pre-built records, so only ``submit`` is timed."""
    start = datetime.now(UTC)
    features: dict[str, float | None] = {f"feature_{n:02d}": n * 0.5 for n in range(FEATURES)}
    return [
        PredictionRecord(
            request_id=uuid.uuid4().hex,
            timestamp=start + timedelta(microseconds=index),
            model_name="bench_model",
            model_version="1",
            entity={"customer_id": index},
            features=features,
            score=0.42,
            label=0,
        )
        for index in range(count)
    ]


def run(settings: Settings, sink: str, name: str, batch: list[PredictionRecord], rate: float | None) -> Result:
    """Submit ``batch`` one record per call (at ``rate`` per second, or unpaced) and time every call."""
    log = open_prediction_log(settings)
    latencies: list[int] = []
    accepted = 0
    began = time.perf_counter()
    for index, record in enumerate(batch):
        if rate is not None:
            _sleep_until(began + index / rate)
        t0 = time.perf_counter_ns()
        accepted += log.submit([record])
        latencies.append(time.perf_counter_ns() - t0)
    submitted = time.perf_counter() - began
    log.close(timeout=60)
    drained = time.perf_counter() - began
    quantiles = statistics.quantiles(latencies, n=100)
    return Result(
        sink=sink,
        run=name,
        submits_per_s=len(batch) / submitted,
        p50_us=quantiles[49] / 1000,
        p99_us=quantiles[98] / 1000,
        max_us=max(latencies) / 1000,
        accepted=accepted,
        dropped=log.dropped,
        written=log.written,
        drain_per_s=log.written / drained,
    )


def _sleep_until(deadline: float) -> None:
    remaining = deadline - time.perf_counter()
    if remaining > 0:
        time.sleep(remaining)


def bench_sink(sink: str, settings: Settings) -> list[Result]:
    paced = run(settings, sink, "paced", records(int(PACED_RATE * PACED_SECONDS)), PACED_RATE)
    burst = run(settings, sink, "burst", records(BURST_RECORDS), None)
    return [paced, burst]


def print_table(results: list[Result]) -> None:
    header = (
        f"{'sink':<9}{'run':<7}{'submits/s':>11}{'p50 µs':>9}{'p99 µs':>9}{'max µs':>9}"
        f"{'accepted':>10}{'dropped':>9}{'written':>9}{'drain rec/s':>13}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.sink:<9}{r.run:<7}{r.submits_per_s:>11,.0f}{r.p50_us:>9.1f}{r.p99_us:>9.1f}{r.max_us:>9.0f}"
            f"{r.accepted:>10,}{r.dropped:>9,}{r.written:>9,}{r.drain_per_s:>13,.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres-url", default=os.environ.get("MLP_TEST_POSTGRES_URL"), help="server URL")
    args = parser.parse_args()
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="mlp_bench_log_") as state:
        parquet = get_settings(state_dir=Path(state), serving={"prediction_log": "parquet"})
        results += bench_sink("parquet", parquet)
        if args.postgres_url:
            with scratch_postgres(args.postgres_url, prefix="mlp_bench") as url:
                PlatformStore.migrated(url).dispose()  # the sink writes only into a migrated schema
                postgres = get_settings(
                    state_dir=Path(state), serving={"prediction_log": "postgres", "prediction_log_url": url}
                )
                results += bench_sink("postgres", postgres)
        else:
            print("no --postgres-url / MLP_TEST_POSTGRES_URL: PostgreSQL skipped")
    print_table(results)


if __name__ == "__main__":
    main()
