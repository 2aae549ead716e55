"""Rollouts and late labels on a real PostgreSQL: the contract of tests/support/contracts/rollouts.py (one open
rollout per model, one replica claims each evaluation, each label stored once)."""

from __future__ import annotations

import pytest

from tests.support.contracts.rollouts import check_rollout_contract

pytestmark = pytest.mark.integration


def test_rollout_contract_on_postgres(postgres_database: str) -> None:
    check_rollout_contract(postgres_database)
