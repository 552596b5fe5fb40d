"""playbook runs and their ansible-runner events

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
    op.create_table(
        "playbook_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("playbook", sa.String(length=64), nullable=False),
        sa.Column("inventory", sa.Text(), nullable=False),
        sa.Column("limit", sa.String(length=500), nullable=True),
        sa.Column("extra_vars", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("started_by", sa.String(length=64), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rc", sa.Integer(), nullable=True),
        sa.Column("duration_seconds", sa.Double(), nullable=True),
        sa.Column("stdout", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_playbook_runs_job_id_jobs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playbook_runs")),
        sa.UniqueConstraint("job_id", name=op.f("uq_playbook_runs_job_id")),
    )
    op.create_index(op.f("ix_playbook_runs_created_at"), "playbook_runs", ["created_at"], unique=False)
    op.create_index(op.f("ix_playbook_runs_playbook"), "playbook_runs", ["playbook"], unique=False)
    op.create_index(op.f("ix_playbook_runs_status"), "playbook_runs", ["status"], unique=False)
    op.create_table(
        "playbook_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("play", sa.String(length=500), nullable=True),
        sa.Column("task", sa.String(length=500), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("changed", sa.Boolean(), nullable=False),
        sa.Column("failed", sa.Boolean(), nullable=False),
        sa.Column("unreachable", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stdout", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["playbook_runs.id"],
                                name=op.f("fk_playbook_events_run_id_playbook_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_playbook_events")),
        sa.UniqueConstraint("run_id", "seq", name=op.f("uq_playbook_events_run_id")),
    )


def downgrade() -> None:
    op.drop_table("playbook_events")
    op.drop_index(op.f("ix_playbook_runs_status"), table_name="playbook_runs")
    op.drop_index(op.f("ix_playbook_runs_playbook"), table_name="playbook_runs")
    op.drop_index(op.f("ix_playbook_runs_created_at"), table_name="playbook_runs")
    op.drop_table("playbook_runs")
