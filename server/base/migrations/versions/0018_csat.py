"""csat_ratings: one customer rating per ticket; rules may fire when a ticket is rated

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-23 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

OLD_TRIGGERS = "trigger IN ('ticket_created', 'customer_replied', 'agent_replied', 'time')"
NEW_TRIGGERS = "trigger IN ('ticket_created', 'customer_replied', 'agent_replied', 'time', 'csat_rated')"


def upgrade() -> None:
    op.create_table(
        "csat_ratings",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_csat_ratings_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_csat_ratings_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_csat_ratings")),
    )
    op.create_index("ix_csat_ratings_mailbox_rated", "csat_ratings", ["mailbox_id", "rated_at"], unique=False)
    with op.batch_alter_table("rules") as batch:
        batch.drop_constraint(batch.f("ck_rules_trigger_valid"), type_="check")
        batch.create_check_constraint(batch.f("ck_rules_trigger_valid"), NEW_TRIGGERS)


def downgrade() -> None:
    op.execute("DELETE FROM rules WHERE trigger = 'csat_rated'")
    with op.batch_alter_table("rules") as batch:
        batch.drop_constraint(batch.f("ck_rules_trigger_valid"), type_="check")
        batch.create_check_constraint(batch.f("ck_rules_trigger_valid"), OLD_TRIGGERS)
    op.drop_index("ix_csat_ratings_mailbox_rated", table_name="csat_ratings")
    op.drop_table("csat_ratings")
