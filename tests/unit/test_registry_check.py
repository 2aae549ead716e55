"""The registry reachability check: a clear error for a dead server, and no TLS context built per call (a model
server's alias poller runs it every few seconds, and building one holds the GIL for tens of milliseconds)."""

from __future__ import annotations

import pytest

from mlplatform.registry import mlflow_registry
from mlplatform.registry.mlflow_registry import RegistryUnavailableError, check_reachable
from tests.support.environment import free_port


def test_unreachable_server_is_named_with_what_to_do() -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RegistryUnavailableError, match=rf"MLflow at {uri} is unreachable .*mlplatform stack up"):
        check_reachable(uri, timeout_s=1.0)


def test_checks_share_one_tls_context() -> None:
    mlflow_registry._tls_context.cache_clear()
    uri = f"http://127.0.0.1:{free_port()}"
    for _ in range(3):
        with pytest.raises(RegistryUnavailableError):
            check_reachable(uri, timeout_s=1.0)
    assert mlflow_registry._tls_context.cache_info().misses == 1


def test_non_http_uris_are_not_checked() -> None:
    check_reachable("sqlite:///nowhere/mlflow.db")  # a local store has nothing to reach
