"""Shared fixtures.

External services are found by themselves: PostgreSQL where a passwordless login as ``postgres`` to
127.0.0.1:5432 works, Redis where 127.0.0.1:6379 answers PING.  ``MLP_TEST_POSTGRES_URL`` (a server URL such as
``postgresql://postgres@127.0.0.1:5432``) and ``MLP_TEST_REDIS`` (``host:port``) point elsewhere.  A test whose
service or tool is missing is skipped with a reason naming it and how to get it, and ``make test`` still exits 0;
under CI (``CI=true``) every skip is turned into a failure (see ``pytest_runtest_makereport``), so a green CI
means every test ran.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from mlplatform.config import Settings
from tests.support.environment import embedded_settings, in_ci, scratch_postgres, skip_missing, with_migrated_db
from tests.support.tools import require_tool

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_REDIS = "127.0.0.1:6379"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Under CI a skip is a failure: CI's machine has every tool, so a skip there means one was not installed."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"


def _connect_error(host: str, port: int) -> str:
    """'' when something accepts TCP connections on host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return ""
    except OSError as error:
        return str(error)


def _redis_error(address: str) -> str:
    """'' when the Redis server at ``host:port`` answers PING, else why not."""
    host, _, port = address.partition(":")
    try:
        with socket.create_connection((host, int(port or 6379)), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            answer = sock.recv(64)
    except OSError as error:
        return str(error)
    return "" if answer.startswith(b"+PONG") else f"answered {answer[:40]!r} to PING"


def _postgres_error(server_url: str) -> str:
    """'' when ``server_url`` accepts a login to its ``postgres`` database, else why not."""
    import sqlalchemy as sa

    engine = sa.create_engine(f"{server_url}/postgres", connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as error:
        cause = error.orig if isinstance(error, sa.exc.DBAPIError) else None  # the driver's own message, when any
        return str(cause or error).strip().splitlines()[0]
    finally:
        engine.dispose()
    return ""


@pytest.fixture(scope="session")
def redis_address() -> str:
    """``host:port`` of a real Redis server: ``MLP_TEST_REDIS``, or the one on the default local port."""
    address = os.environ.get("MLP_TEST_REDIS") or DEFAULT_REDIS
    problem = _redis_error(address)
    if problem:
        skip_missing(
            f"a Redis server at {address} ({problem})",
            "start one (Debian package redis-server) or point MLP_TEST_REDIS at one",
        )
    return address


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """URL of a real PostgreSQL server (no database part): ``MLP_TEST_POSTGRES_URL``, or a passwordless
    ``postgres`` login on the default local port; tests create their own databases."""
    url = (os.environ.get("MLP_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_URL).rstrip("/")
    hostport = url.split("@")[-1].split("/")[0]
    host, _, port = hostport.partition(":")
    problem = _connect_error(host, int(port or 5432)) or _postgres_error(url)
    if problem:
        skip_missing(
            f"a PostgreSQL server at {hostport} ({problem})",
            "start one (Debian package postgresql) that lets `postgres` log in, or set MLP_TEST_POSTGRES_URL",
        )
    return url


@pytest.fixture()
def postgres_database(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    with scratch_postgres(postgres_server_url) as url:
        yield url


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    """Embedded-profile settings whose state lives in a per-test directory, with free ports, and whose platform DB
    is migrated as `mlplatform stack up` leaves it (processes only check its revision)."""
    return with_migrated_db(embedded_settings(tmp_path / "state"))


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def amtool() -> str:
    return require_tool("amtool", "prometheus-alertmanager")
