"""Drift check time and peak memory: Evidently as called by default vs the platform's drift check.

Usage: uv run python benchmarks/drift.py [--rows 10000 100000 1000000] [--features 20] [--shifted 12]

For each size n: a reference and a current frame of n rows x ``--features`` numeric columns, ``--shifted`` of
them moved by 0.3 standard deviations in the current frame (so the right answer is "data set drifted", at a share
of shifted/features).  Each approach runs in its own child process (imports and data generation excluded from the
figures; the peak RSS is reset with /proc/self/clear_refs right before the run):

* default:  ``Report([DataDriftPreset()]).run(current, reference)`` on the full frames, columns inferred.
* platform: ``mlplatform.monitoring.drift.analyse`` as the drift check calls it: the training reference is a
            10,000-row sample (what training logs, ``REFERENCE_ROWS``), the current window is sampled to the
            spec's ``max_rows`` (50,000), one ``ValueDrift`` per column plus missing / out-of-range counts.

Prints a table (seconds, peak MiB, ratio, drift share, verdict, per-column agreement) and writes JSON to
``--out``.  Rendering the HTML report is not timed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REFERENCE_ROWS = 10_000
MAX_ROWS = 50_000
DRIFT_SHARE = 0.5


def frames(rows: int, features: int, shifted: int, seed: int = 0) -> tuple[Any, Any, list[str]]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    names = [f"f{index:02d}" for index in range(features)]
    scales = rng.uniform(0.5, 5.0, features)
    reference = pd.DataFrame(rng.normal(size=(rows, features)) * scales, columns=names)
    current = pd.DataFrame(rng.normal(size=(rows, features)) * scales, columns=names)
    for index in range(shifted):
        current[names[index]] += 0.3 * scales[index]
    return reference, current, names


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _run_default(reference: Any, current: Any, names: list[str]) -> tuple[float, list[bool]]:
    from evidently import Dataset, Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(current), Dataset.from_pandas(reference))
    content = snapshot.dict()
    share = next(m["value"]["share"] for m in content["metrics"] if "DriftedColumnsCount" in m["config"]["type"])
    scores = {
        m["config"]["column"]: (m["value"], m["config"]["threshold"])
        for m in content["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }
    # Every column here gets a distance (normed Wasserstein above 1000 rows): drifted when score >= threshold.
    return float(share), [bool(scores[name][0] >= scores[name][1]) for name in names]


def _run_platform(reference: Any, current: Any, names: list[str]) -> tuple[float, list[bool]]:
    from mlplatform.monitoring.drift import analyse, sample_rows

    snapshot_reference = sample_rows(reference, REFERENCE_ROWS)
    result = analyse(
        snapshot_reference, current, names, drift_share_threshold=DRIFT_SHARE, max_rows=MAX_ROWS, with_prediction=False
    )
    return result.drift_share, [bool(feature.drifted) for feature in result.features]


def child(approach: str, rows: int, features: int, shifted: int) -> dict[str, Any]:
    """One measurement in this process: imports and data first, then the timed run with a fresh peak RSS."""
    import evidently  # noqa: F401  (imported before timing, as a long-lived worker would have it)

    reference, current, names = frames(rows, features, shifted)
    run = _run_default if approach == "default" else _run_platform
    Path("/proc/self/clear_refs").write_text("5")
    before = _rss_kib("VmRSS")
    started = time.perf_counter()
    share, drifted = run(reference, current, names)
    seconds = time.perf_counter() - started
    peak = _rss_kib("VmHWM")
    return {
        "approach": approach,
        "rows": rows,
        "seconds": round(seconds, 2),
        "peak_mib": round(peak / 1024, 1),
        "extra_mib": round((peak - before) / 1024, 1),
        "drift_share": round(share, 3),
        "dataset_drift": bool(share >= DRIFT_SHARE),
        "drifted": drifted,
    }


def measure(approach: str, rows: int, features: int, shifted: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--child", approach, "--rows", str(rows)]
    argv += ["--features", str(features), "--shifted", str(shifted)]
    completed = subprocess.run(argv, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--shifted", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path(".mlplatform/bench-drift/results.json"))
    parser.add_argument("--child", choices=["default", "platform"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rows[0], args.features, args.shifted)))
        return
    header = f"{'rows':>9} {'approach':>9} {'seconds':>8} {'peak MiB':>9} {'+MiB':>7} {'share':>6} {'drift':>6}"
    print(header + f" {'speed-up':>9} {'same verdict':>13} {'columns agree':>14}")
    results = []
    for rows in args.rows:
        default = measure("default", rows, args.features, args.shifted)
        platform = measure("platform", rows, args.features, args.shifted)
        agree = sum(a == b for a, b in zip(default["drifted"], platform["drifted"], strict=True))
        for item in (default, platform):
            line = f"{rows:>9} {item['approach']:>9} {item['seconds']:>8} {item['peak_mib']:>9} {item['extra_mib']:>7}"
            print(line + f" {item['drift_share']:>6} {item['dataset_drift']!s:>6}", end="")
            if item is platform:
                speed_up = default["seconds"] / max(platform["seconds"], 1e-9)
                same = default["dataset_drift"] == platform["dataset_drift"]
                print(f" {speed_up:>8.1f}x {same!s:>13} {agree:>8}/{args.features}", end="")
            print()
        results.append({"rows": rows, "default": default, "platform": platform, "columns_agree": agree})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
