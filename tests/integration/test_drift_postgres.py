"""Drift checks on a real PostgreSQL: the results contract (schema made by Alembic, migration 0005), and the
window sampled by the database (counts and a hashed top-N in SQL), so only the sample reaches the check."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.contracts.drift import check_drift_contract
from tests.support.contracts.prediction_log import check_sample, log_settings

pytestmark = pytest.mark.integration


def test_drift_contract_on_postgres(postgres_database: str) -> None:
    check_drift_contract(postgres_database)


def test_the_window_is_counted_and_sampled_in_postgres(tmp_path: Path, postgres_database: str) -> None:
    check_sample(log_settings(tmp_path, "postgres", prediction_log_url=postgres_database))
