"""prediction log: the label is nullable, since regression models predict a value and no class

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("prediction_log") as batch:
        batch.alter_column("label", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    # Rows of regression models have no class to restore: they cannot be kept under a NOT NULL label.
    op.execute("DELETE FROM prediction_log WHERE label IS NULL")
    with op.batch_alter_table("prediction_log") as batch:
        batch.alter_column("label", existing_type=sa.Integer(), nullable=False)
