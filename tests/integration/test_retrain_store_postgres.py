"""The retrain records (migration 0006) against a real PostgreSQL, schema made by Alembic."""

from __future__ import annotations

import pytest

from tests.support.contracts.retrains import check_retrain_contract

pytestmark = pytest.mark.integration


def test_retrain_contract_on_postgres(postgres_database: str) -> None:
    check_retrain_contract(postgres_database)
