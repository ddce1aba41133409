"""mailboxes: a pending re-timing of open tickets and how far it got

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.add_column(sa.Column("retime_cursor", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("retime_generation", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("mailboxes") as batch:
        batch.drop_column("retime_generation")
        batch.drop_column("retime_cursor")
