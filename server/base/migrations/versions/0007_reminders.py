"""reminders: the next look per ticket, when the status changed, and what was done once

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("remind_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_tickets_remind_at", ["remind_at"])
    # Existing active tickets get one look from the first scan.
    op.execute(
        "UPDATE tickets SET remind_at = CURRENT_TIMESTAMP, status_changed_at = updated_at"
        " WHERE status IN ('open', 'pending', 'on_hold')"
    )
    op.create_table(
        "reminder_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_reminder_marks_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_reminder_marks_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_marks")),
        sa.UniqueConstraint("key", name=op.f("uq_reminder_marks_key")),
    )
    op.create_index("ix_reminder_marks_ticket", "reminder_marks", ["ticket_id"])


def downgrade() -> None:
    op.drop_index("ix_reminder_marks_ticket", table_name="reminder_marks")
    op.drop_table("reminder_marks")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_index("ix_tickets_remind_at")
        batch.drop_column("remind_at")
        batch.drop_column("status_changed_at")
