"""The embedded stack's Airflow scheduler, started with the training tasks' libraries already imported.

Airflow's LocalExecutor forks its worker processes from the scheduler, and each worker forks a fresh process per
task (``airflow.sdk.execution_time.supervisor``: a bare ``os.fork`` on Linux).  A task therefore starts with
whatever the scheduler had imported, and imports the rest itself: pandas, scikit-learn, MLflow, Feast and skops
took 2-5 s of every training task's start on a 2-core machine, about 12 s of a four-task retrain.  Importing them
here, once, before Airflow's own start, makes every task find them loaded (copy-on-write pages of the scheduler).

Only third-party libraries are imported (``airflow.preload_modules``), never the platform's own code: the platform
modules this entry point loads on the way (``mlplatform.*``) are dropped from ``sys.modules`` before Airflow
starts, so a task imports the platform as it is on disk, and an edited module takes effect at the next task without
restarting the stack.  A library that fails to import is reported and skipped (the task imports it itself, and
fails there with its own error if it must).

Usage (what ``mlplatform.stack.embedded.airflow_argv`` runs)::

    python -m mlplatform.stack.airflow_scheduler --preload pandas,mlflow -- scheduler --skip-serve-logs
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import warnings
from collections.abc import Iterable, Sequence

PLATFORM_PACKAGE = "mlplatform"


def preload(modules: Iterable[str]) -> dict[str, float | str]:
    """Import each module; returns seconds per module, or the error's one line for one that failed.

    Warnings raised while importing are silenced: they belong to the libraries, and a scheduler log is no place
    for them (skops alone looks up every scipy function in every loaded module at import).
    """
    report: dict[str, float | str] = {}
    for name in modules:
        started = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importlib.import_module(name)
        except Exception as error:  # any library's import error: report it, start the scheduler anyway
            lines = str(error).strip().splitlines()
            report[name] = f"{type(error).__name__}: {lines[0] if lines else ''}"
            continue
        report[name] = round(time.perf_counter() - started, 3)
    return report


def drop_platform_modules() -> list[str]:
    """Forget every ``mlplatform`` module imported so far, so the tasks forked later import the code on disk."""
    dropped = [name for name in sys.modules if name == PLATFORM_PACKAGE or name.startswith(f"{PLATFORM_PACKAGE}.")]
    for name in dropped:
        del sys.modules[name]
    return dropped


def parse(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(modules to preload, Airflow's own arguments): ``--preload a,b -- scheduler ...``."""
    parser = argparse.ArgumentParser(prog="python -m mlplatform.stack.airflow_scheduler", description=__doc__)
    parser.add_argument("--preload", default="", help="comma-separated modules to import before Airflow starts")
    parser.add_argument("airflow_args", nargs=argparse.REMAINDER, help="Airflow's arguments, after --")
    args = parser.parse_args(argv)
    airflow_args = list(args.airflow_args)
    if airflow_args[:1] == ["--"]:
        airflow_args = airflow_args[1:]
    return [name for name in (part.strip() for part in args.preload.split(",")) if name], airflow_args


def main(argv: Sequence[str] | None = None) -> None:
    modules, airflow_args = parse(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    report = preload(modules)
    drop_platform_modules()
    failed = {name: outcome for name, outcome in report.items() if isinstance(outcome, str)}
    print(
        f"mlplatform: preloaded {len(report) - len(failed)} task libraries in {time.perf_counter() - started:.1f}s "
        f"for the LocalExecutor's forked tasks: {report}",
        file=sys.stderr,
        flush=True,
    )
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", *airflow_args]
    airflow_main()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    main()
