"""The public help centre of a mailbox: ``/help/<slug>/`` (home: categories and the most read articles,
a search box), ``/articles/<id>-<words>``, ``/search?q=…`` and ``/sitemap.xml``.

Server-rendered, no script needed, Postdesk's own small stylesheet and the strict CSP of every page.
In the visitor's language: ``?lang=ru|en`` (the switch on every page, carried in links: no cookie),
else the browser's Accept-Language. Nothing identifies a visitor: a view, a vote and a search are
counters by day (server/base/help_tables.py). A mailbox whose help centre is off or has no such slug
is a 404, as is a draft.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import force_locale
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from server.base.db import get_session
from server.base.help_tables import Article
from server.base.models import Locale, Mailbox
from server.faces.web.extensions import limiter
from server.services import articles, help_contact, help_counts
from server.services.composing import public_base
from server.services.help_settings import help_settings
from server.services.knowledge.articles_search import search

bp = Blueprint("help", __name__, url_prefix="/help/<slug>")
LANGUAGES = [locale.value for locale in Locale]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
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
    query = _CONTROL.sub(" ", request.args.get("q") or "").strip()[:200]
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


# --- the contact form ----------------------------------------------------------------------------


def _contact_limit() -> str:
    return str(current_app.config["HELP_CONTACT_RATE_LIMIT"])


def _with_form(slug: str) -> Mailbox:
    mailbox = _centre(slug)
    if not help_settings(mailbox)["contact_form"]:
        abort(404)
    return mailbox


def _ids(raw: str) -> list[int]:
    return [int(part) for part in raw.split(",")[:20] if part.strip().isdecimal() and len(part.strip()) < 10]


@bp.get("/contact")
def contact(slug: str) -> str:
    mailbox = _with_form(slug)
    read = _ids(request.args.get("read", ""))
    return _page(
        "help/contact.html", mailbox, _language(), form={}, problems={}, read=",".join(map(str, read))
    )


@bp.post("/contact")
@limiter.limit(_contact_limit)
def contact_sent(slug: str) -> tuple[str, int]:
    mailbox = _with_form(slug)
    chosen = str(request.form.get("lang", ""))
    lang = chosen if chosen in LANGUAGES else _language()
    form = {name: str(request.form.get(name, ""))[:20_000] for name in ("email", "name", "subject", "text")}
    read = _ids(request.form.get("read", ""))
    seen = _ids(request.form.get("seen", ""))
    if request.form.get("website"):  # the honeypot: people never see it, so they never fill it
        return _page("help/contact_sent.html", mailbox, lang, email=form["email"][:320]), 200
    question = help_contact.Question(email=form["email"].strip(), name=form["name"], subject=form["subject"],
                                     text=form["text"], language=lang, articles=read + seen, read_first=bool(read))  # fmt: skip
    session = get_session()
    secret = str(current_app.config["SECRET_KEY"])
    network = help_contact.network_key(request.remote_addr or "", secret)
    link = f"{public_base().rstrip('/')}/help/{slug}/confirm/{{token}}"
    try:
        help_contact.ask(
            session, mailbox, question, network=network, now=datetime.now(UTC), secret=secret, link=link
        )
    except help_contact.ContactRefused as exc:
        session.rollback()
        return _page("help/contact.html", mailbox, lang, form=form, problems=exc.problems,
                     read=",".join(map(str, read))), 400  # fmt: skip
    session.commit()
    return _page("help/contact_sent.html", mailbox, lang, email=question.email), 200


@bp.route("/confirm/<token>", methods=["GET", "POST"])
@limiter.limit(_limit)
def confirm(slug: str, token: str) -> tuple[str, int]:
    """GET only asks (a mail scanner that opens every link sends nothing); the button POSTs."""
    mailbox = _with_form(slug)
    session = get_session()
    lang = _language()
    try:
        found = help_contact.read_link(session, mailbox, token, str(current_app.config["SECRET_KEY"]))
    except help_contact.LinkRefused as refused:
        state = "expired" if refused.expired else "invalid"
        return _page(
            "help/confirm.html", mailbox, lang, state=state, request_=None
        ), 410 if refused.expired else 400
    lang = found.language if found.language in LANGUAGES else lang
    if found.confirmed_at is not None:
        return _page("help/confirm.html", mailbox, lang, state="done", request_=found), 200
    if request.method == "POST":
        help_contact.confirm(session, mailbox, found, now=datetime.now(UTC))
        session.commit()
        return _page("help/confirm.html", mailbox, lang, state="done", request_=found), 200
    return _page("help/confirm.html", mailbox, lang, state="ask", request_=found), 200


@bp.get("/suggest")
def suggest(slug: str) -> Response:
    """The articles that may answer what the visitor is typing (the contact form's script asks)."""
    mailbox = _centre(slug)
    query = (request.args.get("q") or "").strip()[:500]
    lang = _language()
    found = search(get_session(), mailbox.id, query, language=lang, limit=5) if len(query) >= 3 else []
    return jsonify([{"id": f.article.id, "title": f.article.title, "url": _article_url(slug, f.article, lang=lang)}
                    for f in found])  # fmt: skip
