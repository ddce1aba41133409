"""knowledge_vectors: the meaning of each knowledge entry's question (sentence vectors)

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "knowledge_vectors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["knowledge_entries.id"],
            name=op.f("fk_knowledge_vectors_entry_id_knowledge_entries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_knowledge_vectors_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_vectors")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_knowledge_vectors_entry_id")),
        # Ids are never given twice: a process's copy of the vectors reads what is newer than it knows.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_knowledge_vectors_mailbox", "knowledge_vectors", ["mailbox_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_knowledge_vectors_mailbox", table_name="knowledge_vectors")
    op.drop_table("knowledge_vectors")
