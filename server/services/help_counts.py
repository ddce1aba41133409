"""What the public help centre counts: article views and "did this answer your question?" votes, the
searches (and what was searched for and not found), per day. Counters only: nothing names a visitor.

Each count is one upsert (``INSERT … ON CONFLICT DO UPDATE``), so visitors counted at the same moment
never lose a count; the article's all-time counters move in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from server.base.help_tables import Article, ArticleDay, HelpDay, HelpMiss


def _bump(session: Session, model: Any, keys: dict[str, Any], counts: dict[str, int]) -> None:
    table: Table = model.__table__
    insert = sqlite.insert if session.get_bind().dialect.name == "sqlite" else postgresql.insert
    statement = insert(table).values({**keys, **{c.name: 0 for c in table.c if c.name not in keys}, **counts})
    session.execute(
        statement.on_conflict_do_update(
            index_elements=list(keys),
            set_={name: table.c[name] + statement.excluded[name] for name in counts},
        )
    )


def viewed(session: Session, article: Article, at: datetime) -> None:
    _bump(session, ArticleDay, {"article_id": article.id, "day": at.date()}, {"views": 1})
    session.execute(update(Article).where(Article.id == article.id).values(views=Article.views + 1))


def voted(session: Session, article: Article, yes: bool, at: datetime) -> None:
    column = "answered_yes" if yes else "answered_no"
    _bump(session, ArticleDay, {"article_id": article.id, "day": at.date()}, {column: 1})
    session.execute(
        update(Article).where(Article.id == article.id).values({column: getattr(Article, column) + 1})
    )


def searched(session: Session, mailbox_id: int, query: str, *, found: bool, at: datetime) -> None:
    _bump(session, HelpDay, {"mailbox_id": mailbox_id, "day": at.date()},
          {"searches": 1, **({} if found else {"searches_empty": 1})})  # fmt: skip
    if not found:
        words = " ".join(query.lower().split())[:200]
        _bump(session, HelpMiss, {"mailbox_id": mailbox_id, "day": at.date(), "query": words}, {"count": 1})


def contacted(session: Session, mailbox_id: int, *, read_first: bool, at: datetime) -> None:
    """A question from the contact form became a ticket: after reading an article, or without."""
    column = "contacts_after_reading" if read_first else "contacts_direct"
    _bump(session, HelpDay, {"mailbox_id": mailbox_id, "day": at.date()}, {column: 1})
