"""Shared fixtures.

External services (PostgreSQL, Redis) are found through environment variables that ``.ci/run`` sets:
``MLP_TEST_POSTGRES_URL`` (a server URL such as ``postgresql://postgres@127.0.0.1:5432``) and
``MLP_TEST_REDIS`` (``host:port``).  Where a variable is unset the tests that need it are skipped with a reason
that ``make test`` prints; under CI (``CI=true``) an unset or unreachable service is a failure instead, so a green
CI always means the production profile was exercised.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlplatform.config import Settings, get_settings

REPO_ROOT = Path(__file__).resolve().parents[1]


def _service_or_skip(variable: str, what: str) -> str:
    value = os.environ.get(variable)
    if not value:
        message = f"{what} tests need {variable} (e.g. set by .ci/run); it is unset"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return value


def _assert_reachable(host: str, port: int, what: str) -> None:
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as error:
        message = f"{what} at {host}:{port} is unreachable: {error}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def redis_address() -> str:
    """``host:port`` of a real Redis server."""
    address = _service_or_skip("MLP_TEST_REDIS", "Redis")
    host, _, port = address.partition(":")
    _assert_reachable(host, int(port or 6379), "Redis")
    return address


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """URL of a real PostgreSQL server (no database part); tests create their own databases."""
    url = _service_or_skip("MLP_TEST_POSTGRES_URL", "PostgreSQL").rstrip("/")
    hostport = url.split("@")[-1].split("/")[0]
    host, _, port = hostport.partition(":")
    _assert_reachable(host, int(port or 5432), "PostgreSQL")
    return url


@contextmanager
def scratch_postgres(server_url: str, prefix: str = "mlp_test") -> Iterator[str]:
    """A fresh, empty PostgreSQL database on ``server_url``, dropped afterwards; yields its URL."""
    import sqlalchemy as sa

    server_url = server_url.rstrip("/")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server_url}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture()
def postgres_database(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with scratch_postgres(postgres_server_url) as url:
        yield url


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    """Embedded-profile settings whose state lives in a per-test directory, with free ports."""
    return get_settings(
        state_dir=tmp_path / "state",
        specs_dir=REPO_ROOT / "pipelines" / "specs",
        feast={"repo_path": REPO_ROOT / "feature_repo", "project": "mlp_test"},
        airflow={"dags_folder": REPO_ROOT / "pipelines" / "dags", "port": free_port()},
        mlflow={"port": free_port()},
        prometheus={"port": free_port(), "alertmanager_port": free_port()},
    )
