"""Access to the platform database (sqlite in embedded mode, PostgreSQL in production).

The schema is owned by Alembic; ``PlatformStore.migrate()`` brings any database to the newest revision and is
safe to call on every start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from mlplatform.store.models import AliasEventRow

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


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
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return create_engine(url, pool_pre_ping=True)


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
