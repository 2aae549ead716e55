"""Database roles with the least power a component needs (PostgreSQL).

A model server only appends to the prediction log: its role may INSERT into ``prediction_log`` (and draw ids from
its sequence) and read the schema revision (``PlatformStore.connect`` checks it), nothing else.  A compromised
model server can then neither read users and tokens nor change the schema or past predictions.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from mlplatform.store.db import VERSION_TABLE
from mlplatform.store.models import PredictionLogRow

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mlplatform.store.db import PlatformStore

ROLE_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
MIN_ROLE_PASSWORD_LENGTH = 16
_VERIFIER = re.compile(r"^SCRAM-SHA-256\$[A-Za-z0-9+/=:$]+$")
# Role attributes that grant nothing beyond logging in; NOINHERIT: privileges of any role it was made a member of
# (by someone, some day) do not apply to its sessions.
_LEAST_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"


class RoleError(ValueError):
    """A role that cannot be created as asked; the message says why (never containing the password)."""


def check_role_request(role: str, password: str) -> None:
    if not re.fullmatch(ROLE_PATTERN, role):
        raise RoleError(f"role name {role!r}: 1-63 characters, lowercase letters, digits and '_', not a digit first")
    if len(password) < MIN_ROLE_PASSWORD_LENGTH:
        raise RoleError(f"the role's password must be at least {MIN_ROLE_PASSWORD_LENGTH} characters")


def grant_prediction_writer(store: PlatformStore, role: str, password: str) -> None:
    """Create (or bring back to) a login role that may only append to the prediction log.

    Run by a database owner after ``db upgrade``.  An existing role loses every other privilege on the schema's
    tables and sequences and every role membership, so running it again repairs a role someone widened.  The
    password is sent as a SCRAM verifier computed here, so it never appears in the server's statement log.
    """
    check_role_request(role, password)
    if store.engine.dialect.name != "postgresql":
        raise RoleError(f"database roles need PostgreSQL; this platform DB is {store.engine.dialect.name}")
    with store.engine.begin() as connection:
        verifier = _scram_verifier(connection, role, password)
        exists = connection.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role})
        verb = "ALTER" if exists else "CREATE"
        # The driver's own call: the verifier's ':' would read as bind parameters to text().
        connection.exec_driver_sql(f"{verb} ROLE \"{role}\" WITH {_LEAST_ATTRIBUTES} PASSWORD '{verifier}'")
        _revoke_everything(connection, role)
        _grant_insert_only(connection, role)
        _verify_insert_only(connection, role)


def _scram_verifier(connection: Connection, role: str, password: str) -> str:
    """The password as PostgreSQL stores it (SCRAM-SHA-256), computed by the driver's libpq."""
    dbapi: Any = connection.connection.dbapi_connection
    pgconn = getattr(dbapi, "pgconn", None)
    if pgconn is not None:  # psycopg 3
        verifier = pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()
    else:  # psycopg2
        from psycopg2.extensions import encrypt_password  # type: ignore[import-untyped]

        verifier = encrypt_password(password, role, dbapi, "scram-sha-256")
    if not _VERIFIER.fullmatch(verifier):
        raise RoleError("the database driver did not produce a SCRAM-SHA-256 password verifier")
    return str(verifier)


def _revoke_everything(connection: Connection, role: str) -> None:
    schema = connection.scalar(text("SELECT quote_ident(current_schema())"))
    connection.execute(text(f'REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM "{role}"'))
    connection.execute(text(f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM "{role}"'))
    memberships = connection.scalars(
        text(
            "SELECT quote_ident(granted.rolname) FROM pg_auth_members m "
            "JOIN pg_roles granted ON granted.oid = m.roleid JOIN pg_roles member ON member.oid = m.member "
            "WHERE member.rolname = :role"
        ),
        {"role": role},
    ).all()
    for granted in memberships:
        connection.execute(text(f'REVOKE {granted} FROM "{role}"'))


def _grant_insert_only(connection: Connection, role: str) -> None:
    table = PredictionLogRow.__tablename__
    database = connection.scalar(text("SELECT quote_ident(current_database())"))
    schema = connection.scalar(text("SELECT quote_ident(current_schema())"))
    sequence = connection.scalar(text("SELECT pg_get_serial_sequence(:table, 'id')"), {"table": table})
    if sequence is None:
        raise RoleError(f"no {table} table with an id sequence here: run `mlplatform db upgrade` first")
    connection.execute(text(f'GRANT CONNECT ON DATABASE {database} TO "{role}"'))
    connection.execute(text(f'GRANT USAGE ON SCHEMA {schema} TO "{role}"'))
    connection.execute(text(f'GRANT INSERT ON {schema}.{table} TO "{role}"'))
    connection.execute(text(f'GRANT USAGE ON SEQUENCE {sequence} TO "{role}"'))
    connection.execute(text(f'GRANT SELECT ON {schema}.{VERSION_TABLE} TO "{role}"'))


# What the role may do on each table it may touch at all; every other table: nothing.
_EXPECTED = {PredictionLogRow.__tablename__: {"INSERT"}, VERSION_TABLE: {"SELECT"}}
_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


def _verify_insert_only(connection: Connection, role: str) -> None:
    """Check the result, PUBLIC's grants included (revoking from the role cannot take those back): a role that
    could do more is refused, and the transaction creating it rolls back."""
    schema = connection.scalar(text("SELECT current_schema()"))
    if connection.scalar(
        text("SELECT has_schema_privilege(:role, :schema, 'CREATE')"), {"role": role, "schema": schema}
    ):
        raise RoleError(
            f"a role could still create tables in schema {schema} because PUBLIC may (PostgreSQL before 15 allows "
            f"it by default): run `REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC` as the database owner, then again"
        )
    tables = connection.scalars(text("SELECT tablename FROM pg_tables WHERE schemaname = :schema"), {"schema": schema})
    for table in tables.all():
        held = {
            privilege
            for privilege in _TABLE_PRIVILEGES
            if connection.scalar(
                text("SELECT has_table_privilege(:role, quote_ident(:schema) || '.' || quote_ident(:table), :p)"),
                {"role": role, "schema": schema, "table": table, "p": privilege},
            )
        }
        extra = held - _EXPECTED.get(table, set())
        if extra:
            raise RoleError(
                f"the role would still hold {', '.join(sorted(extra))} on {table} (granted to PUBLIC): revoke that "
                "from PUBLIC, then run this again"
            )
