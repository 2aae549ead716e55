"""rollouts and their evaluations, late labels and online quality; the prediction log says which arm scored,
whether it answered, how long it took and, for a failure, why (with no score)

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("prediction_log") as batch:
        batch.add_column(sa.Column("arm", sa.String(16), nullable=True))
        batch.add_column(sa.Column("shadow", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("latency_s", sa.Double(), nullable=True))
        batch.add_column(sa.Column("error", sa.String(200), nullable=True))
        batch.alter_column("score", existing_type=sa.Double(), nullable=True)
    op.create_table(
        "outcome_labels",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("entity_value", sa.String(255), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("event_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("label", sa.Double(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(255), nullable=False),
    )
    op.create_index(
        "ux_outcome_labels_request", "outcome_labels", ["model_name", "request_id", "entity_value"], unique=True
    )
    op.create_index(
        "ux_outcome_labels_event", "outcome_labels", ["model_name", "entity_value", "event_ts"], unique=True
    )
    op.create_index("ix_outcome_labels_model_event_ts", "outcome_labels", ["model_name", "event_ts"])
    op.create_index("ix_outcome_labels_ingested_at", "outcome_labels", ["ingested_at"])
    op.create_table(
        "online_quality",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("labelled", sa.Integer(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_online_quality_model_id", "online_quality", ["model_name", "id"])
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("candidate_version", sa.String(32), nullable=False),
        sa.Column("champion_version", sa.String(32), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("share", sa.Double(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("started_by", sa.String(128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(128), nullable=True),
        sa.Column("next_evaluation_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recommendation", sa.String(32), nullable=True),
    )
    op.create_index("ix_rollouts_model_id", "rollouts", ["model_name", "id"])
    op.create_table(
        "rollout_evaluations",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.Integer(), sa.ForeignKey("rollouts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("champion_samples", sa.Integer(), nullable=False),
        sa.Column("candidate_samples", sa.Integer(), nullable=False),
        sa.Column("estimate", sa.Double(), nullable=True),
        sa.Column("lower", sa.Double(), nullable=True),
        sa.Column("upper", sa.Double(), nullable=True),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_index("ix_rollout_evaluations_rollout_id", "rollout_evaluations", ["rollout_id", "id"])


def downgrade() -> None:
    op.drop_table("rollout_evaluations")
    op.drop_table("rollouts")
    op.drop_table("online_quality")
    op.drop_table("outcome_labels")
    # Failures have no score and rows of a rollout's second arm no meaning before it: neither can be kept.
    op.execute("DELETE FROM prediction_log WHERE score IS NULL OR shadow")
    with op.batch_alter_table("prediction_log") as batch:
        batch.alter_column("score", existing_type=sa.Double(), nullable=False)
        batch.drop_column("error")
        batch.drop_column("latency_s")
        batch.drop_column("shadow")
        batch.drop_column("arm")
