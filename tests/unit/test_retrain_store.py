"""Contract of the retrain records (migration 0006): run on sqlite here and on PostgreSQL by
tests/integration/test_retrain_store_postgres.py."""

from __future__ import annotations

from pathlib import Path

from tests.support.contracts.retrains import check_retrain_contract


def test_retrain_contract_on_sqlite(tmp_path: Path) -> None:
    check_retrain_contract(f"sqlite:///{tmp_path / 'platform.db'}")
