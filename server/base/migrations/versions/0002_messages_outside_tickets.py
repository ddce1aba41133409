"""messages outside tickets, deletions, thread index

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 07:42:39
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("gmail_deleted", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.alter_column("ticket_id", existing_type=sa.INTEGER(), nullable=True)
        batch_op.create_index("ix_messages_mailbox_thread", ["mailbox_id", "gmail_thread_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_mailbox_thread")
        batch_op.alter_column("ticket_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("gmail_deleted")
