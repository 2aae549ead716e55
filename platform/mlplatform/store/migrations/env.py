"""Alembic environment: runs migrations on the connection ``PlatformStore.migrate`` hands over."""

from alembic import context

from mlplatform.store.models import Base

# Our own version table: the platform DB may share a PostgreSQL database with MLflow, which keeps its Alembic
# revision in the default `alembic_version` table.
VERSION_TABLE = "mlplatform_alembic_version"

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=Base.metadata, render_as_batch=True, version_table=VERSION_TABLE
)
with context.begin_transaction():
    context.run_migrations()
