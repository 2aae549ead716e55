"""drift checks of the monitoring loop: one row per check (window, model version, verdict) and one per feature

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "drift_checks",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("reference_run_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("rows_compared", sa.Integer(), nullable=False),
        sa.Column("min_rows", sa.Integer(), nullable=False),
        sa.Column("reference_rows", sa.Integer(), nullable=False),
        sa.Column("drift_share_threshold", sa.Float(), nullable=False),
        sa.Column("drift_share", sa.Float(), nullable=True),
        sa.Column("dataset_drift", sa.Boolean(), nullable=True),
        sa.Column("prediction_method", sa.String(64), nullable=True),
        sa.Column("prediction_drift_score", sa.Float(), nullable=True),
        sa.Column("prediction_drifted", sa.Boolean(), nullable=True),
        sa.Column("has_report", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_index("ix_drift_checks_model_id", "drift_checks", ["model", "id"])
    op.create_table(
        "drift_feature_results",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("check_id", _ID, sa.ForeignKey("drift_checks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("feature", sa.String(128), nullable=False),
        sa.Column("method", sa.String(64), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("drifted", sa.Boolean(), nullable=True),
        sa.Column("missing_count", sa.Integer(), nullable=False),
        sa.Column("out_of_range_count", sa.Integer(), nullable=False),
        sa.Column("reference_min", sa.Float(), nullable=True),
        sa.Column("reference_max", sa.Float(), nullable=True),
    )
    op.create_index("ix_drift_feature_results_check_id", "drift_feature_results", ["check_id"])


def downgrade() -> None:
    op.drop_index("ix_drift_feature_results_check_id", table_name="drift_feature_results")
    op.drop_table("drift_feature_results")
    op.drop_index("ix_drift_checks_model_id", table_name="drift_checks")
    op.drop_table("drift_checks")
