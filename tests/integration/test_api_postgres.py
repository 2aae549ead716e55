"""The control-plane store contract against a real PostgreSQL, schema made by Alembic."""

from __future__ import annotations

import pytest

from mlplatform.store import PlatformStore
from tests.support.contracts.store import check_audit_contract, check_auth_contract

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
