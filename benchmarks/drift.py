"""Drift check time and peak memory: over a prediction log of millions of rows, and against Evidently's default.

Usage:
  uv run python benchmarks/drift.py log [--rows 10000000] [--postgres-url postgresql://postgres@127.0.0.1:5432]
  uv run python benchmarks/drift.py evidently [--rows 10000 100000 1000000]

``log`` (the default): writes ``--rows`` prediction-log rows (fixed seed, ``--features`` numeric inputs of which
``--shifted`` moved by 0.3 standard deviations, spread over the 24 hours the check reads) as the parquet sink lays
them out (``model=<name>/date=<day>/part-*.parquet``, ``--rows-per-file`` rows per file, written with vectorised
pyarrow), and, with ``--postgres-url``, into the ``prediction_log`` table of a private database made for the run
(``COPY``) and dropped after it.  Then, in a child process per backend (imports done, peak RSS reset right before
the run), the check's data path: ``sample_prediction_log`` (counts and a sample of at most
``monitoring.max_sample_rows`` rows, taken where the log lives), ``current_frame``, ``analyse`` against a
10,000-row reference, and the HTML report rendered (what ``run_drift_check`` does, without MLflow, which only
hands it the 10,000-row reference).  Prints seconds (sampling, analysis, total) and the child's peak RSS: what a
pod's memory limit has to hold.  ``--whole-window`` measures the read the check made before sampling moved into the
data layer (``read_prediction_log``, the whole window in memory) on the same log, for comparison.

``evidently``: for each size n, a reference and a current frame of n rows, compared by Evidently as called by
default (``Report([DataDriftPreset()])`` on the full frames) and by ``mlplatform.monitoring.drift.analyse`` as the
check calls it (10,000-row reference, current sampled to 50,000 rows); seconds, peak MiB, verdicts.

Results go to ``--out`` as JSON too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REFERENCE_ROWS = 10_000
MAX_ROWS = 50_000
DRIFT_SHARE = 0.5
MODEL = "bench_drift"
VERSION = "1"
WINDOW_END = datetime(2026, 6, 1, 12, tzinfo=UTC)  # the 24-hour window spans two date partitions
SEED = 0


def feature_names(features: int) -> list[str]:
    return [f"f{index:02d}" for index in range(features)]


def _scales(features: int) -> Any:
    import numpy as np

    return np.random.default_rng(SEED).uniform(0.5, 5.0, features)


def _inputs(rng: Any, rows: int, features: int, shifted: int) -> Any:
    """``rows`` x ``features`` values; the first ``shifted`` columns moved by 0.3 of their scale when asked."""
    scales = _scales(features)
    values = rng.normal(size=(rows, features)) * scales
    values[:, :shifted] += 0.3 * scales[:shifted]
    return values


def _scores(values: Any) -> Any:
    """A fixed logistic model of the inputs: the score moves when they do (prediction drift)."""
    import numpy as np

    standardised = values / _scales(values.shape[1])
    return 1 / (1 + np.exp(-standardised.sum(axis=1) / np.sqrt(values.shape[1])))


def frames(rows: int, features: int, shifted: int, seed: int = SEED) -> tuple[Any, Any, list[str]]:
    """A reference and a current frame of ``rows`` rows (``evidently``), the current one shifted."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    names = feature_names(features)
    reference = pd.DataFrame(_inputs(rng, rows, features, 0), columns=names)
    current = pd.DataFrame(_inputs(rng, rows, features, shifted), columns=names)
    return reference, current, names


def reference_snapshot(features: int) -> Any:
    """What training logs as the reference: 10,000 unshifted rows with the model's score as ``prediction``."""
    import numpy as np
    import pandas as pd

    values = _inputs(np.random.default_rng(SEED + 1), REFERENCE_ROWS, features, 0)
    reference = pd.DataFrame(values, columns=feature_names(features))
    reference["prediction"] = _scores(values)
    return reference


# -- Writing the log ---------------------------------------------------------------------------------------------


def log_chunks(rows: int, features: int, shifted: int, chunk_rows: int) -> Iterator[Any]:
    """The log as pyarrow tables of ``chunk_rows`` rows, in time order, evenly spread over the 24-hour window."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(SEED + 2)
    names = feature_names(features)
    start_us = int((WINDOW_END - timedelta(hours=24)).timestamp() * 1_000_000)
    step_us = 24 * 3600 * 1_000_000 / rows
    for first in range(0, rows, chunk_rows):
        count = min(chunk_rows, rows - first)
        index = np.arange(first, first + count)
        values = _inputs(rng, count, features, shifted)
        scores = _scores(values)
        columns = {
            "request_id": pc.binary_join_element_wise("req-", pc.cast(pa.array(index), pa.string()), ""),
            "timestamp": pa.array(start_us + (index * step_us).astype("int64"), pa.timestamp("us", tz="UTC")),
            "model_name": pa.array(np.full(count, MODEL)),
            "model_version": pa.array(np.full(count, VERSION)),
            "customer_id": pa.array(index % 100_000),
            **{name: pa.array(values[:, column]) for column, name in enumerate(names)},
            "score": pa.array(scores),
            "label": pa.array((scores >= 0.5).astype("int64")),
        }
        yield pa.table(columns)


def write_parquet_log(root: Path, rows: int, features: int, shifted: int, rows_per_file: int) -> None:
    """The parquet sink's layout and file metadata, one file per chunk and day."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    metadata = {"mlplatform.entity_keys": "customer_id", "mlplatform.features": "\x1f".join(feature_names(features))}
    for number, chunk in enumerate(log_chunks(rows, features, shifted, rows_per_file)):
        days = pc.strftime(chunk.column("timestamp"), format="%Y-%m-%d")
        for day in pc.unique(days).to_pylist():
            directory = root / f"model={MODEL}" / f"date={day}"
            directory.mkdir(parents=True, exist_ok=True)
            part = chunk.filter(pc.equal(days, day)).replace_schema_metadata(metadata)
            pq.write_table(part, directory / f"part-{number:06d}.parquet")


def write_postgres_log(url: str, rows: int, features: int, shifted: int, rows_per_copy: int) -> None:
    """The ``prediction_log`` table (schema by the platform's migrations), filled with ``COPY``, then analysed."""
    import io

    import psycopg

    from mlplatform.store.db import PlatformStore

    PlatformStore.connect(url).dispose()  # the schema, as every platform process finds it
    names = feature_names(features)
    statement = (
        "COPY prediction_log (request_id, ts, model_name, model_version, entity, features, score, label) "
        "FROM STDIN WITH (FORMAT csv)"
    )
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as connection:
        for chunk in log_chunks(rows, features, shifted, rows_per_copy):
            frame = chunk.to_pandas()
            out = frame[["request_id", "timestamp", "model_name", "model_version"]].copy()
            out["entity"] = '{"customer_id": ' + frame["customer_id"].astype(str) + "}"
            out["features"] = frame[names].to_json(orient="records", lines=True, double_precision=15).splitlines()
            out["score"], out["label"] = frame["score"], frame["label"]
            text = io.StringIO()
            out.to_csv(text, header=False, index=False)
            with connection.cursor().copy(statement) as copy:
                copy.write(text.getvalue())
            connection.commit()
        connection.execute("ANALYZE prediction_log")
        connection.commit()


# -- Measuring -----------------------------------------------------------------------------------------------------


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> int:
    """Reset the peak RSS to the current RSS (Linux); returns the current RSS in KiB."""
    Path("/proc/self/clear_refs").write_text("5")
    return _rss_kib("VmRSS")


def _log_settings(state_dir: Path, postgres_url: str | None) -> Any:
    from mlplatform.config import get_settings

    if postgres_url:
        return get_settings(
            state_dir=state_dir, serving={"prediction_log": "postgres", "prediction_log_url": postgres_url}
        )
    return get_settings(state_dir=state_dir, serving={"prediction_log": "parquet"})


def check_child(state_dir: Path, postgres_url: str | None, features: int, max_rows: int) -> dict[str, Any]:
    """The drift check's data path in this process, timed and with a fresh peak RSS."""
    import evidently  # noqa: F401  (imported before timing, as a long-lived worker would have it)

    from mlplatform.monitoring.drift import analyse
    from mlplatform.monitoring.drift_check import current_frame
    from mlplatform.predictions.reader import sample_prediction_log

    settings = _log_settings(state_dir, postgres_url)
    names = feature_names(features)
    reference = reference_snapshot(features)
    before = _reset_peak()
    started = time.perf_counter()
    window = sample_prediction_log(
        settings, MODEL, WINDOW_END - timedelta(hours=24), WINDOW_END, features=names, max_rows=max_rows
    )
    sampled, sample_peak = time.perf_counter(), _rss_kib("VmHWM")
    current = current_frame(window.frame, names, VERSION)
    analysis = analyse(reference, current, names, drift_share_threshold=DRIFT_SHARE, max_rows=max_rows)
    analysed_peak = _rss_kib("VmHWM")
    with tempfile.TemporaryDirectory(prefix="mlp-bench-report-") as scratch:
        analysis.save_html(Path(scratch) / "report.html")
    finished = time.perf_counter()
    return {
        "rows": window.rows,
        "rows_compared": analysis.rows_compared,
        "sample_seconds": round(sampled - started, 2),
        "analysis_seconds": round(finished - sampled, 2),
        "seconds": round(finished - started, 2),
        "baseline_mib": round(before / 1024, 1),
        "sample_peak_mib": round(sample_peak / 1024, 1),
        "analysis_peak_mib": round(analysed_peak / 1024, 1),
        "peak_mib": round(_rss_kib("VmHWM") / 1024, 1),
        "drift_share": round(analysis.drift_share, 3),
        "prediction_drifted": analysis.prediction_drifted,
    }


def whole_window_child(state_dir: Path, postgres_url: str | None) -> dict[str, Any]:
    """The read the check made before: the whole window as one frame."""
    from mlplatform.predictions.reader import read_prediction_log

    settings = _log_settings(state_dir, postgres_url)
    before = _reset_peak()
    started = time.perf_counter()
    frame = read_prediction_log(settings, MODEL, WINDOW_END - timedelta(hours=24), WINDOW_END)
    return {
        "rows": len(frame),
        "seconds": round(time.perf_counter() - started, 2),
        "baseline_mib": round(before / 1024, 1),
        "peak_mib": round(_rss_kib("VmHWM") / 1024, 1),
    }


def _in_child(arguments: list[str]) -> dict[str, Any]:
    completed = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"child {arguments} failed:\n{completed.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _measure_backend(name: str, state_dir: Path, url: str | None, args: argparse.Namespace) -> list[dict[str, Any]]:
    common = ["--state-dir", str(state_dir), "--features", str(args.features)] + (
        ["--postgres-url", url] if url else []
    )
    results = [
        {"backend": name, "path": "check", **_in_child(["check-child", *common, "--max-rows", str(args.max_rows)])}
    ]
    if args.whole_window:
        results.append({"backend": name, "path": "whole window", **_in_child(["whole-child", *common])})
    return results


def _timed(label: str, action: Any) -> None:
    started = time.perf_counter()
    action()
    print(f"{label}: {time.perf_counter() - started:.1f} s", flush=True)


def run_log(args: argparse.Namespace) -> list[dict[str, Any]]:
    from mlplatform.predictions.sinks import prediction_log_dir

    workdir = Path(tempfile.mkdtemp(prefix="mlp-bench-drift-"))
    results: list[dict[str, Any]] = []
    try:
        state_dir = workdir / "state"
        root = prediction_log_dir(_log_settings(state_dir, None))
        rows, features, shifted = args.rows[0], args.features, args.shifted
        _timed(
            f"wrote {rows:,} rows as parquet",
            lambda: write_parquet_log(root, rows, features, shifted, args.rows_per_file),
        )
        results += _measure_backend("parquet", state_dir, None, args)
        if args.postgres_url:
            from tests.support.environment import scratch_postgres

            with scratch_postgres(args.postgres_url, prefix="mlp_bench_drift") as url:
                _timed(
                    f"copied {rows:,} rows into PostgreSQL",
                    lambda: write_postgres_log(url, rows, features, shifted, 200_000),
                )
                results += _measure_backend("postgres", state_dir, url, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'backend':>9} {'path':>13} {'rows':>11} {'compared':>9} {'sample s':>9} {'total s':>8} {'peak MiB':>9}")
    for item in results:
        line = (
            f"{item['backend']:>9} {item['path']:>13} {item['rows']:>11,} {item.get('rows_compared', item['rows']):>9,}"
        )
        print(line + f" {item.get('sample_seconds', ''):>9} {item['seconds']:>8} {item['peak_mib']:>9}")
    return results


# -- Evidently's default vs the platform's analysis ---------------------------------------------------------------


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


def evidently_child(approach: str, rows: int, features: int, shifted: int) -> dict[str, Any]:
    """One measurement in this process: imports and data first, then the timed run with a fresh peak RSS."""
    import evidently  # noqa: F401  (imported before timing, as a long-lived worker would have it)

    reference, current, names = frames(rows, features, shifted)
    run = _run_default if approach == "default" else _run_platform
    before = _reset_peak()
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


def run_evidently(args: argparse.Namespace) -> list[dict[str, Any]]:
    header = f"{'rows':>9} {'approach':>9} {'seconds':>8} {'peak MiB':>9} {'+MiB':>7} {'share':>6} {'drift':>6}"
    print(header + f" {'speed-up':>9} {'same verdict':>13} {'columns agree':>14}")
    results = []
    for rows in args.rows:
        common = ["--rows", str(rows), "--features", str(args.features), "--shifted", str(args.shifted)]
        default = _in_child(["evidently-child", "default", *common])
        platform = _in_child(["evidently-child", "platform", *common])
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
    return results


# -- Command line ----------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    log = commands.add_parser("log", help="the check over a prediction log of --rows rows (default 10,000,000)")
    log.add_argument("--rows", type=int, nargs=1, default=[10_000_000])
    log.add_argument("--rows-per-file", type=int, default=10_000)
    log.add_argument("--max-rows", type=int, default=MAX_ROWS, help="monitoring.max_sample_rows")
    log.add_argument("--postgres-url", help="also in PostgreSQL, in a private database made on this server")
    log.add_argument("--whole-window", action="store_true", help="also the whole-window read, for comparison")
    evidently = commands.add_parser("evidently", help="Evidently's default vs the platform's analysis")
    evidently.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    for command in (log, evidently):
        command.add_argument("--features", type=int, default=20)
        command.add_argument("--shifted", type=int, default=12)
        command.add_argument(
            "--out", type=Path, default=Path(f".mlplatform/bench-drift/{command.prog.split()[-1]}.json")
        )
    check = commands.add_parser("check-child")
    whole = commands.add_parser("whole-child")
    for child in (check, whole):
        child.add_argument("--state-dir", type=Path, required=True)
        child.add_argument("--postgres-url")
        child.add_argument("--features", type=int, default=20)
    check.add_argument("--max-rows", type=int, default=MAX_ROWS)
    measured = commands.add_parser("evidently-child")
    measured.add_argument("approach", choices=["default", "platform"])
    measured.add_argument("--rows", type=int, nargs=1, required=True)
    measured.add_argument("--features", type=int, default=20)
    measured.add_argument("--shifted", type=int, default=12)
    return parser


def main() -> None:
    argv = sys.argv[1:]
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["log", *argv]
    args = _parser().parse_args(argv)
    if args.command == "check-child":
        print(json.dumps(check_child(args.state_dir, args.postgres_url, args.features, args.max_rows)))
        return
    if args.command == "whole-child":
        print(json.dumps(whole_window_child(args.state_dir, args.postgres_url)))
        return
    if args.command == "evidently-child":
        print(json.dumps(evidently_child(args.approach, args.rows[0], args.features, args.shifted)))
        return
    results = run_log(args) if args.command == "log" else run_evidently(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
