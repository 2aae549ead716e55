"""The drift results contract against a real PostgreSQL, schema made by Alembic (migration 0005)."""

from __future__ import annotations

import pytest

from tests.support.contracts.drift import check_drift_contract

pytestmark = pytest.mark.integration


def test_drift_contract_on_postgres(postgres_database: str) -> None:
    check_drift_contract(postgres_database)
