"""Contract of the control-plane repositories (users, tokens, audit, deployments); run on sqlite here and on
PostgreSQL by tests/integration/test_api_postgres.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlplatform.store import PlatformStore
from mlplatform.store.auth import lower_role, role_allows
from mlplatform.store.db import SQLITE_BUSY_TIMEOUT_S
from tests.support.contracts.store import check_audit_contract, check_auth_contract


def test_auth_contract_on_sqlite(tmp_path: Path) -> None:
    check_auth_contract(f"sqlite:///{tmp_path / 'platform.db'}")


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    """Readers never wait for a writer, and a writer waits for another's lock instead of failing at once."""
    store = PlatformStore.migrated(f"sqlite:///{tmp_path / 'platform.db'}")
    try:
        with store.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_S * 1000
    finally:
        store.dispose()


def test_audit_contract_on_sqlite(tmp_path: Path) -> None:
    check_audit_contract(f"sqlite:///{tmp_path / 'platform.db'}")


@pytest.mark.parametrize(
    ("have", "need", "allowed"),
    [
        ("viewer", "viewer", True),
        ("viewer", "data-scientist", False),
        ("approver", "data-scientist", True),
        ("admin", "approver", True),
        ("data-scientist", "approver", False),
        ("nonsense", "viewer", False),
    ],
)
def test_roles_imply_the_ones_before(have: str, need: str, allowed: bool) -> None:
    assert role_allows(have, need) is allowed


def test_a_token_never_grants_more_than_its_user() -> None:
    assert lower_role("viewer", "admin") == "viewer"
    assert lower_role("admin", "viewer") == "viewer"
    assert lower_role("approver", None) == "approver"
