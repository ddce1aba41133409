"""mailbox_members: an agent may be an admin of one mailbox only

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-23 20:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mailbox_members") as batch:
        batch.add_column(sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("mailbox_members") as batch:
        batch.drop_column("is_admin")
