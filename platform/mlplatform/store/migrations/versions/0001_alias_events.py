"""alias events: durable history of champion/challenger moves

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("alias", sa.String(32), nullable=False),
        sa.Column("from_version", sa.String(16), nullable=True),
        sa.Column("to_version", sa.String(16), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_alias_events_model", "alias_events", ["model"])
    op.create_index("ix_alias_events_created_at", "alias_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_alias_events_created_at", table_name="alias_events")
    op.drop_index("ix_alias_events_model", table_name="alias_events")
    op.drop_table("alias_events")
