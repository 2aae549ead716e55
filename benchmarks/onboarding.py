"""Onboarding time: from `models init` on the diabetes example to the new model answering predictions as champion.

Usage: uv run python benchmarks/onboarding.py [--runs 1] [--out .mlplatform/bench-onboarding/results.json]

Starts its own embedded stack (MLflow, Airflow, the platform API) in a temporary state directory on free ports
(not timed: `make demo` has it running already), writes the diabetes example's tables, then times the guide's
commands as a data scientist types them, each a fresh `mlplatform` process:

    models init -> models validate -> train --wait (Airflow) -> deploy -> predict (until it answers)

and reads the training run's ``fit_seconds`` (the wall time of ``estimator.fit``, logged by the training task) from
MLflow: "platform's own steps" is the total minus that.  Targets on a 2-core machine: total at most 300 s, the
platform's own steps at most 120 s.  Prints a table per run and the medians; writes JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODEL = "diabetes"
STEPS = {
    "models init": (
        f"mlplatform models init {MODEL} --entity-key patient_id --features data/patient_measurements.parquet "
        "--labels data/progression_labels.parquet --label progression --task regression"
    ),
    "models validate": f"mlplatform models validate {MODEL}",
    "train --wait": f"mlplatform train {MODEL} --wait",
    "deploy": f"mlplatform deploy {MODEL}",
}
TARGET_TOTAL_S = 300.0
TARGET_PLATFORM_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_env(state_dir: Path, project: str) -> dict[str, str]:
    """The environment a user's shell would have: settings as MLP_ variables, the venv's `mlplatform` on PATH."""
    from mlplatform.config import get_settings

    settings = get_settings(
        state_dir=state_dir,
        bundled_models_dir=REPO / "pipelines" / "models",
        feast={"repo_path": REPO / "feature_repo", "project": project},
        airflow={"dags_folder": REPO / "pipelines" / "dags", "port": free_port()},
        mlflow={"port": free_port()},
        api={"port": free_port()},
        prometheus={"port": free_port(), "alertmanager_port": free_port()},
    )
    env = {**os.environ, **settings.child_env("api")}  # the CLI runs as the platform does
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("MLP_API_URL", None)
    return env


def run(command: str, env: dict[str, str], cwd: Path, check: bool = True) -> tuple[float, str]:
    began = time.perf_counter()
    completed = subprocess.run(shlex.split(command), env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    output = completed.stdout + completed.stderr
    if check and completed.returncode != 0:
        raise SystemExit(f"`{command}` failed ({completed.returncode}):\n{output[-3000:]}")
    return seconds, output


def first_answer(env: dict[str, str], cwd: Path, timeout_s: float = 120.0) -> float:
    """Seconds until `predict` gets an answer from the champion (the server may still be loading it)."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout_s:
        _, output = run(f"mlplatform predict {MODEL} --entity patient_id=42", env, cwd, check=False)
        if '"value"' in output:
            return time.perf_counter() - began
        time.sleep(0.5)
    raise SystemExit(f"no prediction within {timeout_s:.0f} s")


def fit_seconds(env: dict[str, str]) -> float:
    """The champion's logged ``fit_seconds`` (the estimator's own fit, inside the training task)."""
    from mlplatform.config import Settings
    from mlplatform.registry.mlflow_registry import CHAMPION, mlflow_client

    settings = Settings()  # built from the MLP_ variables this script exported
    client = mlflow_client(settings)
    version = client.get_model_version_by_alias(MODEL, CHAMPION)
    return float(client.get_run(str(version.run_id)).data.metrics.get("fit_seconds", 0.0))


def one_run(index: int) -> dict[str, Any]:
    from mlplatform.cli.data import today_midnight_utc
    from mlplatform.demo.diabetes_data import write_example

    with tempfile.TemporaryDirectory(prefix="mlp-bench-onboarding-") as scratch:
        work = Path(scratch)
        env = bench_env(work / "state", f"mlp_bench_onboard_{index}")
        os.environ.update({key: value for key, value in env.items() if key.startswith("MLP_")})
        write_example(work / "data", end=today_midnight_utc())
        run("mlplatform stack up", env, work)
        try:
            timings: dict[str, float] = {}
            for name, command in STEPS.items():
                timings[name], _ = run(command, env, work)
                print(f"  {name:<16} {timings[name]:6.1f} s", flush=True)
            timings["first prediction"] = first_answer(env, work)
            print(f"  {'first prediction':<16} {timings['first prediction']:6.1f} s", flush=True)
            total = sum(timings.values())
            fitted = fit_seconds(env)
        finally:
            run("mlplatform stack down", env, work, check=False)
    return {"steps_s": timings, "total_s": total, "fit_s": fitted, "platform_s": total - fitted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(".mlplatform/bench-onboarding/results.json"))
    args = parser.parse_args()
    results = []
    for index in range(1, args.runs + 1):
        print(f"run {index}/{args.runs}", flush=True)
        result = one_run(index)
        print(
            f"  total {result['total_s']:.1f} s (target <= {TARGET_TOTAL_S:.0f}); "
            f"estimator.fit {result['fit_s']:.2f} s; "
            f"platform's own steps {result['platform_s']:.1f} s (target <= {TARGET_PLATFORM_S:.0f})",
            flush=True,
        )
        results.append(result)
    summary = {
        "runs": results,
        "median_total_s": statistics.median(r["total_s"] for r in results),
        "median_platform_s": statistics.median(r["platform_s"] for r in results),
        "cpus": os.cpu_count(),
    }
    print(
        f"median over {len(results)} run(s): total {summary['median_total_s']:.1f} s, "
        f"platform's own steps {summary['median_platform_s']:.1f} s"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
