"""auto incidents

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
    with op.batch_alter_table("outages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ticket_number", sa.String(length=16), nullable=True))
        batch_op.create_index(batch_op.f("ix_outages_ticket_number"), ["ticket_number"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outages_ticket_number"))
        batch_op.drop_column("ticket_number")
