"""note_mentions (who a note names, for their Mentions list) and ticket_followers

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05 03:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "note_mentions",
        sa.Column("note_id", sa.Integer(), sa.ForeignKey("notes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("agent_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("note_id", "agent_id", name=op.f("pk_note_mentions")),
    )
    op.create_index("ix_note_mentions_agent", "note_mentions", ["agent_id", "created_at"])
    op.create_table(
        "ticket_followers",
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("agent_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ticket_id", "agent_id", name=op.f("pk_ticket_followers")),
    )
    op.create_index("ix_ticket_followers_agent", "ticket_followers", ["agent_id"])


def downgrade() -> None:
    op.drop_table("ticket_followers")
    op.drop_table("note_mentions")
