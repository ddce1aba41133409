"""The help centre: articles (Markdown made safe, translations, drafts), their REST API with scopes and
ETags, the public pages (home, article, search, sitemap; language, counts, no cookie), the command line."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from api_support import SALES, SUPPORT, api_app, api_desk  # noqa: F401  (fixtures)
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from server.base.db import get_session
from server.base.help_tables import Article, ArticleDay, HelpDay, HelpMiss
from server.base.models import Mailbox, Webhook, WebhookDelivery
from server.services import articles, mailbox_settings


def test_markdown_becomes_html_and_nothing_dangerous_survives():
    html = str(articles.render(
        "# Title\n\nSome **bold** and a [link](https://example.com) and [bad](javascript:alert(1)).\n\n"
        "<script>alert(1)</script>\n\n![pic](https://cdn.example.com/a.png) ![data](data:image/png;base64,AAAA)\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n"
    ))  # fmt: skip
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html and "<table>" in html
    assert 'href="https://example.com"' in html and 'rel="nofollow noopener noreferrer"' in html
    assert 'src="https://cdn.example.com/a.png"' in html
    assert "<script" not in html and not re.search(r"(href|src)=\"(javascript|data):", html)
    assert "&lt;script&gt;" in html  # raw HTML is shown as text, never run


@settings(max_examples=150, deadline=None)
@given(body=st.text(max_size=400) | st.sampled_from(['<img src=x onerror=alert(1)>', '[x](jAvAsCrIpT:alert(1))',
                                                     '<a href="javascript:x">y</a>', '<iframe src="https://e.com">',
                                                     '![a](" onerror="alert(1))', '<svg onload=alert(1)>']))  # fmt: skip
def test_any_markdown_renders_without_script_or_handlers(body):
    """Read as a browser would (an HTML parser), not by searching the text: text may say anything."""
    tags = _parsed(str(articles.render(body)))
    assert {name for name, _attrs in tags} <= ALLOWED_TAGS
    for _name, attrs in tags:
        assert not [a for a, _v in attrs if a.startswith("on")]
        for attribute, value in attrs:
            if attribute in ("href", "src"):
                assert (value or "").strip().lower().startswith(
                    ("http://", "https://", "mailto:", "#", "/")
                ) or ":" not in (value or "")


ALLOWED_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "ul", "ol", "li", "strong", "em", "code", "pre",
                "blockquote", "a", "img", "table", "thead", "tbody", "tr", "th", "td"}  # fmt: skip


def _parsed(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    from html.parser import HTMLParser

    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, attrs))

    Collect().feed(html)
    return found


def _token(api, email, scopes):
    return api.token(email, scopes)


def _call(api, method, path, secret, **kwargs):
    return api.client.open(path, method=method, headers={"Authorization": f"Bearer {secret}",
                                                         **kwargs.pop("headers", {})}, **kwargs)  # fmt: skip


def test_articles_through_the_api_drafts_translations_etags_and_the_webhook(api_desk):  # noqa: F811
    api = api_desk
    box = api.mailboxes[SUPPORT]
    with api.app.app_context():
        db = get_session()
        db.add(Webhook(mailbox_id=box, url="https://hooks.example.net/x", events=["article.published"],
                       secret_encrypted=b"x", enabled=True))  # fmt: skip
        db.commit()
    made = api.call("POST", "/api/v1/articles", "admin", json={
        "mailbox_id": box, "title": "How do I change my email?", "body": "Open **Settings**.", "language": "en",
        "category": "Account"})  # fmt: skip
    assert made.status_code == 201, made.json
    article = made.json
    assert (
        article["published"] is False
        and article["url"] is None
        and made.headers["Location"].endswith(f"/{article['id']}")
    )
    with api.app.app_context():
        assert get_session().scalar(select(WebhookDelivery.id)) is None  # a draft tells nobody
    russian = api.call("POST", "/api/v1/articles", "admin", json={
        "mailbox_id": box, "title": "Как сменить почту?", "body": "Откройте настройки.", "language": "ru",
        "translation_of": article["id"], "published": True})  # fmt: skip
    assert russian.status_code == 201 and russian.json["translation_of"] == article["id"]
    again = api.call("POST", "/api/v1/articles", "admin", json={
        "mailbox_id": box, "title": "Ещё", "language": "ru", "translation_of": article["id"]})  # fmt: skip
    assert again.status_code == 400 and "already has a translation in ru" in again.json["detail"]
    same = api.call("POST", "/api/v1/articles", "admin", json={
        "mailbox_id": box, "title": "Same", "language": "en", "translation_of": article["id"]})  # fmt: skip
    assert same.status_code == 400 and "another language" in same.json["detail"]

    read = api.call("GET", f"/api/v1/articles/{article['id']}", "admin")
    etag = read.headers["ETag"]
    published = _call(api, "PATCH", f"/api/v1/articles/{article['id']}", api.tokens["admin"],
                      json={"published": True}, headers={"If-Match": etag})  # fmt: skip
    assert published.status_code == 200 and published.json["published"] is True
    stale = _call(api, "PATCH", f"/api/v1/articles/{article['id']}", api.tokens["admin"],
                  json={"title": "x"}, headers={"If-Match": etag})  # fmt: skip
    assert stale.status_code == 412
    with api.app.app_context():
        kinds = list(get_session().scalars(select(WebhookDelivery.event_type)))
    assert kinds == ["article.published", "article.published"]  # the Russian one, then this one
    listed = api.call("GET", f"/api/v1/articles?mailbox_id={box}&language=ru", "admin").json["articles"]
    assert [a["title"] for a in listed] == ["Как сменить почту?"]

    # Who may: an agent with the scopes writes only the mailboxes they administer; tickets scopes read nothing.
    agent = _token(api, "anna@example.com", ["articles:read", "articles:write"])
    refused = _call(
        api, "POST", "/api/v1/articles", agent, json={"mailbox_id": box, "title": "x", "language": "en"}
    )
    assert refused.status_code == 403 and "admins of" in refused.json["detail"]
    assert _call(api, "GET", f"/api/v1/articles/{article['id']}", agent).status_code == 200
    assert api.call("GET", "/api/v1/articles", "anna").status_code == 403  # no articles:read
    other = _call(
        api, "GET", f"/api/v1/articles/{article['id']}", _token(api, "boris@example.com", ["articles:read"])
    )
    assert other.status_code == 404  # Boris does not read support@
    settings_writer = _token(api, "admin@example.com", ["settings:write"])
    assert (
        _call(
            api, "PATCH", f"/api/v1/articles/{article['id']}", settings_writer, json={"category": "Login"}
        ).status_code
        == 200
    )
    bad = api.call(
        "POST", "/api/v1/articles", "admin", json={"mailbox_id": box, "title": "x\u0000", "language": "de"}
    )
    assert bad.status_code == 400
    gone = api.call("DELETE", f"/api/v1/articles/{article['id']}", "admin")
    assert gone.status_code == 204
    with api.app.app_context():
        left = get_session().get(Article, russian.json["id"])
        assert left is not None and left.translation_of_id is None


@pytest.fixture
def centre(api_desk):  # noqa: F811
    """support@ with its help centre on at /help/acme/: an article in English and its Russian
    translation (published), a Russian one alone (published) and a draft."""
    api = api_desk
    with api.app.app_context():
        db = get_session()
        box = db.get(Mailbox, api.mailboxes[SUPPORT])
        mailbox_settings.save(
            db, box, {**(box.settings or {}), "help_centre": {"enabled": True, "slug": "acme"}}, batch=10
        )
        writer = None
        en = articles.save(db, box, articles.Draft("How do I change my email address?", "Open **Settings → Account**, type the new address.",
                                                   "en", "Account", True), author=writer)  # fmt: skip
        db.flush()
        ru = articles.save(db, box, articles.Draft("Как сменить адрес почты?", "Откройте **Настройки → Аккаунт**.", "ru", "Аккаунт",
                                                   True, en.id), author=writer)  # fmt: skip
        alone = articles.save(db, box, articles.Draft("Как пополнить баланс?", "Оплата → Пополнить.", "ru", "Оплата", True),
                              author=writer)  # fmt: skip
        draft = articles.save(
            db, box, articles.Draft("Secret plans", "Not yet.", "en", "Account", False), author=writer
        )
        db.commit()
        ids = {"en": en.id, "ru": ru.id, "alone": alone.id, "draft": draft.id}
    return api, ids


def test_the_public_help_centre_in_the_visitor_s_language(centre):
    api, ids = centre
    web = api.app.test_client()
    home = web.get("/help/acme/", headers={"Accept-Language": "en-GB,en;q=0.9"})
    page = home.get_data(as_text=True)
    assert home.status_code == 200 and "How do I change my email address?" in page
    assert "Как пополнить баланс?" in page  # no English translation: shown in its own language
    assert "Как сменить адрес почты?" not in page and "Secret plans" not in page
    assert "Set-Cookie" not in home.headers and "script-src 'self'" in home.headers["Content-Security-Policy"]
    russian = web.get("/help/acme/?lang=ru").get_data(as_text=True)
    assert "Как сменить адрес почты?" in russian and "How do I change my email address?" not in russian
    assert "Чем мы можем помочь?" in russian and '<html lang="ru">' in russian
    assert web.get("/help/nope/").status_code == 404
    assert web.get(f"/help/acme/articles/{ids['draft']}-secret-plans").status_code == 404

    wrong = web.get(f"/help/acme/articles/{ids['en']}-old-title")
    assert wrong.status_code == 301 and wrong.headers["Location"].endswith(
        f"/articles/{ids['en']}-how-do-i-change-my-email-address"
    )
    article = web.get(f"/help/acme/articles/{ids['en']}-how-do-i-change-my-email-address")
    html = article.get_data(as_text=True)
    assert "<strong>Settings → Account</strong>" in html
    assert (
        'rel="canonical"' in html
        and 'hreflang="ru"' in html
        and '<meta name="description" content="Open Settings' in html
    )
    with web.get("/static/help.css") as css:
        assert len(article.get_data()) + len(css.get_data()) < 50_000  # the page with its stylesheet
    voted = web.post(f"/help/acme/articles/{ids['en']}/answered", data={"answered": "yes", "lang": "en"})
    assert voted.status_code == 303 and "voted=yes" in voted.headers["Location"]
    assert (
        web.post(f"/help/acme/articles/{ids['en']}/answered", data={"answered": "maybe"}).status_code == 400
    )
    with api.app.app_context():
        db = get_session()
        counted = db.get(Article, ids["en"])
        day = db.get(ArticleDay, (ids["en"], datetime.now(UTC).date()))
        assert (counted.views, counted.answered_yes) == (1, 1) and (day.views, day.answered_yes) == (1, 1)

    sitemap = web.get("/help/acme/sitemap.xml")
    xml = sitemap.get_data(as_text=True)
    assert sitemap.mimetype == "application/xml" and xml.count("<url>") == 3 and "Secret" not in xml
    assert xml.count('hreflang="ru"') == 2  # both of the pair name the Russian one


def test_search_finds_articles_and_counts_what_found_nothing(centre):
    api, ids = centre
    web = api.app.test_client()
    found = web.get("/help/acme/search?q=change+email&lang=en").get_data(as_text=True)
    assert "How do I change my email address?" in found and "баланс" not in found
    russian = web.get("/help/acme/search?q=пополнить&lang=ru").get_data(as_text=True)
    assert "Как пополнить баланс?" in russian
    nothing = web.get("/help/acme/search?q=quantum+teleport").get_data(as_text=True)
    assert "Nothing found" in nothing
    for weird in ("", " ", "\u0000", "a" * 5000, "<script>", "%"):
        assert web.get("/help/acme/search", query_string={"q": weird}).status_code == 200
    with api.app.app_context():
        db = get_session()
        day = db.get(HelpDay, (api.mailboxes[SUPPORT], datetime.now(UTC).date()))
        misses = {m.query: m.count for m in db.scalars(select(HelpMiss))}
    assert day.searches >= 3 and day.searches_empty >= 1 and misses.get("quantum teleport") == 1


def test_a_slug_is_one_mailbox_s_and_well_formed(api_desk):  # noqa: F811
    api = api_desk
    with api.app.app_context():
        db = get_session()
        support, sales = db.get(Mailbox, api.mailboxes[SUPPORT]), db.get(Mailbox, api.mailboxes[SALES])
        mailbox_settings.save(db, support, {"help_centre": {"enabled": True, "slug": "acme"}}, batch=10)
        with pytest.raises(mailbox_settings.SettingsError, match="another mailbox"):
            mailbox_settings.save(db, sales, {"help_centre": {"enabled": True, "slug": "acme"}}, batch=10)
        for bad in (
            {"enabled": True},
            {"slug": "Acme!"},
            {"slug": "-a"},
            {"enabled": "yes", "slug": "x"},
            {"colour": 1},
        ):
            with pytest.raises(mailbox_settings.SettingsError, match="help_centre"):
                mailbox_settings.validate({"help_centre": bad})


def test_the_command_line_lists_articles(centre, api_app):  # noqa: F811
    api, ids = centre
    result = api.app.test_cli_runner().invoke(args=["articles", "list", "--mailbox", SUPPORT, "--json"])
    assert result.exit_code == 0, result.output
    import json

    listed = json.loads(result.output)
    assert {a["id"] for a in listed} == set(ids.values())
    plain = api.app.test_cli_runner().invoke(args=["articles", "list", "--mailbox", SUPPORT])
    assert "draft" in plain.output and "published" in plain.output
