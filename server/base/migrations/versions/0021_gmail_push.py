"""mailboxes: when the Gmail push watch runs out, and a sync a push notification asked for

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-24 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.add_column(sa.Column("watch_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sync_wanted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("sync_wanted_at")
        batch.drop_column("watch_expires_at")
