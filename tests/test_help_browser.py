"""The help centre in a real browser (Chromium through Playwright, `postdesk web` as a subprocess): an
admin writes an article in English and its Russian translation on the settings page, with the live
preview, and publishes both; a visitor finds the English one by a paraphrase, says it answered, then
uses the contact form — sees suggestions while typing, sends, confirms the address from the mail the
Gmail sandbox holds — and the ticket appears with the article seen. axe-core (axe-playwright-python,
which ships it) finds no WCAG 2.1 A/AA violation on any page type. Screenshots go to build/artifacts/
(docs/help-centre.md shows them)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from oidc_issuer import StandInGoogle
from sqlalchemy import select
from test_previewer_browser import ARTIFACTS, CHROMIUM_FLAGS, _chromium
from test_settings_browser import settings_env, start_web

from server import create_app
from server.base.db import get_engine, get_session, init_db
from server.base.help_tables import Article
from server.base.models import AuthKind, Event, Mailbox, Ticket
from server.services.accounts import AgentChange, MailboxSpec, add_agent, add_mailbox
from server.services.defaults import install_defaults

WCAG = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


def _accessible(page, what: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options=WCAG)
    assert results.violations_count == 0, f"{what}:\n{results.generate_report()}"


def _app(env: dict[str, str], gmail_url: str):
    return create_app({"DATABASE_URL": env["POSTDESK_DATABASE_URL"], "INSTANCE_PATH": env["POSTDESK_INSTANCE_PATH"],
                       "PUBLIC_URL": env["POSTDESK_PUBLIC_URL"]})  # fmt: skip


def _prepare(env: dict[str, str], gmail_url: str) -> None:
    app = _app(env, gmail_url)
    with app.app_context():
        init_db()
        db = get_session()
        box = add_mailbox(
            db, MailboxSpec("support@example.com", AuthKind.SANDBOX, gmail_url, None, "Acme Support")
        )
        box.settings = {"help_centre": {"enabled": True, "slug": "acme", "contact_form": True}}
        install_defaults(db, box)
        db.commit()
        add_agent(
            db, "olga@example.com", AgentChange(name="Olga Ivanova", role="admin", mailboxes=(box.address,))
        )
        db.commit()
    get_engine(app).dispose()


def _send_outbox(env: dict[str, str], gmail_url: str, gmail_client) -> None:
    """What the worker does: the Outbox's mail goes out through the Gmail sandbox."""
    from server.gmail.send import deliver_due

    app = _app(env, gmail_url)
    with app.app_context():
        db = get_session()
        box = db.scalar(select(Mailbox))
        deliver_due(db, box.id, gmail_client("support@example.com"))
    get_engine(app).dispose()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_article_is_written_found_by_a_paraphrase_and_the_form_makes_a_ticket(
    tmp_path, gmail, gmail_client
):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    google = StandInGoogle()
    env = settings_env(tmp_path, google)
    env["POSTDESK_PUBLIC_URL"] = "http://127.0.0.1:1"  # replaced below, once the port is known
    shots = ARTIFACTS
    shots.mkdir(parents=True, exist_ok=True)
    web, base = None, ""
    try:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        env["POSTDESK_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
        _prepare(env, gmail.url)
        web, base = start_web(env, port=port)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
                google.person = {"email": "olga@example.com", "name": "Olga Ivanova"}
                page.goto(f"{base}/settings/articles")
                expect(page.get_by_role("heading", name="Help centre")).to_be_visible()
                page.get_by_role("link", name="Write an article").click()
                editor = page.locator("#article-editor")
                editor.get_by_label("Title").fill("Changing the email you sign in with")
                editor.get_by_label("Category").fill("Account")
                editor.get_by_label("Text (Markdown)").fill(
                    "Open **Settings → Account**, type the new address and confirm it from the link we send."
                )
                expect(page.locator("#article-preview strong")).to_have_text(
                    "Settings → Account"
                )  # live preview
                editor.get_by_label("Published: shown in the help centre").check()
                editor.get_by_role("button", name="Save").click()
                expect(page.locator(".flash.ok")).to_contain_text("Article saved")
                page.screenshot(path=str(shots / "help-editor.png"), full_page=True)
                _accessible(page, "the article editor")

                page.locator("nav").get_by_role("link", name="Help centre").click()
                page.get_by_role("link", name="Write an article").click()
                editor.get_by_label("Title").fill("Как сменить адрес для входа")
                editor.get_by_label("Language").select_option("ru")
                editor.get_by_label("Translation of").select_option(
                    label="Changing the email you sign in with (en)"
                )
                editor.get_by_label("Text (Markdown)").fill(
                    "Откройте **Настройки → Аккаунт** и введите новый адрес."
                )
                editor.get_by_label("Published: shown in the help centre").check()
                editor.get_by_role("button", name="Save").click()
                expect(page.locator(".flash.ok")).to_contain_text("Article saved")
                page.locator("nav").get_by_role("link", name="Help centre").click()
                expect(page.locator("tr.article")).to_have_count(2)
                page.screenshot(path=str(shots / "help-articles.png"), full_page=True)

                # A visitor: no sign-in, their browser's language.
                visitor = browser.new_context(
                    viewport={"width": 1100, "height": 900}, locale="en-US"
                ).new_page()
                visitor.goto(f"{base}/help/acme/")
                expect(visitor.get_by_role("heading", name="How can we help?")).to_be_visible()
                expect(
                    visitor.get_by_role("link", name="Changing the email you sign in with")
                ).to_be_visible()
                _accessible(visitor, "the help centre's home")
                visitor.screenshot(path=str(shots / "help-home.png"), full_page=True)
                visitor.get_by_label("Search the help centre").fill("update login address on my profile")
                visitor.get_by_role("button", name="Search").click()
                found = visitor.get_by_role("link", name="Changing the email you sign in with")
                expect(found).to_be_visible()  # no word of the title: related terms found it
                _accessible(visitor, "search results")
                visitor.screenshot(path=str(shots / "help-search.png"), full_page=True)
                found.click()
                expect(
                    visitor.get_by_role("heading", name="Changing the email you sign in with")
                ).to_be_visible()
                _accessible(visitor, "an article")
                visitor.screenshot(path=str(shots / "help-article.png"), full_page=True)
                visitor.get_by_role("button", name="Yes").click()
                expect(visitor.get_by_role("heading", name="Thank you for telling us.")).to_be_visible()
                visitor.get_by_role(
                    "link", name="Как сменить адрес для входа (RU)"
                ).click()  # its translation
                expect(visitor.get_by_role("heading", name="Как сменить адрес для входа")).to_be_visible()
                expect(visitor.get_by_role("button", name="Да")).to_be_visible()  # the page in Russian
                visitor.go_back()

                visitor.get_by_role("link", name="Still need help? Write to us").click()
                form = visitor.locator("#contact-form")
                form.get_by_label("Your email address").fill("zoe@shop.example")
                form.get_by_label("Subject").fill("New address")
                form.get_by_label("Your question").press_sequentially(
                    "I want to change my login email", delay=10
                )
                expect(visitor.locator("#suggestions")).to_be_visible()  # while typing
                expect(visitor.locator("#suggestions").get_by_role("link")).to_contain_text(
                    ["Changing the email"]
                )
                _accessible(visitor, "the contact form")
                visitor.screenshot(path=str(shots / "help-contact.png"), full_page=True)
                form.get_by_role("button", name="Send").click()
                expect(visitor.get_by_role("heading", name="Check your mail")).to_be_visible()
                _accessible(visitor, "the check-your-mail page")

                _send_outbox(env, gmail.url, gmail_client)
                user = gmail.sandbox.user("support@example.com")
                sent = [m for m in user.messages.values() if "SENT" in m.label_ids]
                assert len(sent) == 1 and "zoe@shop.example" in sent[0].raw.decode()
                link = re.search(
                    rb"(http://127\.0\.0\.1:\d+/help/acme/confirm/[A-Za-z0-9_.\-]+)",
                    sent[0].raw.replace(b"=\r\n", b""),
                )
                assert link, sent[0].raw
                visitor.goto(link[1].decode())
                _accessible(visitor, "the confirmation page")
                visitor.get_by_role("button", name="Yes, send it to the team").click()
                expect(
                    visitor.get_by_role("heading", name="Thank you: your question reached the team")
                ).to_be_visible()
                visitor.screenshot(path=str(shots / "help-confirmed.png"), full_page=True)
            finally:
                browser.close()
        app = _app(env, gmail.url)
        with app.app_context():
            db = get_session()
            ticket = db.scalar(select(Ticket))
            english = db.scalar(select(Article).where(Article.language == "en"))
            seen = db.scalar(select(Event).where(Event.ticket_id == ticket.id, Event.kind == "help_form"))
            assert ticket.subject == "New address" and ticket.customer.email == "zoe@shop.example"
            assert seen.after["read_first"] is True and english.id in seen.after["articles"]
            assert english.answered_yes == 1 and english.views >= 1
            assert ticket.created_at <= datetime.now(UTC)
        get_engine(app).dispose()
    finally:
        if web is not None:
            web.stop()
        google.close()
