"""Access to the platform database (sqlite in embedded mode, PostgreSQL in production).

The schema is owned by Alembic; ``PlatformStore.migrate()`` brings any database to the newest revision and is
safe to call on every start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from mlplatform.store.models import AliasEventRow

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# How long a sqlite writer waits for another process's write lock before failing (the API, the model servers'
# checks and the CLI share the embedded database).
SQLITE_BUSY_TIMEOUT_S = 15.0
# PostgreSQL: a connection attempt or a statement that takes longer fails instead of holding a worker forever.
POSTGRES_CONNECT_TIMEOUT_S = 10
POSTGRES_STATEMENT_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class AliasEvent:
    """A recorded alias move, as callers see it."""

    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str
    created_at: datetime


def _engine_for(url: str) -> Engine:
    """An engine whose connections cannot hang: sqlite in WAL mode (readers never wait for the writer) with a busy
    timeout, PostgreSQL with connect and statement timeouts."""
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, pool_pre_ping=True, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_write_ahead_log)
        return engine
    if url.startswith("postgresql"):
        limits = {
            "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={POSTGRES_STATEMENT_TIMEOUT_MS}",
        }
        return create_engine(url, pool_pre_ping=True, connect_args=limits)
    return create_engine(url, pool_pre_ping=True)


def _sqlite_write_ahead_log(connection: Any, _record: object) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


class PlatformStore:
    """Reads and writes platform records; one instance per process is enough."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine_for(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def connect(cls, url: str) -> PlatformStore:
        """A store whose schema is at the newest revision (cheap when it already is)."""
        store = cls(url)
        store.migrate()
        return store

    def migrate(self) -> None:
        """Upgrade the schema to the newest Alembic revision."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def session(self) -> Session:
        return self._sessions()

    def record_alias_move(
        self,
        *,
        model: str,
        alias: str,
        from_version: str | None,
        to_version: str | None,
        actor: str,
        reason: str,
    ) -> AliasEvent:
        """Persist one alias move; call it in the same step that moves the alias in the registry."""
        row = AliasEventRow(
            model=model,
            alias=alias,
            from_version=from_version,
            to_version=to_version,
            actor=actor,
            reason=reason,
            created_at=datetime.now(UTC),
        )
        with self.session() as session, session.begin():
            session.add(row)
        return _to_event(row)

    def alias_history(self, model: str, alias: str | None = None) -> list[AliasEvent]:
        """Alias moves of one model, oldest first."""
        query = select(AliasEventRow).where(AliasEventRow.model == model)
        if alias is not None:
            query = query.where(AliasEventRow.alias == alias)
        with self.session() as session:
            rows = session.scalars(query.order_by(AliasEventRow.id)).all()
        return [_to_event(row) for row in rows]

    def dispose(self) -> None:
        self.engine.dispose()


def _to_event(row: AliasEventRow) -> AliasEvent:
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return AliasEvent(
        model=row.model,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        actor=row.actor,
        reason=row.reason,
        created_at=created,
    )
