"""the help centre: articles and the public pages' daily counters

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-05 06:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "articles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "mailbox_id", sa.Integer(), sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=80), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column(
            "translation_of_id",
            sa.Integer(),
            sa.ForeignKey("articles.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("author_id", sa.Integer(), sa.ForeignKey("agents.id", ondelete="SET NULL"), nullable=True),
        sa.Column(
            "template_id", sa.Integer(), sa.ForeignKey("templates.id", ondelete="SET NULL"), nullable=True
        ),
        sa.Column("ticket_id", sa.Integer(), sa.ForeignKey("tickets.id", ondelete="SET NULL"), nullable=True),
        sa.Column("views", sa.Integer(), nullable=False),
        sa.Column("answered_yes", sa.Integer(), nullable=False),
        sa.Column("answered_no", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("language IN ('en', 'ru')", name=op.f("ck_articles_language_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_articles")),
    )
    op.create_index("ix_articles_mailbox_published", "articles", ["mailbox_id", "published", "language"])
    op.create_index("ix_articles_translation_of", "articles", ["translation_of_id"])
    op.create_table(
        "article_days",
        sa.Column(
            "article_id", sa.Integer(), sa.ForeignKey("articles.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("views", sa.Integer(), nullable=False),
        sa.Column("answered_yes", sa.Integer(), nullable=False),
        sa.Column("answered_no", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("article_id", "day", name=op.f("pk_article_days")),
    )
    op.create_table(
        "help_days",
        sa.Column(
            "mailbox_id", sa.Integer(), sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("searches", sa.Integer(), nullable=False),
        sa.Column("searches_empty", sa.Integer(), nullable=False),
        sa.Column("contacts_after_reading", sa.Integer(), nullable=False),
        sa.Column("contacts_direct", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("mailbox_id", "day", name=op.f("pk_help_days")),
    )
    op.create_table(
        "help_misses",
        sa.Column(
            "mailbox_id", sa.Integer(), sa.ForeignKey("mailboxes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("query", sa.String(length=200), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("mailbox_id", "day", "query", name=op.f("pk_help_misses")),
    )


def downgrade() -> None:
    op.drop_table("help_misses")
    op.drop_table("help_days")
    op.drop_table("article_days")
    op.drop_index("ix_articles_translation_of", table_name="articles")
    op.drop_index("ix_articles_mailbox_published", table_name="articles")
    op.drop_table("articles")
