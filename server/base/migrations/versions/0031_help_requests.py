"""help_requests: questions sent with the help centre's contact form, waiting for a confirmed address

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-05 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "help_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "mailbox_id", sa.Integer(), sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("articles", sa.JSON(), nullable=False),
        sa.Column("read_first", sa.Boolean(), nullable=False),
        sa.Column("ip_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mailed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id", ondelete="SET NULL"), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_help_requests")),
    )
    op.create_index("ix_help_requests_email", "help_requests", ["mailbox_id", "email", "created_at"])
    op.create_index("ix_help_requests_ip", "help_requests", ["mailbox_id", "ip_key", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_help_requests_ip", table_name="help_requests")
    op.drop_index("ix_help_requests_email", table_name="help_requests")
    op.drop_table("help_requests")
