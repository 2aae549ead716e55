"""Point-in-time training-set build time and peak memory: the platform's direct DuckDB join against Feast's own.

Usage: ``uv run python benchmarks/training_set.py [--rows 100000 1000000] [--feast] [--file-store]``

Data is generated once into ``.mlplatform/bench/data`` (reused when present): 20,000 customers over 90 days, about
3.4M labelled transactions and 5M feature rows (aggregate snapshots and profile changes), so a million entity rows
meet five million feature rows.  Each measurement runs in a fresh child process so its peak RSS (``VmHWM``,
``peak_rss_mib``) belongs to that build alone.  ``--feast`` also times Feast's DuckDB join (what ``training_set``
used before the direct join) at every size; ``--file-store`` times Feast's file store at 100k.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".mlplatform" / "bench"
DATA = BENCH / "data-20k"
END = datetime(2025, 6, 1, tzinfo=UTC)
DATA_SHAPE = {"customers": 20_000, "days": 90}  # about 3.4M labelled transactions, 5M feature rows


MODEL = "fraud_detector"


def ensure_data() -> Path:
    """Generate the benchmark data set unless a complete one is cached."""
    data = DATA / MODEL  # the model's data directory under the data directory
    if all((data / f"{name}.parquet").exists() for name in ("customer_profile", "transaction_stats", "transactions")):
        return data
    from mlplatform.demo.fraud_data import generate

    began = time.perf_counter()
    result = generate(data, end=END, seed=7, progress=lambda m: print(f"  {m}", flush=True), **DATA_SHAPE)
    print(f"generated {result.transaction_rows:,} transactions in {time.perf_counter() - began:.0f} s")
    return data


JOINS = {"direct": "duckdb", "feast-duckdb": "duckdb", "feast-file": "file"}
"""Each join measured, and the offline store it runs on."""


def measure(rows: int, join: str, data: Path) -> dict[str, float]:
    """Child process: apply, then time ``training_set`` for ``rows`` sampled transactions with ``join``."""
    import pandas as pd

    from mlplatform.config import get_settings
    from mlplatform.features import FeatureStoreAdapter

    offline_store = JOINS[join]
    settings = get_settings(
        state_dir=BENCH / f"state_{offline_store}",
        feast={
            "repo_path": ROOT / "feature_repo",
            "project": "bench",
            "data_dir": data.parent,
            "offline_store": offline_store,
        },
    )
    adapter = FeatureStoreAdapter(settings)
    adapter.apply()
    if join == "feast-duckdb":  # the platform's join before the direct one: Feast's through ibis
        adapter._direct_historical = lambda *_: None  # type: ignore[method-assign]
    # The columns the demo's spec names, as the training pipeline reads them (``load_labels``).
    columns = ["customer_id", "event_timestamp", "is_fraud", "amount"]
    entities = pd.read_parquet(data / "transactions.parquet", columns=columns).sample(n=rows, random_state=0)
    entities = entities.sort_values("event_timestamp")
    before = peak_rss_mib()
    began = time.perf_counter()
    result = adapter.training_set(entities, "fraud_detector_v1")
    seconds = time.perf_counter() - began
    peak = peak_rss_mib()
    feature_nulls = float(result["txn_count_24h"].isna().mean())
    return {
        "rows": rows,
        "seconds": seconds,
        "peak_rss_mib": peak,
        "rss_before_mib": before,
        "null_share": feature_nulls,
    }


def peak_rss_mib() -> float:
    """This process's peak resident set (Linux ``VmHWM``), in MiB.

    Not ``ru_maxrss``: Linux carries it over ``execve``, so a child started while the parent held the freshly
    generated data (a first run from a clean clone) reported the parent's 2,215 MiB as its own peak, against 1,622
    for the same build once the data was cached."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line: peak memory is measured on Linux only")


def feature_rows(data: Path) -> int:
    import pyarrow.parquet as pq

    return sum(
        pq.read_metadata(data / f"{name}.parquet").num_rows for name in ("customer_profile", "transaction_stats")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--feast", action="store_true", help="also time Feast's DuckDB join at every size")
    parser.add_argument("--file-store", action="store_true", help="also time Feast's file store at 100k rows")
    parser.add_argument("--child", nargs=2, metavar=("ROWS", "JOIN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(int(args.child[0]), args.child[1], ensure_data())))
        return
    data = ensure_data()
    print(f"data: {data} ({feature_rows(data):,} feature rows)")
    runs = [(rows, "direct") for rows in args.rows]
    if args.feast:
        runs += [(rows, "feast-duckdb") for rows in args.rows]
    if args.file_store:
        runs.append((100_000, "feast-file"))
    results = []
    for rows, join in runs:
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(rows), join], capture_output=True, text=True, check=False
        )
        if child.returncode != 0:
            print(f"{join} {rows:,}: failed\n{child.stderr[-2000:]}")
            continue
        results.append((join, json.loads(child.stdout.strip().splitlines()[-1])))
        print(f"  {join} {rows:,}: {results[-1][1]['seconds']:.1f} s", flush=True)
    print("\npeak RSS: the child's, entity frame included; before: once the entity frame is loaded")
    print(f"{'join':<14}{'entity rows':>12}{'seconds':>10}{'peak RSS MiB':>14}{'before MiB':>12}{'null share':>12}")
    for join, row in results:
        print(
            f"{join:<14}{int(row['rows']):>12,}{row['seconds']:>10.1f}{row['peak_rss_mib']:>14.0f}"
            f"{row['rss_before_mib']:>12.0f}{row['null_share']:>12.3f}"
        )


if __name__ == "__main__":
    main()
