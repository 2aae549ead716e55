"""The control-plane store contract against a real PostgreSQL, schema made by Alembic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mlplatform.config import get_settings
from mlplatform.store import PlatformStore
from mlplatform.store.audit import AuditLog
from mlplatform.store.auth import AuthRepository
from tests.support.contracts.store import check_audit_contract, check_auth_contract
from tests.support.environment import free_port
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_auth_contract_on_postgres(postgres_database: str) -> None:
    check_auth_contract(postgres_database)


def test_postgres_connections_carry_a_statement_timeout(postgres_database: str) -> None:
    store = PlatformStore.migrated(postgres_database)
    try:
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "30s"
    finally:
        store.dispose()


def test_audit_contract_on_postgres(postgres_database: str) -> None:
    check_audit_contract(postgres_database)


def test_migration_0003_creates_the_tables(postgres_database: str) -> None:
    import sqlalchemy as sa

    from mlplatform.store import PlatformStore

    store = PlatformStore.migrated(postgres_database)
    try:
        inspector = sa.inspect(store.engine)
        tables = set(inspector.get_table_names())
        audit_id = {column["name"]: column for column in inspector.get_columns("audit_events")}["id"]
    finally:
        store.dispose()
    assert {"users", "api_tokens", "audit_events", "deployments"} <= tables
    assert isinstance(audit_id["type"], sa.BigInteger)


# -- the login limiter across API processes, behind a proxy ------------------------------------------------------

ADMIN_PASSWORD = "the admin's long password"
PROXIED = {"X-Forwarded-For": "198.51.100.1"}


@dataclass
class ApiProcess:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def login(self, password: str, headers: dict[str, str] | None = None) -> int:
        body = {"username": "admin", "password": password}
        return httpx.post(f"{self.url}/api/v1/session", json=body, headers=headers or {}, timeout=10).status_code


def start_api(database: str, state_dir: Path, trusted_proxies: list[str]) -> ApiProcess:
    """A real `mlplatform api serve` (the stack's and the chart's API process) over ``database``."""
    port = free_port()
    env = {
        **os.environ,
        "MLP_STATE_DIR": str(state_dir),
        "MLP_DB__URL": database,
        "MLP_API__PORT": str(port),
        "MLP_API__ADMIN_PASSWORD": ADMIN_PASSWORD,
        "MLP_API__FORWARDED_ALLOW_IPS": json.dumps(trusted_proxies),
    }
    state_dir.mkdir(parents=True)
    log_path = state_dir / "api.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlplatform"), "api", "serve"], env=env, stdout=log, stderr=log
        )
    api = ApiProcess(f"http://127.0.0.1:{port}", process, log_path)

    def ready() -> bool:
        assert process.poll() is None, f"the API exited:\n{log_path.read_text()[-3000:]}"
        try:
            return httpx.get(f"{api.url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, 60, "the API's /readyz", interval=0.3)
    return api


@pytest.fixture()
def two_apis(postgres_database: str, tmp_path: Path) -> Iterator[tuple[ApiProcess, ApiProcess]]:
    """Two API processes on one database: the first trusts a proxy on 127.0.0.1, the second trusts none."""
    store = PlatformStore.migrated(postgres_database)
    AuthRepository(store).create_user("admin", "admin", ADMIN_PASSWORD)
    store.dispose()
    started: list[ApiProcess] = []
    try:
        started.append(start_api(postgres_database, tmp_path / "behind-proxy", ["127.0.0.1"]))
        started.append(start_api(postgres_database, tmp_path / "direct", []))
        yield started[0], started[1]
    finally:
        for api in started:
            api.process.terminate()
            api.process.wait(15)


@pytest.mark.timeout(180)
def test_the_login_limit_is_shared_by_api_processes_and_trusts_forwarded_headers_only_from_proxies(
    two_apis: tuple[ApiProcess, ApiProcess], postgres_database: str
) -> None:
    behind_proxy, direct = two_apis
    limit = get_settings().api.login_attempts_per_minute
    # Behind the trusted proxy the client is the one X-Forwarded-For names.
    for _ in range(limit):
        assert behind_proxy.login("wrong password!", PROXIED) == 401
    assert behind_proxy.login(ADMIN_PASSWORD, PROXIED) == 429
    assert behind_proxy.login(ADMIN_PASSWORD, {"X-Forwarded-For": "198.51.100.2"}) == 200  # another client
    # Without a trusted proxy the header is ignored: every attempt counts against the peer, 127.0.0.1.
    for address in range(limit):
        assert direct.login("wrong password!", {"X-Forwarded-For": f"203.0.113.{address}"}) == 401
    assert direct.login(ADMIN_PASSWORD, {"X-Forwarded-For": "203.0.113.99"}) == 429
    # And the other process counts the same failures (127.0.0.1 with no header reaches it as itself).
    assert behind_proxy.login(ADMIN_PASSWORD) == 429
    store = PlatformStore.connect(postgres_database)
    clients = {event.client for event in AuditLog(store).query(action="session.login", result="failed")}
    store.dispose()
    assert clients == {"198.51.100.1", "127.0.0.1"}


def test_concurrent_upgrades_take_turns(postgres_database: str) -> None:
    """Replicas (or jobs) starting together each run `db upgrade`: they wait on one lock, none fails."""
    from concurrent.futures import ThreadPoolExecutor

    from mlplatform.store.db import head_revision

    with ThreadPoolExecutor(max_workers=3) as pool:
        stores = list(pool.map(PlatformStore.migrated, [postgres_database] * 3))
    assert [store.revision() for store in stores] == [head_revision()] * 3
    for store in stores:
        store.dispose()
