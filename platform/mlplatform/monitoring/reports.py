"""Where drift checks keep their HTML reports, so that whoever serves a report can read what any checker wrote.

A check runs in an Airflow worker, the CLI or an API replica, and any API replica serves its report: on one
machine a directory is shared by all of them (``local``), in a cluster it is not, so there the reports are MLflow
artifacts (``mlflow``), kept with the champion's training run whose reference snapshot the check compared against.
``settings.monitoring.report_store`` picks one; the check writes and the API reads through the same interface.
A report is named by the check's DB id only, so no request ever supplies a path.
"""

from __future__ import annotations

import os
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlplatform.config import Settings
    from mlplatform.store.drift import DriftCheck

MLFLOW_REPORT_DIR = "drift-reports"
"""Artifact folder of a training run that holds the reports of the checks that compared against it."""


class DriftReportStore(ABC):
    """Keeps one HTML report per drift check."""

    @abstractmethod
    def put(self, check: DriftCheck, report: Path) -> None:
        """Keep the rendered ``report`` as the report of ``check`` (which has its DB id), replacing any earlier."""

    @abstractmethod
    def get(self, check: DriftCheck) -> bytes | None:
        """The report of ``check``; None when none was kept."""


def _report_name(check: DriftCheck) -> str:
    if check.id is None:
        raise ValueError("a drift check's report is named by its id: record the check before its report")
    return f"{int(check.id)}.html"


class LocalReportStore(DriftReportStore):
    """Files under the state directory: every process on the machine sees them (the embedded profile)."""

    def __init__(self, settings: Settings) -> None:
        self.layout = settings.layout

    def path(self, check: DriftCheck) -> Path:
        _report_name(check)
        assert check.id is not None  # checked by _report_name
        return self.layout.drift_report(check.model, check.id)

    def put(self, check: DriftCheck, report: Path) -> None:
        """Copied beside its final name, then renamed: a reader finds no report or the whole report."""
        target = self.path(check)
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, draft = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(report.read_bytes())
            Path(draft).replace(target)
        except BaseException:
            Path(draft).unlink(missing_ok=True)
            raise

    def get(self, check: DriftCheck) -> bytes | None:
        path = self.path(check)
        return path.read_bytes() if path.is_file() else None


class MlflowReportStore(DriftReportStore):
    """Artifacts of the training run the check compared against (``drift-reports/<id>.html``), through the
    tracking server: every replica and worker that can reach MLflow reads them, and the MLflow UI shows each
    run's reports next to the reference they were measured against."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def put(self, check: DriftCheck, report: Path) -> None:
        from mlplatform.registry.mlflow_registry import mlflow_client

        with tempfile.TemporaryDirectory(prefix="mlp-drift-report-") as scratch:
            named = Path(scratch) / _report_name(check)
            named.write_bytes(report.read_bytes())
            mlflow_client(self.settings).log_artifact(check.reference_run_id, str(named), MLFLOW_REPORT_DIR)

    def get(self, check: DriftCheck) -> bytes | None:
        """None when the run or the artifact does not exist; ``RegistryUnavailableError`` when MLflow fails."""
        import mlflow.artifacts
        from mlflow.exceptions import MlflowException
        from requests import HTTPError, RequestException

        from mlplatform.registry.mlflow_registry import RegistryUnavailableError, mlflow_client

        mlflow_client(self.settings)  # raises RegistryUnavailableError when the server does not answer
        with tempfile.TemporaryDirectory(prefix="mlp-drift-report-") as scratch:
            try:
                local = mlflow.artifacts.download_artifacts(
                    run_id=check.reference_run_id,
                    artifact_path=f"{MLFLOW_REPORT_DIR}/{_report_name(check)}",
                    tracking_uri=self.settings.mlflow.resolved_tracking_uri(),
                    dst_path=scratch,
                )
            except MlflowException:  # no such run
                return None
            except HTTPError as error:
                if error.response is not None and error.response.status_code == 404:  # no such artifact
                    return None
                raise RegistryUnavailableError(f"MLflow could not serve the drift report: {error}") from None
            except RequestException as error:
                raise RegistryUnavailableError(f"MLflow could not serve the drift report: {error}") from None
            return Path(local).read_bytes()


def open_report_store(settings: Settings) -> DriftReportStore:
    """The store ``settings.monitoring.report_store`` names."""
    if settings.monitoring.report_store == "mlflow":
        return MlflowReportStore(settings)
    return LocalReportStore(settings)
