"""knowledge: the full-text index of solved tickets (FTS5 on SQLite, a tsvector with GIN on PostgreSQL),
its stem counts, FAQ example questions on templates, and the faq_solved rule trigger

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-24 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

#: SQLite: FTS5 reads the stems (made in Python) from knowledge_entries; triggers keep it in step,
#: also when a ticket's deletion cascades to its entry.
SQLITE_INDEX = (
    "CREATE VIRTUAL TABLE knowledge_fts USING fts5(question_terms, answer_terms,"
    " content='knowledge_entries', content_rowid='id', tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER knowledge_entries_ai AFTER INSERT ON knowledge_entries BEGIN"
    " INSERT INTO knowledge_fts(rowid, question_terms, answer_terms)"
    " VALUES (new.id, new.question_terms, new.answer_terms); END",
    "CREATE TRIGGER knowledge_entries_ad AFTER DELETE ON knowledge_entries BEGIN"
    " INSERT INTO knowledge_fts(knowledge_fts, rowid, question_terms, answer_terms)"
    " VALUES ('delete', old.id, old.question_terms, old.answer_terms); END",
    "CREATE TRIGGER knowledge_entries_au AFTER UPDATE ON knowledge_entries BEGIN"
    " INSERT INTO knowledge_fts(knowledge_fts, rowid, question_terms, answer_terms)"
    " VALUES ('delete', old.id, old.question_terms, old.answer_terms);"
    " INSERT INTO knowledge_fts(rowid, question_terms, answer_terms)"
    " VALUES (new.id, new.question_terms, new.answer_terms); END",
)
#: PostgreSQL: its own parser and Snowball stemmers ('russian' stems Cyrillic words in Russian and
#: ASCII words in English), the question weighing more than the answer.
POSTGRES_INDEX = (
    "ALTER TABLE knowledge_entries ADD COLUMN document tsvector GENERATED ALWAYS AS"
    " (setweight(to_tsvector('russian'::regconfig, question), 'A')"
    " || setweight(to_tsvector('russian'::regconfig, answer), 'D')) STORED",
    "CREATE INDEX ix_knowledge_entries_document ON knowledge_entries USING gin (document)",
)


OLD_TRIGGERS = "trigger IN ('ticket_created', 'customer_replied', 'agent_replied', 'time', 'csat_rated')"
NEW_TRIGGERS = (
    "trigger IN ('ticket_created', 'customer_replied', 'agent_replied', 'time', 'csat_rated', 'faq_solved')"
)


def upgrade() -> None:
    with op.batch_alter_table("rules") as batch:
        batch.drop_constraint(batch.f("ck_rules_trigger_valid"), type_="check")
        batch.create_check_constraint(batch.f("ck_rules_trigger_valid"), NEW_TRIGGERS)
    with op.batch_alter_table("templates") as batch:
        batch.add_column(sa.Column("faq_questions", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("templates") as batch:
        batch.alter_column("faq_questions", server_default=None)
    op.create_table(
        "knowledge_entries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("question_terms", sa.Text(), nullable=False),
        sa.Column("answer_terms", sa.Text(), nullable=False),
        sa.Column("answer_message_id", sa.Integer(), nullable=True),
        sa.Column("solved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_knowledge_entries_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_knowledge_entries_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["answer_message_id"],
            ["messages.id"],
            name=op.f("fk_knowledge_entries_answer_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_entries")),
        sa.UniqueConstraint("ticket_id", name=op.f("uq_knowledge_entries_ticket_id")),
        sqlite_autoincrement=True,
    )
    op.create_index(
        "ix_knowledge_entries_mailbox_id", "knowledge_entries", ["mailbox_id", "id"], unique=False
    )
    op.create_table(
        "knowledge_terms",
        sa.Column("mailbox_id", sa.Integer(), nullable=False),
        sa.Column("term", sa.String(length=64), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["mailboxes.id"],
            name=op.f("fk_knowledge_terms_mailbox_id_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("mailbox_id", "term", name=op.f("pk_knowledge_terms")),
    )
    statements = POSTGRES_INDEX if op.get_bind().dialect.name == "postgresql" else SQLITE_INDEX
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DELETE FROM rules WHERE trigger = 'faq_solved'")
    with op.batch_alter_table("rules") as batch:
        batch.drop_constraint(batch.f("ck_rules_trigger_valid"), type_="check")
        batch.create_check_constraint(batch.f("ck_rules_trigger_valid"), OLD_TRIGGERS)
    if op.get_bind().dialect.name != "postgresql":
        op.execute("DROP TABLE IF EXISTS knowledge_fts")
    op.drop_table("knowledge_terms")
    op.drop_index("ix_knowledge_entries_mailbox_id", table_name="knowledge_entries")
    op.drop_table("knowledge_entries")
    with op.batch_alter_table("templates") as batch:
        batch.drop_column("faq_questions")
