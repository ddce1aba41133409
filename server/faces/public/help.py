"""The public help centre of a mailbox: ``/help/<slug>/`` (home: categories and the most read articles,
a search box), ``/articles/<id>-<words>``, ``/search?q=…`` and ``/sitemap.xml``.

Server-rendered, no script needed, Postdesk's own small stylesheet and the strict CSP of every page.
In the visitor's language: ``?lang=ru|en`` (the switch on every page, carried in links: no cookie),
else the browser's Accept-Language. Nothing identifies a visitor: a view, a vote and a search are
counters by day (server/base/help_tables.py). A mailbox whose help centre is off or has no such slug
is a 404, as is a draft.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for
from flask_babel import force_locale
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from server.base.db import get_session
from server.base.help_tables import Article
from server.base.models import Locale, Mailbox
from server.faces.web.extensions import limiter
from server.services import articles, help_counts
from server.services.help_settings import help_settings
from server.services.knowledge.articles_search import search

bp = Blueprint("help", __name__, url_prefix="/help/<slug>")
LANGUAGES = [locale.value for locale in Locale]
MOST_READ = 5


def _limit() -> str:
    return str(current_app.config["CSAT_RATE_LIMIT"])


def _centre(slug: str) -> Mailbox:
    """The mailbox whose help centre is on at ``slug``; 404 otherwise."""
    for mailbox in get_session().scalars(select(Mailbox).order_by(Mailbox.id)):
        settings = help_settings(mailbox)
        if settings["enabled"] and settings["slug"] == slug:
            return mailbox
    abort(404)


def _language() -> str:
    chosen = request.args.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    return request.accept_languages.best_match(LANGUAGES) or Locale.EN.value


def _page(template: str, mailbox: Mailbox, lang: str, **values: Any) -> str:
    with force_locale(lang):
        return render_template(template, centre=mailbox, slug=help_settings(mailbox)["slug"], lang=lang,
                               languages=LANGUAGES, name=mailbox.display_name or mailbox.address,
                               contact=help_settings(mailbox)["contact_form"], article_words=lambda a: articles.words_of(a.title),
                               **values)  # fmt: skip


def _shown(found: list[Article], lang: str) -> list[Article]:
    """The articles in ``lang``, and those with no translation in it (in their own language)."""
    groups: dict[int, list[Article]] = defaultdict(list)
    for article in found:
        groups[article.translation_of_id or article.id].append(article)
    chosen = [next((a for a in group if a.language == lang), group[0]) for group in groups.values()]
    return sorted(chosen, key=lambda a: (a.category, a.title, a.id))


def _article_url(slug: str, article: Article, **extra: str | None) -> str:
    params: dict[str, Any] = {k: v for k, v in extra.items() if v and (k != "lang" or v in LANGUAGES)}
    return url_for(
        ".article", slug=slug, article_id=article.id, words=articles.words_of(article.title), **params
    )


@bp.get("/")
def home(slug: str) -> str:
    mailbox = _centre(slug)
    lang = _language()
    shown = _shown(articles.of_mailbox(get_session(), mailbox.id, published_only=True), lang)
    categories: dict[str, list[Article]] = defaultdict(list)
    for article in shown:
        categories[article.category].append(article)
    most_read = sorted((a for a in shown if a.views), key=lambda a: (-a.views, a.id))[:MOST_READ]
    return _page("help/home.html", mailbox, lang, categories=sorted(categories.items()), most_read=most_read)


@bp.get("/articles/<int:article_id>-<words>")
@bp.get("/articles/<int:article_id>")
def article(slug: str, article_id: int, words: str | None = None) -> str | BaseResponse:
    mailbox = _centre(slug)
    session = get_session()
    found = session.get(Article, article_id)
    if found is None or found.mailbox_id != mailbox.id or not found.published:
        abort(404)
    if words != articles.words_of(found.title):  # one address per article (search engines, links)
        return redirect(_article_url(slug, found, lang=request.args.get("lang")), 301)
    lang = _language()
    translations = [a for a in articles.translations(session, found) if a.published and a.id != found.id]
    help_counts.viewed(session, found, datetime.now(UTC))
    session.commit()
    return _page("help/article.html", mailbox, lang, article=found, body=articles.render(found.body),
                 description=articles.plain_text(found.body, 160), translations=translations,
                 voted=request.args.get("voted"))  # fmt: skip


@bp.post("/articles/<int:article_id>/answered")
@limiter.limit(_limit)
def answered(slug: str, article_id: int) -> BaseResponse:
    """ "Did this answer your question?" — yes or no, counted; the page says thank you."""
    mailbox = _centre(slug)
    session = get_session()
    found = session.get(Article, article_id)
    if found is None or found.mailbox_id != mailbox.id or not found.published:
        abort(404)
    said = request.form.get("answered")
    if said not in ("yes", "no"):
        abort(400, description="answered: yes or no")
    help_counts.voted(session, found, said == "yes", datetime.now(UTC))
    session.commit()
    target = _article_url(slug, found, voted=said, lang=request.form.get("lang"))
    return redirect(target + "#answered", 303)


@bp.get("/search")
def find(slug: str) -> str:
    mailbox = _centre(slug)
    lang = _language()
    query = (request.args.get("q") or "").strip()[:200]
    session = get_session()
    results = search(session, mailbox.id, query, language=lang) if query else []
    if query:
        help_counts.searched(session, mailbox.id, query, found=bool(results), at=datetime.now(UTC))
        session.commit()
    return _page("help/search.html", mailbox, lang, query=query, results=results,
                 snippets={f.article.id: articles.plain_text(f.article.body, 200) for f in results})  # fmt: skip


@bp.get("/sitemap.xml")
def sitemap(slug: str) -> Response:
    mailbox = _centre(slug)
    session = get_session()
    published = articles.of_mailbox(session, mailbox.id, published_only=True)
    groups: dict[int, list[Article]] = defaultdict(list)
    for found in published:
        groups[found.translation_of_id or found.id].append(found)
    entries = [(found, groups[found.translation_of_id or found.id]) for found in published]
    xml = render_template("help/sitemap.xml", entries=entries, slug=slug, words_of=articles.words_of)
    return Response(xml, mimetype="application/xml")
