"""knowledge_vectors: encoded again, because the encoder now reads plain text

Sentence vectors are now made from the text in lower case, without punctuation
(server.services.knowledge.meaning.plain): a question asked now would be compared with vectors made
the old way. The stored vectors are dropped; the scheduler's ``encode_knowledge`` job writes them again,
newest first, a batch a minute (``postdesk knowledge reindex`` does it at once). Until an entry has its
vector again it is found by its words, as before search by meaning. Downgrading drops them too (the old
reading is then the one to write).

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-05 23:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM knowledge_vectors")


def downgrade() -> None:
    op.execute("DELETE FROM knowledge_vectors")
