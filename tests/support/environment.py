"""The machine the tests run on: the repository root, free ports, skips that name what is missing (failures
under CI), scratch PostgreSQL databases."""

from __future__ import annotations

import os
import random
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from mlplatform.config import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def skip_missing(what: str, how: str) -> NoReturn:
    """Skip a test for a missing tool or service, saying which and how to get it (a failure under CI)."""
    pytest.skip(f"needs {what}: {how}")


def with_migrated_db(settings: Settings) -> Settings:
    """``settings`` after migrating its platform DB, as `mlplatform stack up` (or `db upgrade`) does before any
    process opens it: processes only check the revision."""
    from mlplatform.store import PlatformStore

    PlatformStore.migrated(settings.db_url).dispose()
    return settings


@contextmanager
def scratch_postgres(server_url: str, prefix: str = "mlp_test") -> Iterator[str]:
    """A fresh, empty PostgreSQL database on ``server_url``, dropped afterwards; yields its URL."""
    import sqlalchemy as sa

    server_url = server_url.rstrip("/")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{server_url}/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# Below Linux's ephemeral range (32768-60999): a port there is never taken meanwhile by another process's bind(0)
# or outgoing connection between the moment a test picks it and the moment its server binds it (seen once: MLflow
# found its port answered by another server).
_PORT_RANGE = (20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now and that no other test of this run was given."""
    for _ in range(500):
        port = random.randint(*_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {_PORT_RANGE} after 500 tries")


def embedded_settings(state_dir: Path, **overrides: Any) -> Settings:
    """Embedded-profile settings with their state under ``state_dir`` and free ports (the ``settings`` fixture's,
    and a module's that needs them for longer than one test); ``overrides`` are further settings."""
    from mlplatform.config import get_settings

    return get_settings(
        state_dir=state_dir,
        bundled_models_dir=REPO_ROOT / "pipelines" / "models",
        feast={"repo_path": REPO_ROOT / "feature_repo", "project": "mlp_test"},
        airflow={"dags_folder": REPO_ROOT / "pipelines" / "dags", "port": free_port()},
        mlflow={"port": free_port()},
        prometheus={"port": free_port(), "alertmanager_port": free_port()},
        **overrides,
    )
