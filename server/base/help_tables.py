"""The help centre's tables: articles, and what the public pages count (per day, never per person).

Kept beside ``models.py`` (``server.base.db`` imports both, so ``Base.metadata`` has every table): the
help centre is a product of its own. Nothing here identifies a visitor: no cookie, no address, no
per-visit row — views, votes, searches and contact forms are counters by day.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.base.columns import utcnow
from server.base.models import Agent, Base, Locale, Mailbox, _one_of


class Article(Base):
    """A help-centre article of a mailbox (a brand): Markdown, in one language, maybe the translation
    of another article (``translation_of_id`` names the first one written), draft until published."""

    __tablename__ = "articles"
    __table_args__ = (
        _one_of("language", Locale),
        Index("ix_articles_mailbox_published", "mailbox_id", "published", "language"),
        Index("ix_articles_translation_of", "translation_of_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    #: Markdown as written; shown as HTML sanitized with nh3 (server.services.articles.render).
    body: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(80), default="")
    language: Mapped[str] = mapped_column(String(2), default=Locale.EN.value)
    translation_of_id: Mapped[int | None] = mapped_column(ForeignKey("articles.id", ondelete="SET NULL"))
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    published_at: Mapped[datetime | None]
    author_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    #: Where it was made from: an FAQ template (whose answers in acknowledgements then link here), or a
    #: solved ticket's answer.
    template_id: Mapped[int | None] = mapped_column(ForeignKey("templates.id", ondelete="SET NULL"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    #: All-time counters (the reports read article_days for a period).
    views: Mapped[int] = mapped_column(Integer, default=0)
    answered_yes: Mapped[int] = mapped_column(Integer, default=0)
    answered_no: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    mailbox: Mapped[Mailbox] = relationship()
    author: Mapped[Agent | None] = relationship()


class ArticleDay(Base):
    """One article's views and "did this answer your question?" votes on one day (UTC)."""

    __tablename__ = "article_days"

    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    views: Mapped[int] = mapped_column(Integer, default=0)
    answered_yes: Mapped[int] = mapped_column(Integer, default=0)
    answered_no: Mapped[int] = mapped_column(Integer, default=0)


class HelpDay(Base):
    """A help centre's searches (and those that found nothing) and contact forms sent, after reading
    an article or without, on one day (UTC)."""

    __tablename__ = "help_days"

    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    searches: Mapped[int] = mapped_column(Integer, default=0)
    searches_empty: Mapped[int] = mapped_column(Integer, default=0)
    contacts_after_reading: Mapped[int] = mapped_column(Integer, default=0)
    contacts_direct: Mapped[int] = mapped_column(Integer, default=0)


class HelpMiss(Base):
    """What visitors searched for and did not find (the query as typed, cut, lower-cased), per day."""

    __tablename__ = "help_misses"

    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    query: Mapped[str] = mapped_column(String(200), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class HelpRequest(Base):
    """A question sent with the help centre's contact form, waiting for its sender to confirm their
    address (a signed link mailed to it) before it becomes a ticket. Kept for the rate limits: the
    sender's network address is kept only as a keyed hash (``ip_key``), never as it came."""

    __tablename__ = "help_requests"
    __table_args__ = (
        Index("ix_help_requests_email", "mailbox_id", "email", "created_at"),
        Index("ix_help_requests_ip", "mailbox_id", "ip_key", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    subject: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(2), default=Locale.EN.value)
    #: The articles the visitor was shown or read before sending (ids), and whether they read one.
    articles: Mapped[list[int]] = mapped_column(JSON, default=list)
    read_first: Mapped[bool] = mapped_column(Boolean, default=False)
    ip_key: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: When the confirmation link was mailed (None: not mailed, another one went out within the hour).
    mailed_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))


__all__ = ["Article", "ArticleDay", "HelpDay", "HelpMiss", "HelpRequest"]
