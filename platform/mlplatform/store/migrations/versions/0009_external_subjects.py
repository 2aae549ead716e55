"""users signed in through OpenID Connect are identified by issuer + subject (the provider's stable id), not by name

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("external_subject", sa.String(255), nullable=True))
        batch.create_index("ux_users_external_identity", ["external_issuer", "external_subject"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_index("ux_users_external_identity")
        batch.drop_column("external_subject")
