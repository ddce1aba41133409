"""messages: the urgency and tone read from a customer's message, with the reasons

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-24 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("urgency", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("tone", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("signals", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("signals")
        batch.drop_column("tone")
        batch.drop_column("urgency")
