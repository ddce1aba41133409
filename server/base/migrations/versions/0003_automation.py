"""round robin cursor, mailbox settings, template names unique per mailbox and locale

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 08:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("round_robin_cursor", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("settings", sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.create_foreign_key(
            batch_op.f("fk_mailboxes_round_robin_cursor_agents"),
            "agents",
            ["round_robin_cursor"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_templates_mailbox"))
        batch_op.create_unique_constraint(
            batch_op.f("uq_templates_mailbox_id_name_locale"), ["mailbox_id", "name", "locale"]
        )


def downgrade() -> None:
    with op.batch_alter_table("templates", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_templates_mailbox_id_name_locale"), type_="unique")
        batch_op.create_index(batch_op.f("ix_templates_mailbox"), ["mailbox_id"], unique=False)
    with op.batch_alter_table("mailboxes", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_mailboxes_round_robin_cursor_agents"), type_="foreignkey")
        batch_op.drop_column("settings")
        batch_op.drop_column("round_robin_cursor")
