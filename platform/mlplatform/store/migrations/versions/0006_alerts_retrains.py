"""retrain triggers: every drift alert the webhook received, what the retraining policy decided, the Airflow run

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retrain_triggers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("alertname", sa.String(128), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        # Set only on the one row that acted on its idempotency key: the unique constraint is what keeps two
        # deliveries of one alert (a replay, or two Alertmanager replicas) from starting two runs.
        sa.Column("claim_key", sa.String(255), nullable=True, unique=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("skip_reason", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("dag_id", sa.String(250), nullable=True),
        sa.Column("dag_run_id", sa.String(250), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    op.create_index("ix_retrain_triggers_model_id", "retrain_triggers", ["model", "id"])
    op.create_index("ix_retrain_triggers_status_next_attempt_at", "retrain_triggers", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_retrain_triggers_status_next_attempt_at", table_name="retrain_triggers")
    op.drop_index("ix_retrain_triggers_model_id", table_name="retrain_triggers")
    op.drop_table("retrain_triggers")
