"""the ticket_merged rule trigger

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-05 06:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

OLD_TRIGGERS = (
    "trigger IN ('ticket_created', 'customer_replied', 'agent_replied', 'time', 'csat_rated', 'faq_solved')"
)
NEW_TRIGGERS = (
    "trigger IN ('ticket_created', 'customer_replied', 'agent_replied', 'time', 'csat_rated', 'faq_solved',"
    " 'ticket_merged')"
)


def upgrade() -> None:
    with op.batch_alter_table("rules") as batch:
        batch.drop_constraint(batch.f("ck_rules_trigger_valid"), type_="check")
        batch.create_check_constraint(batch.f("ck_rules_trigger_valid"), NEW_TRIGGERS)


def downgrade() -> None:
    op.execute("DELETE FROM rules WHERE trigger = 'ticket_merged'")
    with op.batch_alter_table("rules") as batch:
        batch.drop_constraint(batch.f("ck_rules_trigger_valid"), type_="check")
        batch.create_check_constraint(batch.f("ck_rules_trigger_valid"), OLD_TRIGGERS)
