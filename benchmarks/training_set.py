"""Point-in-time training-set build time and peak memory, DuckDB offline store (file store at 100k for comparison).

Usage: ``.venv/bin/python benchmarks/training_set.py [--rows 100000 1000000] [--file-store]``

Data is generated once into ``.mlplatform/bench/data`` (reused when present): enough customers and days that the
transactions give the requested number of entity rows.  Each measurement runs in a fresh child process so peak
RSS (``ru_maxrss``) belongs to that build alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / ".mlplatform" / "bench"
END = datetime(2025, 6, 1, tzinfo=UTC)
DATA_SHAPE = {"customers": 12_000, "days": 90}  # about 2M labelled transactions, 3M aggregate snapshots


MODEL = "fraud_detector"


def ensure_data() -> Path:
    """Generate the benchmark data set unless a complete one is cached."""
    data = BENCH / "data" / MODEL  # the model's data directory under the data directory
    if all((data / f"{name}.parquet").exists() for name in ("customer_profile", "transaction_stats", "transactions")):
        return data
    from mlplatform.demo.fraud_data import generate

    began = time.perf_counter()
    result = generate(data, end=END, seed=7, progress=lambda m: print(f"  {m}", flush=True), **DATA_SHAPE)
    print(f"generated {result.transaction_rows:,} transactions in {time.perf_counter() - began:.0f} s")
    return data


def measure(rows: int, offline_store: str, data: Path) -> dict[str, float]:
    """Child process: apply, then time ``training_set`` for the first ``rows`` transactions."""
    import pandas as pd

    from mlplatform.config import get_settings
    from mlplatform.features import FeatureStoreAdapter

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
    entities = pd.read_parquet(data / "transactions.parquet").sample(n=rows, random_state=0)
    entities = entities.sort_values("event_timestamp")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    began = time.perf_counter()
    result = adapter.training_set(entities, "fraud_detector_v1")
    seconds = time.perf_counter() - began
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    feature_nulls = float(result["txn_count_24h"].isna().mean())
    return {
        "rows": rows,
        "seconds": seconds,
        "peak_rss_mib": peak_kib / 1024,
        "rss_before_mib": before / 1024,
        "null_share": feature_nulls,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--file-store", action="store_true", help="also time Feast's file store at 100k rows")
    parser.add_argument("--child", nargs=2, metavar=("ROWS", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(int(args.child[0]), args.child[1], ensure_data())))
        return
    data = ensure_data()
    stats = data / "transaction_stats.parquet"
    print(f"data: {data} ({stats.stat().st_size / 2**20:.0f} MiB aggregates)")
    runs = [(rows, "duckdb") for rows in args.rows]
    if args.file_store:
        runs.append((100_000, "file"))
    results = []
    for rows, store in runs:
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(rows), store], capture_output=True, text=True, check=False
        )
        if child.returncode != 0:
            print(f"{store} {rows:,}: failed\n{child.stderr[-2000:]}")
            continue
        results.append((store, json.loads(child.stdout.strip().splitlines()[-1])))
    print(f"\n{'store':<8}{'entity rows':>12}{'seconds':>10}{'peak RSS MiB':>14}{'null share':>12}")
    for store, row in results:
        print(
            f"{store:<8}{int(row['rows']):>12,}{row['seconds']:>10.1f}{row['peak_rss_mib']:>14.0f}"
            f"{row['null_share']:>12.3f}"
        )


if __name__ == "__main__":
    main()
