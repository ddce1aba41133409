"""The help centre on the settings pages: the mailbox's help-centre settings, the article editor (live
preview made safe, drafts, publishing, translations, stale edits, who may write), an FAQ template made
into an article in one click, and the acknowledgement's FAQ answer linking to it once published."""

from __future__ import annotations

import json
import re

from addon_fixtures import addon, desk, keys  # noqa: F401  (fixtures)
from sqlalchemy import select
from web_support import csrf_token, sign_in

from server.base.db import get_session
from server.base.help_tables import Article
from server.base.models import Mailbox, Template
from server.services import articles


def _signed(web, google, email):
    client = web.test_client()
    sign_in(client, google, email)
    return client, csrf_token(client)


def _article_form(token, **values):
    return {"csrf_token": token, "title": "", "body": "", "language": "en", "category": "", "translation_of": "",
            "version": "", **values}  # fmt: skip


def test_the_help_centre_is_turned_on_in_the_mailbox_settings(web, google, team):
    client, token = _signed(web, google, "admin@example.com")
    page = client.get(f"/settings/mailboxes/{team['mailbox']}").get_data(as_text=True)
    assert 'name="help_centre_slug"' in page
    version = page.split('name="version" type="hidden" value="')[1].split('"')[0]
    form = {"csrf_token": token, "version": version, "locale": "en", "timezone": "UTC",
            "auto_replies_per_sender_per_hour": "3", "team_addresses": "", "csat_scale": "three", "csat_days": "14",
            "faq_threshold": "50", "labels_root": "Postdesk", "help_centre_enabled": "y", "help_centre_slug": "Bad Slug!"}  # fmt: skip
    refused = client.post(f"/settings/mailboxes/{team['mailbox']}", data=form)
    assert refused.status_code == 400 and "lower-case letters" in refused.get_data(as_text=True)
    saved = client.post(f"/settings/mailboxes/{team['mailbox']}", data={**form, "help_centre_slug": "acme"})
    assert saved.status_code == 302
    with web.app_context():
        stored = get_session().get(Mailbox, team["mailbox"]).settings["help_centre"]
    assert stored == {"enabled": True, "slug": "acme", "contact_form": False}


def test_an_article_is_written_previewed_published_and_translated(web, google, team):
    with web.app_context():
        db = get_session()
        box = db.get(Mailbox, team["mailbox"])
        box.settings = {**(box.settings or {}), "help_centre": {"enabled": True, "slug": "acme"}}
        db.commit()
    client, token = _signed(web, google, "manager@example.com")
    base = f"/settings/articles/edit?mailbox={team['mailbox']}"
    hostile = "# Reset\n\n<script>alert(1)</script> [x](javascript:alert(1)) **Open Settings**"
    live = client.post(
        f"/settings/articles/preview?mailbox={team['mailbox']}", data=_article_form(token, body=hostile)
    )
    assert live.status_code == 200
    html = live.get_json()["html"]
    assert (
        "<strong>Open Settings</strong>" in html and "<script>" not in html and 'href="javascript' not in html
    )

    draft = client.post(base, data=_article_form(token, title="How to reset the password", body="Press **Forgot**.",
                                                 category="Account"))  # fmt: skip
    assert draft.status_code == 302
    with web.app_context():
        article = get_session().scalar(select(Article))
        article_id, version = article.id, article.updated_at.isoformat()
        assert article.published is False and article.author.email == "manager@example.com"
    published = client.post(f"{base}&id={article_id}", data=_article_form(
        token, title="How to reset the password", body="Press **Forgot**.", category="Account", published="y",
        version=version), follow_redirects=True)  # fmt: skip
    assert "Article saved" in published.get_data(
        as_text=True
    ) and "/help/acme/articles/" in published.get_data(as_text=True)
    stale = client.post(f"{base}&id={article_id}", data=_article_form(token, title="Other", version=version))
    assert stale.status_code == 302
    with web.app_context():
        assert get_session().get(Article, article_id).title == "How to reset the password"  # nothing saved
    russian = client.post(base, data=_article_form(token, title="Как сбросить пароль", body="Нажмите «Забыли».",
                                                   language="ru", translation_of=str(article_id), published="y"))  # fmt: skip
    assert russian.status_code == 302
    twice = client.post(
        base, data=_article_form(token, title="Ещё", language="ru", translation_of=str(article_id))
    )
    assert twice.status_code == 400 and "already has a translation" in twice.get_data(as_text=True)
    listed = client.get(f"/settings/articles?mailbox={team['mailbox']}").get_data(as_text=True)
    assert (
        "How to reset the password" in listed and "Как сбросить пароль" in listed and "/help/acme/" in listed
    )

    agent, agent_token = _signed(web, google, "agent@example.com")
    assert agent.get(f"/settings/articles?mailbox={team['mailbox']}").status_code == 200  # reads
    assert agent.post(base, data=_article_form(agent_token, title="x")).status_code == 403
    boxadmin, boxadmin_token = _signed(web, google, "boxadmin@example.com")
    assert boxadmin.post(base, data=_article_form(boxadmin_token, title="Mine")).status_code == 302
    assert client.post(f"/settings/articles/delete?mailbox={team['mailbox']}&id={article_id}",
                       data={"csrf_token": token}).status_code == 302  # fmt: skip
    with web.app_context():
        left = {a.title: a.translation_of_id for a in get_session().scalars(select(Article))}
    assert left == {"Как сбросить пароль": None, "Mine": None}


def test_an_faq_template_becomes_an_article_and_its_answer_links_to_it(web, google, team):
    with web.app_context():
        db = get_session()
        box = db.get(Mailbox, team["mailbox"])
        box.settings = {**(box.settings or {}), "help_centre": {"enabled": True, "slug": "acme"}}
        db.add(Template(mailbox_id=box.id, name="Invoices", locale="en", subject="Invoices",
                        body_text="Hello {{ customer.name }},\n\nBilling → History lists every invoice.\n\n{% if ticket.number %}Ticket #{{ ticket.number }}{% endif %}",
                        faq_questions=["Where do I download my invoices?", "invoice pdf"]))  # fmt: skip
        db.commit()
        template_id = db.scalar(select(Template.id).where(Template.name == "Invoices"))
    client, token = _signed(web, google, "admin@example.com")
    page = client.get(f"/settings/templates/edit?mailbox={team['mailbox']}&name=Invoices").get_data(
        as_text=True
    )
    assert 'id="article-from-en"' in page
    made = client.post(f"/settings/articles/from-template?mailbox={team['mailbox']}",
                       data={"csrf_token": token, "template": str(template_id)})  # fmt: skip
    assert made.status_code == 302
    again = client.post(f"/settings/articles/from-template?mailbox={team['mailbox']}",
                        data={"csrf_token": token, "template": str(template_id)})  # fmt: skip
    assert again.headers["Location"] == made.headers["Location"]  # one article per template
    with web.test_request_context("/", base_url="https://desk.example.com"), web.app_context():
        db = get_session()
        article = db.scalar(select(Article))
        assert article.title == "Where do I download my invoices?" and article.template_id == template_id
        assert "{{" not in article.body and "{%" not in article.body and "Billing → History" in article.body
        assert (
            articles.published_for_template(db, template_id) is None
        )  # a draft: acknowledgements do not link it
        article.published = True
        db.commit()
        web.config["PUBLIC_URL"] = "https://desk.example.com"
        from server.services.knowledge.faq import with_faq_answer
        from server.services.templating import RenderedMail

        url = articles.public_url(db.get(Mailbox, team["mailbox"]), article)
        assert (
            url == f"https://desk.example.com/help/acme/articles/{article.id}-where-do-i-download-my-invoices"
        )
        mail = with_faq_answer(
            RenderedMail("Re", "Thanks", "<p>Thanks</p>"), {"answer": "A", "link": "L", "article": url}, "en"
        )
        assert f"More in our help centre: {url}" in mail.text and f'href="{url}"' in mail.html


def test_a_solved_ticket_s_answer_becomes_a_draft_article_from_the_card(addon, session, desk, deliver):  # noqa: F811
    from helpers import MAILBOX, make_email

    from server.base.models import Ticket, TicketStatus
    from server.services import tickets

    deliver(make_email("Re: Cannot log in", "Hello Alice,\n\nclear the cookies and sign in again.\n\n"
                       "On Mon, Alice <alice@customer.test> wrote:\n> Help!\n", sender=MAILBOX, to="alice@customer.test",
                       in_reply_to="<alice-1@customer.test>"))  # fmt: skip
    desk.cycle(MAILBOX)
    ticket = session.scalar(select(Ticket).where(Ticket.subject == "Cannot log in"))
    open_card = json.dumps(addon.act("open_ticket", ticket=ticket.id).get_json(), ensure_ascii=False)
    assert "Make a help article" not in open_card  # only a solved ticket's answer
    tickets.set_status(session, ticket, TicketStatus.SOLVED, at=ticket.created_at)
    session.commit()
    card = json.dumps(addon.act("open_ticket", ticket=ticket.id).get_json(), ensure_ascii=False)
    bob_card = json.dumps(
        addon.act("open_ticket", "bob@example.com", ticket=ticket.id).get_json(), ensure_ascii=False
    )
    assert "Make a help article from this answer" in card and "Make a help article" not in bob_card

    made = addon.act("article_from_ticket", ticket=ticket.id).get_json()["renderActions"]["action"]
    refused = addon.act("article_from_ticket", "bob@example.com", ticket=ticket.id).get_json()

    assert made["notification"]["text"].startswith("Draft article “Cannot log in” made")
    assert "write help articles" in json.dumps(refused)
    article = session.scalar(select(Article))
    assert article.ticket_id == ticket.id and article.published is False and article.language == "en"
    assert "clear the cookies" in article.body and "wrote:" not in article.body


def test_the_reports_show_the_help_centre(web, google, team):
    from datetime import UTC, datetime, timedelta

    from server.services import help_counts

    now = datetime.now(UTC)
    with web.app_context():
        db = get_session()
        box = db.get(Mailbox, team["mailbox"])
        read = articles.save(
            db, box, articles.Draft("Reset the password", "Press Forgot.", "en", "", True), author=None
        )
        other = articles.save(db, box, articles.Draft("Export", "CSV.", "en", "", True), author=None)
        db.flush()
        for _ in range(8):
            help_counts.viewed(db, read, now)
        help_counts.viewed(db, other, now)
        help_counts.viewed(db, other, now - timedelta(days=100))  # outside the period
        help_counts.voted(db, read, True, now)
        help_counts.voted(db, read, True, now)
        help_counts.voted(db, read, False, now)
        help_counts.searched(db, box.id, "reset password", found=True, at=now)
        for _ in range(3):
            help_counts.searched(db, box.id, "Refund  policy", found=False, at=now)
        help_counts.contacted(db, box.id, read_first=True, at=now)
        help_counts.contacted(db, box.id, read_first=False, at=now)
        db.commit()
    client, _token = _signed(web, google, "manager@example.com")
    page = client.get(f"/reports/help?days=30&mailbox={team['mailbox']}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert re.search(r'id="help-views".*?>9<', html, re.S)  # 8 + 1 in the period
    assert re.search(r'id="help-answered".*?67%', html, re.S) and "2 / 3" in html
    assert re.search(r'id="help-deflection".*?89%', html, re.S)  # (9 - 1) / 9
    assert re.search(r'id="help-contacts".*?1 / 1', html, re.S) and re.search(
        r'id="help-searches".*?4 / 3', html, re.S
    )
    assert html.index("Reset the password") < html.index("Export") and "refund policy" in html
    assert client.get("/reports/help?days=abc").status_code == 400
    assert "help-report" in client.get("/reports?days=30").get_data(as_text=True)
