"""Alembic environment: runs migrations on the connection ``PlatformStore.migrate`` hands over."""

from alembic import context

from mlplatform.store.db import VERSION_TABLE
from mlplatform.store.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=Base.metadata, render_as_batch=True, version_table=VERSION_TABLE
)
with context.begin_transaction():
    context.run_migrations()
