"""The prediction log contract against a real PostgreSQL: the production sink, schema made by Alembic."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.contracts.prediction_log import (
    check_contract,
    check_regression_records,
    check_window,
    log_settings,
)

pytestmark = pytest.mark.integration


def test_n_records_in_from_many_threads_n_records_out(tmp_path: Path, postgres_database: str) -> None:
    settings = log_settings(tmp_path, "postgres", prediction_log_url=postgres_database)
    check_contract(settings)
    check_window(settings)


def test_regression_records_have_no_label(tmp_path: Path, postgres_database: str) -> None:
    check_regression_records(log_settings(tmp_path, "postgres", prediction_log_url=postgres_database))


def test_migration_creates_the_table_and_its_time_window_index(postgres_database: str) -> None:
    import sqlalchemy as sa

    from mlplatform.store import PlatformStore

    store = PlatformStore.migrated(postgres_database)
    try:
        inspector = sa.inspect(store.engine)
        columns = {column["name"]: column for column in inspector.get_columns("prediction_log")}
        indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("prediction_log")}
    finally:
        store.dispose()
    assert set(columns) == {
        "id",
        "request_id",
        "ts",
        "model_name",
        "model_version",
        "entity",
        "features",
        "score",
        "label",
    }
    assert isinstance(columns["ts"]["type"], sa.DateTime) and columns["ts"]["type"].timezone
    assert isinstance(columns["id"]["type"], sa.BigInteger)
    assert columns["label"]["nullable"] and not columns["score"]["nullable"]  # migration 0007
    assert indexes["ix_prediction_log_model_name_ts"] == ["model_name", "ts"]
