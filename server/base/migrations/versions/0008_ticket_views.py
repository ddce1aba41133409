"""add-on: who looked at a ticket when; messages found by Message-ID alone

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ticket_views",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("viewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_views_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_ticket_views_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", "agent_id", name=op.f("pk_ticket_views")),
    )
    op.create_index("ix_messages_rfc822", "messages", ["rfc822_message_id"])


def downgrade() -> None:
    op.drop_index("ix_messages_rfc822", table_name="messages")
    op.drop_table("ticket_views")
