"""tickets: merging (merged_into_id, merged_at, merged_in) and the status ``merged``

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 03:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

BEFORE = "status IN ('open', 'pending', 'on_hold', 'solved', 'closed')"
AFTER = "status IN ('open', 'pending', 'on_hold', 'solved', 'closed', 'merged')"


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("merged_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("merged_in", sa.Integer(), nullable=False, server_default="0"))
        batch.create_foreign_key(
            batch.f("fk_tickets_merged_into_id_tickets"),
            "tickets",
            ["merged_into_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.drop_constraint(batch.f("ck_tickets_status_valid"), type_="check")
        batch.create_check_constraint(batch.f("ck_tickets_status_valid"), AFTER)


def downgrade() -> None:
    op.execute("UPDATE tickets SET status = 'closed' WHERE status = 'merged'")
    with op.batch_alter_table("tickets") as batch:
        batch.drop_constraint(batch.f("ck_tickets_status_valid"), type_="check")
        batch.create_check_constraint(batch.f("ck_tickets_status_valid"), BEFORE)
        batch.drop_constraint(batch.f("fk_tickets_merged_into_id_tickets"), type_="foreignkey")
        batch.drop_column("merged_in")
        batch.drop_column("merged_at")
        batch.drop_column("merged_into_id")
