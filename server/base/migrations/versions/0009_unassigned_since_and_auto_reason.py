"""tickets: since when nobody has them; messages: why they were taken for automatic mail

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("unassigned_at", sa.DateTime(timezone=True), nullable=True))
    # Tickets nobody has were unassigned since they came in (the best the old rows can say).
    op.execute("UPDATE tickets SET unassigned_at = created_at WHERE assignee_id IS NULL")
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("auto_reason", sa.String(length=200), nullable=True))
    op.execute("UPDATE messages SET auto_reason = 'automatic mail' WHERE is_auto")


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("auto_reason")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("unassigned_at")
