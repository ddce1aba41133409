"""agents: the manager role (reads all settings and reports, changes only their own profile)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 16:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_constraint(batch.f("ck_agents_role_valid"), type_="check")
        batch.create_check_constraint(
            batch.f("ck_agents_role_valid"), "role IN ('admin', 'manager', 'agent')"
        )


def downgrade() -> None:
    op.execute("UPDATE agents SET role = 'agent' WHERE role = 'manager'")
    with op.batch_alter_table("agents") as batch:
        batch.drop_constraint(batch.f("ck_agents_role_valid"), type_="check")
        batch.create_check_constraint(batch.f("ck_agents_role_valid"), "role IN ('admin', 'agent')")
