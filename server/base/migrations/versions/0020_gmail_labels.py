"""tickets: the Gmail labels wanted and applied; gmail_labels: Postdesk's labels in each mailbox

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-24 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("labels_version", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("labels_wanted_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("labels_applied", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("labels_history_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_tickets_labels_wanted", "tickets", ["mailbox_id", "labels_wanted_at"])
    op.create_table(
        "gmail_labels",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("gmail_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_gmail_labels_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailbox_id", "key", name=op.f("pk_gmail_labels")),
    )


def downgrade() -> None:
    op.drop_table("gmail_labels")
    op.drop_index("ix_tickets_labels_wanted", table_name="tickets")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("labels_history_id")
        batch.drop_column("labels_applied")
        batch.drop_column("labels_wanted_at")
        batch.drop_column("labels_version")
