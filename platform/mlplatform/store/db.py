"""Access to the platform database (sqlite in embedded mode, PostgreSQL in production).

The schema is owned by Alembic and migrated from one place only: ``mlplatform db upgrade`` (which ``stack up``
runs, and in the chart the migration hook Job).  Every other process (the API, model servers'
prediction log, drift checks, the CLI) opens the database with ``PlatformStore.connect``, which checks the schema's
revision and refuses to work on one it was not written for, instead of changing the schema itself: a model
server's credential then needs no DDL rights, two processes never race to migrate, and a database upgraded by newer
code is refused by older code rather than written to with assumptions that no longer hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.orm import Session, sessionmaker

from mlplatform.store.models import AliasEventRow, as_utc

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Our own version table: the platform DB may share a PostgreSQL database with MLflow, which keeps its Alembic
# revision in the default `alembic_version` table.
VERSION_TABLE = "mlplatform_alembic_version"
EARLIER_VERSION_TABLE = "alembic_version"
"""Where releases before this table kept the platform's revision."""
UPGRADE_COMMAND = "mlplatform db upgrade"
# PostgreSQL advisory lock held while migrating (any fixed number; this one spells "mlp" in ASCII).
MIGRATION_LOCK_KEY = 0x6D6C70
# How long a sqlite writer waits for another process's write lock before failing (the API, the model servers'
# checks and the CLI share the embedded database).
SQLITE_BUSY_TIMEOUT_S = 15.0
# PostgreSQL: a connection attempt or a statement that takes longer fails instead of holding a worker forever.
POSTGRES_CONNECT_TIMEOUT_S = 10
POSTGRES_STATEMENT_TIMEOUT_MS = 30_000


class SchemaVersionError(RuntimeError):
    """The database's schema is not the revision this code was written for; the message says which and what to do.

    Not a ``ValueError``: the prediction log drops batches its sink rejects as bad values, but keeps and retries
    these (the schema can be upgraded while the server runs)."""


class SchemaBehindError(SchemaVersionError):
    """An empty database, or one at an older revision: ``mlplatform db upgrade`` brings it to this code's."""


class SchemaNewerError(SchemaVersionError):
    """A revision this code does not know: the database was upgraded by a newer release."""


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


def _engine_for(url: str, pre_ping: bool = True) -> Engine:
    """An engine whose connections cannot hang: sqlite in WAL mode (readers never wait for the writer) with a busy
    timeout, PostgreSQL with connect and statement timeouts.  ``pre_ping``: test each pooled connection with a
    round trip before lending it out, for callers that cannot simply try again."""
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, pool_pre_ping=pre_ping, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_write_ahead_log)
        return engine
    if url.startswith("postgresql"):
        limits = {
            "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S,
            "options": f"-c statement_timeout={POSTGRES_STATEMENT_TIMEOUT_MS}",
        }
        return create_engine(url, pool_pre_ping=pre_ping, connect_args=limits)
    return create_engine(url, pool_pre_ping=pre_ping)


def _sqlite_write_ahead_log(connection: Any, _record: object) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


class PlatformStore:
    """Reads and writes platform records; one instance per process is enough."""

    def __init__(self, url: str, *, pre_ping: bool = True) -> None:
        self.url = url
        self.engine = _engine_for(url, pre_ping)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def connect(cls, url: str, *, pre_ping: bool = True) -> PlatformStore:
        """A store whose schema is at this code's revision; ``SchemaVersionError`` (naming the fix) otherwise.

        Reads the version table only: the credential needs no other right for this check.  ``pre_ping=False``
        for a caller that retries a failed call anyway (the prediction log's writer): a round trip less per
        transaction."""
        store = cls(url, pre_ping=pre_ping)
        try:
            store.check_schema()
        except BaseException:
            store.dispose()
            raise
        return store

    @classmethod
    def migrated(cls, url: str) -> PlatformStore:
        """A store whose schema has just been brought to this code's revision: for ``db upgrade``, ``stack up``
        and tests that start from an empty database; everything else uses ``connect``."""
        store = cls(url)
        store.migrate()
        return store

    def migrate(self) -> None:
        """Upgrade the schema to the newest Alembic revision (refused for a revision this code does not know)."""
        from alembic import command

        current = self.revision()
        if current is not None and current not in known_revisions():
            raise self._newer_error(current)
        config = _alembic_config()
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Two upgrades at once (replicas starting together) take turns; the second finds nothing to do.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            config.attributes["connection"] = connection
            if current is None:
                _adopt_earlier_version_table(connection, config)
            command.upgrade(config, "head")

    def revision(self) -> str | None:
        """The schema's current revision; None for a database no migration has touched."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
            heads = context.get_current_heads()
        return heads[0] if heads else None

    def check_schema(self) -> None:
        """Raise ``SchemaBehindError`` or ``SchemaNewerError`` unless the schema is at this code's head."""
        current, head = self.revision(), head_revision()
        if current == head:
            return
        if current is not None and current not in known_revisions():
            raise self._newer_error(current)
        found = f"at revision {current}" if current else "empty (no platform schema yet)"
        raise SchemaBehindError(
            f"the platform database {self._where()} is {found}; this code needs revision {head}: "
            f"run `{UPGRADE_COMMAND}` (`mlplatform stack up` runs it in the embedded profile)"
        )

    def _newer_error(self, current: str) -> SchemaNewerError:
        return SchemaNewerError(
            f"the platform database {self._where()} is at revision {current}, which this code does not know (its "
            f"newest is {head_revision()}): it was upgraded by a newer mlplatform; run that release, or restore a "
            "backup taken before the upgrade"
        )

    def _where(self) -> str:
        return f"({self.engine.url.render_as_string(hide_password=True)})"

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


def _adopt_earlier_version_table(connection: Any, config: Config) -> None:
    """A database set up by a release from before ``VERSION_TABLE`` keeps its revision in Alembic's default
    ``alembic_version``: that revision is carried over (and the old table dropped), so the upgrade continues from it
    instead of creating tables that exist.  Only a revision of ours is taken: MLflow keeps its own there."""
    from alembic import command
    from sqlalchemy import inspect

    if not inspect(connection).has_table(EARLIER_VERSION_TABLE):
        return
    revisions = connection.execute(text(f"SELECT version_num FROM {EARLIER_VERSION_TABLE}")).scalars().all()
    if len(revisions) != 1 or revisions[0] not in known_revisions():
        return
    command.stamp(config, revisions[0])
    connection.execute(text(f"DROP TABLE {EARLIER_VERSION_TABLE}"))


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config())


@cache
def head_revision() -> str:
    """The newest revision this code's migrations know."""
    head = _scripts().get_current_head()
    assert head is not None, "the platform migrations have a single head"
    return head


@cache
def known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


def _to_event(row: AliasEventRow) -> AliasEvent:
    return AliasEvent(
        model=row.model,
        alias=row.alias,
        from_version=row.from_version,
        to_version=row.to_version,
        actor=row.actor,
        reason=row.reason,
        created_at=as_utc(row.created_at),
    )
