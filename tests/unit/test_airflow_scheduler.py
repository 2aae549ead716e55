"""The embedded stack's scheduler entry point: the training tasks' libraries imported before Airflow starts (the
LocalExecutor forks every task from it), the platform's own modules forgotten, Airflow's arguments passed on."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from mlplatform.config import TASK_LIBRARIES, Settings
from mlplatform.stack import airflow_scheduler
from mlplatform.stack.embedded import (
    AIRFLOW_SCHEDULER,
    SCHEDULER_MODULE,
    airflow_argv,
    airflow_executable,
    warm_execution_api,
)
from mlplatform.training import estimators
from tests.support.environment import free_port


def test_parse_splits_the_preload_list_from_airflows_arguments() -> None:
    assert airflow_scheduler.parse(["--preload", "pandas, mlflow,", "--", "scheduler", "--skip-serve-logs"]) == (
        ["pandas", "mlflow"],
        ["scheduler", "--skip-serve-logs"],
    )
    assert airflow_scheduler.parse(["--", "version"]) == ([], ["version"])


def test_preload_reports_seconds_and_skips_what_fails_to_import() -> None:
    report = airflow_scheduler.preload(["json", "no_such_module_for_the_scheduler"])
    assert isinstance(report["json"], float)
    assert report["no_such_module_for_the_scheduler"] == (
        "ModuleNotFoundError: No module named 'no_such_module_for_the_scheduler'"
    )


def test_preload_keeps_the_libraries_warnings_out_of_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "warns_on_import_x.py").write_text("import warnings\nwarnings.warn('noisy', FutureWarning)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "warns_on_import_x", raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = airflow_scheduler.preload(["warns_on_import_x"])
    assert isinstance(report["warns_on_import_x"], float)


def test_the_platforms_modules_are_dropped_so_tasks_import_the_code_on_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "modules", dict(sys.modules))  # the test's own interpreter keeps its modules
    dropped = airflow_scheduler.drop_platform_modules()
    assert "mlplatform.config" in dropped and "mlplatform" in dropped
    assert not [name for name in sys.modules if name.split(".")[0] == "mlplatform"]
    assert "pytest" in sys.modules


def test_the_entry_point_preloads_then_runs_airflow() -> None:
    """For real: ``airflow version`` through the entry point, with one module that imports and one that does not."""
    result = subprocess.run(
        [sys.executable, "-m", SCHEDULER_MODULE, "--preload", "json,no_such_module_x", "--", "version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()[:1].isdigit(), result.stdout  # Airflow's version
    assert "preloaded 1 task libraries" in result.stderr and "no_such_module_x" in result.stderr


def test_the_stack_starts_the_scheduler_through_it_unless_switched_off(settings: Settings) -> None:
    argv = airflow_argv(settings, AIRFLOW_SCHEDULER)
    assert argv == [
        sys.executable,
        "-m",
        SCHEDULER_MODULE,
        "--preload",
        ",".join(TASK_LIBRARIES),
        "--",
        "scheduler",
        "--skip-serve-logs",
    ]
    off = settings.model_copy(update={"airflow": settings.airflow.model_copy(update={"preload_modules": []})})
    assert airflow_argv(off, AIRFLOW_SCHEDULER) == [airflow_executable(), "scheduler", "--skip-serve-logs"]


def test_preload_modules_come_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlplatform.config import get_settings

    monkeypatch.setenv("MLP_AIRFLOW__PRELOAD_MODULES", "[]")
    assert get_settings().airflow.preload_modules == []
    monkeypatch.setenv("MLP_AIRFLOW__PRELOAD_MODULES", '["pandas"]')
    assert get_settings().airflow.preload_modules == ["pandas"]


def test_every_default_task_library_is_installed() -> None:
    report = airflow_scheduler.preload(TASK_LIBRARIES)
    assert all(isinstance(seconds, float) for seconds in report.values()), report


def test_skops_imports_without_flooding_an_airflow_tasks_log() -> None:
    """In a task, skops' import-time lookup of every scipy function in every module hits Airflow's deprecated-import
    shims, each warning once (1,160 log lines): the first import goes through ``estimators._skops_io``, quiet."""
    code = (
        "import airflow.sdk, airflow.utils.timezone\n"
        "from mlplatform.training import estimators\n"
        "print(estimators._skops_io().__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "skops.io"
    assert estimators._skops_io().__name__ == "skops.io"


def test_warming_the_execution_api_of_an_airflow_that_does_not_answer_is_no_error() -> None:
    """``stack up`` warms the api-server's execution API (its routes are built at the first request, which held
    the first task of a fresh stack); nothing listening is a False, never an exception."""
    assert warm_execution_api(f"http://127.0.0.1:{free_port()}") is False
