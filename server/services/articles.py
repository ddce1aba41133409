"""Help-centre articles: written in Markdown, shown as sanitized HTML, linked as translations of each
other, draft until published. Every face (settings page, API, the public help centre) goes through here.

Markdown is read by markdown-it-py (CommonMark and tables, raw HTML off) and its HTML cleaned by nh3:
headings, paragraphs, lists, emphasis, code, quotes, tables, links (http, https, mailto; ``rel``
nofollow) and images by http(s) URL — nothing else survives, whatever the writer typed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from server.base.help_tables import Article
from server.base.models import Agent, Locale, Mailbox, Template, Ticket

MAX_TITLE, MAX_BODY, MAX_CATEGORY = 200, 100_000, 80
LANGUAGES = tuple(locale.value for locale in Locale)
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "ul", "ol", "li", "strong", "em", "code", "pre",
         "blockquote", "a", "img", "table", "thead", "tbody", "tr", "th", "td"}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "th": {"style"}, "td": {"style"}}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ArticleError(ValueError):
    """What is wrong with an article as written: ``problems`` lists each, for a person."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Draft:
    """An article as a writer sends it (settings form, API)."""

    title: str
    body: str
    language: str
    category: str = ""
    published: bool = False
    translation_of: int | None = None


def render(body: str) -> Markup:
    """The article's Markdown as HTML anyone may be shown."""
    html = _MARKDOWN.render(body)
    clean = nh3.clean(html, tags=_TAGS, attributes=_ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                      link_rel="nofollow noopener noreferrer", filter_style_properties={"text-align"})  # fmt: skip
    return Markup(clean)


def plain_text(body: str, limit: int = 300) -> str:
    """The article's words without markup (a description for search engines, a search snippet)."""
    text = nh3.clean(str(render(body)), tags=set())
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def words_of(title: str) -> str:
    """The words of the title for the article's address (``/articles/<id>-<words>``)."""
    words = re.findall(r"\w+", title.lower())
    return "-".join(words)[:60].strip("-") or "article"


def check(session: Session, mailbox: Mailbox, draft: Draft, article: Article | None = None) -> list[str]:
    """Every problem of ``draft`` (empty when it can be saved)."""
    problems = []
    if not isinstance(draft.title, str) or not draft.title.strip() or len(draft.title.strip()) > MAX_TITLE:
        problems.append(f"title: 1 to {MAX_TITLE} characters")
    elif _CONTROL.search(draft.title):
        problems.append("title: no control characters")
    if not isinstance(draft.body, str) or len(draft.body) > MAX_BODY or _CONTROL.search(draft.body or ""):
        problems.append(f"body: Markdown text of at most {MAX_BODY:,} characters, no control characters")
    if draft.language not in LANGUAGES:
        problems.append(f"language: one of {', '.join(LANGUAGES)}")
    if (
        not isinstance(draft.category, str)
        or len(draft.category.strip()) > MAX_CATEGORY
        or _CONTROL.search(draft.category)
    ):
        problems.append(f"category: at most {MAX_CATEGORY} characters")
    if draft.translation_of is not None:
        original = session.get(Article, draft.translation_of)
        if original is None or original.mailbox_id != mailbox.id:
            problems.append("translation_of: no such article in this mailbox")
        elif article is not None and original.id == article.id:
            problems.append("translation_of: an article is not its own translation")
        elif original.language == draft.language:
            problems.append("translation_of: a translation is in another language than the article")
        else:
            taken = [a for a in translations(session, original) if a.language == draft.language]
            if any(article is None or a.id != article.id for a in taken):
                problems.append(f"translation_of: the article already has a translation in {draft.language}")
    return problems


def save(session: Session, mailbox: Mailbox, draft: Draft, *, author: Agent | None, article: Article | None = None,
         at: datetime | None = None, template: Template | None = None, ticket: Ticket | None = None) -> Article:  # fmt: skip
    """Create or change an article (the caller commits); raises :class:`ArticleError`. Publishing it
    the first time tells the webhooks (``article.published``)."""
    problems = check(session, mailbox, draft, article)
    if problems:
        raise ArticleError(problems)
    at = at or datetime.now(UTC)
    if article is None:
        article = Article(mailbox_id=mailbox.id, created_at=at, views=0, answered_yes=0, answered_no=0,
                          template_id=template.id if template else None, ticket_id=ticket.id if ticket else None)  # fmt: skip
        session.add(article)
    was_published = bool(article.published)
    article.title, article.body = draft.title.strip(), draft.body
    article.category, article.language = draft.category.strip(), draft.language
    article.translation_of_id = _root(session, draft.translation_of)
    article.published = draft.published
    article.author_id = author.id if author else article.author_id
    article.updated_at = at
    if draft.published and not was_published:
        article.published_at = at
        session.flush()
        from server.services.webhooks.deciding import announce

        announce(session, mailbox.id, "article.published", {"article": document(article)}, at)
    return article


def _root(session: Session, translation_of: int | None) -> int | None:
    """Translations all point at the first article written (a translation of a translation is of it)."""
    if translation_of is None:
        return None
    original = session.get(Article, translation_of)
    return original.translation_of_id or original.id if original is not None else None


def translations(session: Session, article: Article) -> list[Article]:
    """The article and its translations (one query)."""
    root = article.translation_of_id or article.id
    return list(
        session.scalars(select(Article).where(or_(Article.id == root, Article.translation_of_id == root)))
    )


def document(article: Article) -> dict[str, Any]:
    """The article as the API and the webhooks show it."""
    return {
        "id": article.id,
        "mailbox_id": article.mailbox_id,
        "title": article.title,
        "body": article.body,
        "language": article.language,
        "category": article.category,
        "published": article.published,
        "translation_of": article.translation_of_id,
        "published_at": article.published_at.isoformat() if article.published_at else None,
        "updated_at": article.updated_at.isoformat() if article.updated_at else None,
        "author": article.author.email if article.author else None,
        "views": article.views,
        "answered_yes": article.answered_yes,
        "answered_no": article.answered_no,
    }


def of_mailbox(session: Session, mailbox_id: int, *, published_only: bool = False) -> list[Article]:
    """The mailbox's articles by category and title."""
    query = select(Article).where(Article.mailbox_id == mailbox_id)
    if published_only:
        query = query.where(Article.published.is_(True))
    return list(session.scalars(query.order_by(Article.category, Article.title, Article.id)))


def delete(session: Session, article: Article) -> None:
    """Remove the article; its translations stay (the next one becomes the one they point at)."""
    others = [a for a in translations(session, article) if a.id != article.id]
    if article.translation_of_id is None and others:
        others[0].translation_of_id = None
        for other in others[1:]:
            other.translation_of_id = others[0].id
    session.delete(article)


_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


def _without_variables(text: str) -> str:
    """A template's text without its Jinja (``{{ customer.name }}``, ``{% if %}``): an article has no
    ticket to fill them from; the draft is read by its writer before it is published."""
    kept = _JINJA.sub("", text)
    lines = [re.sub(r"[ \t]+([,.!?])", r"\1", line).rstrip() for line in kept.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def from_template(
    session: Session, mailbox: Mailbox, template: Template, *, author: Agent | None, at: datetime
) -> Article:
    """The FAQ template's answer as a draft article in its language (its first example question the
    title); the article already made from it, if there is one."""
    made = session.scalar(select(Article).where(Article.template_id == template.id).limit(1))
    if made is not None:
        return made
    questions = [str(q) for q in template.faq_questions or [] if str(q).strip()]
    title = (questions[0] if questions else template.name).strip()[:MAX_TITLE]
    draft = Draft(
        title=title, body=_without_variables(template.body_text)[:MAX_BODY], language=template.locale
    )
    return save(session, mailbox, draft, author=author, at=at, template=template)


def from_ticket(session: Session, ticket: Ticket, *, author: Agent | None, at: datetime) -> Article:
    """A solved ticket's final answer as a draft article (its subject the title), in the customer's
    language; the article already made from it, if there is one. Raises :class:`ArticleError` when
    the team never answered it."""
    from server.gmail.mime import split_reply
    from server.services.composing import ticket_locale
    from server.services.knowledge.index import final_answer

    made = session.scalar(select(Article).where(Article.ticket_id == ticket.id).limit(1))
    if made is not None:
        return made
    answer = final_answer(session, ticket.id)
    text = split_reply(answer.text or "")[0].strip() if answer is not None else ""
    if not text:
        raise ArticleError([f"#{ticket.number} has no answer of the team to make an article from"])
    subject = re.sub(
        r"^\s*((re|fwd?|отв|ответ|пересл)\s*:\s*)+", "", ticket.subject or "", flags=re.IGNORECASE
    )
    language = ticket_locale(session, ticket, ticket.mailbox)
    draft = Draft(
        title=(subject.strip() or f"#{ticket.number}")[:MAX_TITLE], body=text[:MAX_BODY], language=language
    )
    return save(session, ticket.mailbox, draft, author=author, at=at, ticket=ticket)


def published_for_template(session: Session, template_id: int) -> Article | None:
    """The published article made from an FAQ template (the acknowledgement links to it)."""
    return session.scalar(
        select(Article).where(Article.template_id == template_id, Article.published.is_(True)).limit(1)
    )


def public_url(mailbox: Mailbox, article: Article) -> str | None:
    """The article's public address, for mail (no request needed): None while it is a draft or the
    mailbox's help centre is off, or when Postdesk's public URL is not known."""
    from server.services.composing import public_base
    from server.services.help_settings import help_settings

    settings = help_settings(mailbox)
    base = public_base().rstrip("/")
    if not article.published or not settings["enabled"] or not base:
        return None
    return f"{base}/help/{settings['slug']}/articles/{article.id}-{quote(words_of(article.title))}"
