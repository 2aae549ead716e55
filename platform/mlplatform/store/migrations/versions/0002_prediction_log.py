"""prediction log: every prediction of the model servers, for drift jobs

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prediction_log",
        # BIGINT on PostgreSQL (the log grows without bound); sqlite only auto-increments INTEGER PRIMARY KEY.
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("entity", sa.JSON(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("label", sa.Integer(), nullable=False),
    )
    op.create_index("ix_prediction_log_model_name_ts", "prediction_log", ["model_name", "ts"])


def downgrade() -> None:
    op.drop_index("ix_prediction_log_model_name_ts", table_name="prediction_log")
    op.drop_table("prediction_log")
