"""The knowledge index's sentence vectors (server.services.knowledge.meaning), beside ``models.py``.

``server.base.db`` and the migrations' env import this module, so ``Base.metadata`` has the table.
A row is the meaning of one index entry's question, written after the entry by the scheduler's
``knowledge-vectors`` job: its id grows with every vector written, which is how a process's copy of a
mailbox's vectors learns what is new with one index lookup.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from server.base.models import Base


class KnowledgeVector(Base):
    """The 512 numbers (float16, 1 KB) that place an entry's question among others by meaning."""

    __tablename__ = "knowledge_vectors"
    __table_args__ = (
        Index("ix_knowledge_vectors_mailbox", "mailbox_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("knowledge_entries.id", ondelete="CASCADE"), unique=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    vector: Mapped[bytes] = mapped_column(LargeBinary)
