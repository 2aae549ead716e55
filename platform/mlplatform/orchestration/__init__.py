"""Orchestration: the Airflow REST client the platform uses to trigger and follow training/monitoring runs."""

from mlplatform.orchestration.airflow_client import (
    AirflowClient,
    AirflowError,
    AirflowTimeoutError,
    AirflowUnreachableError,
    DagRun,
    ImportErrorInfo,
    TaskInstance,
)

__all__ = [
    "AirflowClient",
    "AirflowError",
    "AirflowTimeoutError",
    "AirflowUnreachableError",
    "DagRun",
    "ImportErrorInfo",
    "TaskInstance",
]
