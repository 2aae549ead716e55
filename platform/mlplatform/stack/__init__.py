"""The embedded stack: MLflow and Airflow as supervised local processes under one state directory."""

from mlplatform.stack.embedded import EmbeddedStack, ProcessStatus, StackError, airflow_client, airflow_password
from mlplatform.stack.supervisor import HealthTimeoutError, ManagedStatus, Supervisor, SupervisorError

__all__ = [
    "EmbeddedStack",
    "HealthTimeoutError",
    "ManagedStatus",
    "ProcessStatus",
    "StackError",
    "Supervisor",
    "SupervisorError",
    "airflow_client",
    "airflow_password",
]
