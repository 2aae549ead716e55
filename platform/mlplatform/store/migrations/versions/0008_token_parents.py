"""api tokens: the token a token was created with (its parent), so a child never outlives it or its revocation

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_api_tokens_parent", "api_tokens", ["parent_id"], ["id"], ondelete="CASCADE")
        batch.create_index("ix_api_tokens_parent_id", ["parent_id"])


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_index("ix_api_tokens_parent_id")
        batch.drop_constraint("fk_api_tokens_parent", type_="foreignkey")
        batch.drop_column("parent_id")
