"""``/api/v1/articles``: the help centre's articles (server.services.articles), read with
``articles:read`` and written with ``articles:write`` (or ``settings:write``). Admins and managers
write every mailbox's articles, an agent only those of the mailboxes they administer. ETags as for
tickets: ``If-Match`` on PATCH and DELETE answers 412 when the article changed since it was read."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from flask import request, url_for
from pydantic import BaseModel, Field
from spectree import Response as Answers
from sqlalchemy.orm import Session

from server.base.db import get_session
from server.base.help_tables import Article
from server.base.models import Agent, Mailbox, Role
from server.faces.api.auth import caller, needs, readable_mailboxes
from server.faces.api.base import bp, tree
from server.faces.api.schemas import MAX_ID, Strict
from server.faces.api.tickets import Problem, problem_answer
from server.faces.errors import problem_response
from server.services import articles
from server.services.accounts import manages_mailbox
from server.services.api_tokens import Scope
from server.services.help_settings import help_settings

TAGS = ["articles"]


ArticleLanguage = Literal["en", "ru"]


class ArticleIn(Strict):
    """A new article: Markdown ``body`` (sanitized when shown), draft unless ``published``."""

    mailbox_id: int = Field(ge=1, le=MAX_ID)
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=100_000)
    language: ArticleLanguage
    category: str = Field(default="", max_length=80)
    published: bool = False
    #: The article this one translates (another language, same mailbox).
    translation_of: int | None = Field(default=None, ge=1, le=MAX_ID)


class ArticleChange(Strict):
    """What to change (send ``If-Match`` with the ETag you read); ``translation_of: null`` unlinks."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, max_length=100_000)
    language: ArticleLanguage | None = None
    category: str | None = Field(default=None, max_length=80)
    published: bool | None = None
    translation_of: int | None = Field(default=None, ge=1, le=MAX_ID)


class ArticleOut(BaseModel):
    id: int
    mailbox_id: int
    title: str
    body: str
    language: str
    category: str
    published: bool
    translation_of: int | None
    published_at: datetime | None
    updated_at: datetime | None
    author: str | None
    views: int
    answered_yes: int
    answered_no: int
    #: The article's public address when it is published and the mailbox's help centre is on.
    url: str | None = None


class ArticleList(BaseModel):
    articles: list[ArticleOut]


class ArticleQuery(Strict):
    mailbox_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    language: ArticleLanguage | None = None
    published: bool | None = None


def _out(article: Article) -> ArticleOut:
    found = articles.document(article)
    settings = help_settings(article.mailbox)
    if article.published and settings["enabled"]:
        found["url"] = url_for("help.article", slug=settings["slug"], article_id=article.id,
                               words=articles.words_of(article.title), _external=True)  # fmt: skip
    return ArticleOut.model_validate(found)


def _etag(article: Article) -> str:
    document = json.dumps(articles.document(article), sort_keys=True, default=str)
    return '"' + hashlib.sha256(document.encode()).hexdigest()[:32] + '"'


def _visible(session: Session, article_id: int, *, write: bool = False) -> Article:
    article = session.get(Article, article_id)
    if article is None or article.mailbox_id not in readable_mailboxes(session, caller()):
        raise Problem(404, "Not Found", f"No article {article_id}.")
    if write:
        _may_write(session, article.mailbox)
    return article


def _may_write(session: Session, mailbox: Mailbox) -> Agent:
    who = caller()
    agent = session.get(Agent, who.agent_id)
    assert agent is not None  # the token's owner
    if who.role is Role.AGENT and not manages_mailbox(agent, mailbox.id):
        raise Problem(403, "Forbidden", f"Only the admins of {mailbox.address} write its articles.")
    return agent


def _unchanged_since_read(article: Article) -> None:
    expected = request.headers.get("If-Match")
    if (
        expected is not None
        and expected.strip() != "*"
        and _etag(article) not in [t.strip() for t in expected.split(",")]
    ):
        raise Problem(
            412, "Precondition Failed", "The article changed since you read it; read it again and retry."
        )


def _saved(session: Session, article: Article, status: int) -> Any:
    session.commit()
    session.refresh(article)
    headers = {"ETag": _etag(article)}
    if status == 201:
        headers["Location"] = url_for("api.get_article", article_id=article.id)
    return _out(article), status, headers


@bp.get("/articles")
@needs(Scope.ARTICLES_READ)
@tree.validate(resp=Answers(HTTP_200=ArticleList), tags=TAGS)
def list_articles(query: ArticleQuery) -> Any:
    """The articles of the mailboxes the caller reads (drafts too), by category and title."""
    session = get_session()
    mailboxes = readable_mailboxes(session, caller())
    if query.mailbox_id is not None:
        if query.mailbox_id not in mailboxes:
            return problem_response(404, "Not Found", f"No mailbox {query.mailbox_id}.")
        mailboxes = [query.mailbox_id]
    found = [
        a for m in mailboxes for a in articles.of_mailbox(session, m)
        if (query.language is None or a.language == query.language)
        and (query.published is None or a.published == query.published)
    ]  # fmt: skip
    return ArticleList(articles=[_out(a) for a in found])


@bp.post("/articles")
@needs(Scope.ARTICLES_WRITE, or_=Scope.SETTINGS_WRITE)
@tree.validate(resp=Answers(HTTP_201=ArticleOut), tags=TAGS)
def create_article(json: ArticleIn) -> Any:
    """A new article (a draft unless ``published``); 400 lists every problem."""
    session = get_session()
    try:
        mailbox = session.get(Mailbox, json.mailbox_id)
        if mailbox is None or mailbox.id not in readable_mailboxes(session, caller()):
            raise Problem(404, "Not Found", f"No mailbox {json.mailbox_id}.")
        author = _may_write(session, mailbox)
        draft = articles.Draft(
            json.title, json.body, json.language, json.category, json.published, json.translation_of
        )
        article = articles.save(session, mailbox, draft, author=author)
    except Problem as exc:
        session.rollback()
        return problem_answer(exc)
    except articles.ArticleError as exc:
        session.rollback()
        return problem_response(400, "Bad Request", str(exc))
    return _saved(session, article, 201)


@bp.get("/articles/<int:article_id>")
@needs(Scope.ARTICLES_READ)
@tree.validate(resp=Answers(HTTP_200=ArticleOut), tags=TAGS)
def get_article(article_id: int) -> Any:
    """One article, with its ETag."""
    session = get_session()
    try:
        article = _visible(session, article_id)
    except Problem as exc:
        return problem_answer(exc)
    return _out(article), 200, {"ETag": _etag(article)}


@bp.patch("/articles/<int:article_id>")
@needs(Scope.ARTICLES_WRITE, or_=Scope.SETTINGS_WRITE)
@tree.validate(resp=Answers(HTTP_200=ArticleOut), tags=TAGS)
def update_article(article_id: int, json: ArticleChange) -> Any:
    """Change an article; publishing it the first time sends ``article.published``."""
    session = get_session()
    try:
        article = _visible(session, article_id, write=True)
        author = _may_write(session, article.mailbox)
        _unchanged_since_read(article)
        given = json.model_fields_set
        draft = articles.Draft(
            title=json.title if json.title is not None else article.title,
            body=json.body if json.body is not None else article.body,
            language=json.language or article.language,
            category=json.category if json.category is not None else article.category,
            published=json.published if json.published is not None else article.published,
            translation_of=json.translation_of if "translation_of" in given else article.translation_of_id,
        )
        articles.save(session, article.mailbox, draft, author=author, article=article)
    except Problem as exc:
        session.rollback()
        return problem_answer(exc)
    except articles.ArticleError as exc:
        session.rollback()
        return problem_response(400, "Bad Request", str(exc))
    return _saved(session, article, 200)


@bp.delete("/articles/<int:article_id>")
@needs(Scope.ARTICLES_WRITE, or_=Scope.SETTINGS_WRITE)
@tree.validate(tags=TAGS)
def delete_article(article_id: int) -> Any:
    """Remove an article (its translations stay)."""
    session = get_session()
    try:
        article = _visible(session, article_id, write=True)
        _unchanged_since_read(article)
        articles.delete(session, article)
    except Problem as exc:
        session.rollback()
        return problem_answer(exc)
    session.commit()
    return "", 204
