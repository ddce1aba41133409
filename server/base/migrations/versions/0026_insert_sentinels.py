"""insert sentinels: a nullable column on the tables a page of sync fills (customers, tickets,
messages, events, outbox), so SQLite can insert a page's rows of each in one INSERT … RETURNING
(SQLAlchemy orders the returned ids by it; PostgreSQL could do so without it)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

TABLES = ("customers", "tickets", "messages", "events", "outbox")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("_sentinel", sa.Integer(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("_sentinel")
