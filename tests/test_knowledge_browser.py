"""FAQ answers in Chromium: an admin gives a template example questions on its settings page; the
customer opens the "this solved it" link of their acknowledgement, is asked first, and says yes.
Screenshots for docs/knowledge.md."""

from __future__ import annotations

import pytest
from oidc_issuer import StandInGoogle
from sqlalchemy import select
from test_previewer_browser import ARTIFACTS, CHROMIUM_FLAGS, _chromium
from test_settings_browser import _prepare, settings_env, start_web

from server import create_app
from server.base.db import get_engine, get_session
from server.base.models import Event, Mailbox, Template, Ticket
from server.services.knowledge import faq


def _link(env: dict[str, str], base: str) -> tuple[str, int]:
    """A "this solved it" link for the first ticket and the template the admin made (as the
    acknowledgement would carry it), signed with the running server's secret."""
    app = create_app(
        {"DATABASE_URL": env["POSTDESK_DATABASE_URL"], "INSTANCE_PATH": env["POSTDESK_INSTANCE_PATH"]}
    )
    with app.app_context():
        db = get_session()
        ticket = db.scalar(select(Ticket).order_by(Ticket.id))
        template = db.scalar(
            select(Template).where(Template.name == "Export to CSV", Template.locale == "en")
        )
        assert template is not None and template.faq_questions == [
            "How do I export my data to CSV?",
            "Where can I download all my contacts?",
        ]
        link = faq.solved_link(ticket.id, template.id, secret=app.config["SECRET_KEY"], base_url=base)
        found = ticket.id
    get_engine(app).dispose()
    return link, found


def _said(env: dict[str, str], ticket_id: int) -> list[Event]:
    app = create_app(
        {"DATABASE_URL": env["POSTDESK_DATABASE_URL"], "INSTANCE_PATH": env["POSTDESK_INSTANCE_PATH"]}
    )
    with app.app_context():
        found = list(
            get_session().scalars(
                select(Event).where(Event.ticket_id == ticket_id, Event.kind == "faq_solved")
            )
        )
    get_engine(app).dispose()
    return found


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_admin_makes_an_faq_answer_and_a_customer_says_it_solved_their_question(tmp_path):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    google = StandInGoogle()
    env = settings_env(tmp_path, google)
    _prepare(env)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    web, base = start_web(env)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000}, locale="en-US")
                google.person = {"email": "olga@example.com", "name": "Olga Ivanova"}
                page.goto(f"{base}/settings/")
                page.locator("nav").get_by_role("link", name="Templates").click()
                page.locator("#new-template").get_by_label("New template named").fill("Export to CSV")
                page.locator("#new-template").get_by_role("button", name="Write it").click()
                english = page.locator("section[data-locale=en]")
                english.get_by_label("Subject").fill("{{ ticket.subject }} [#{{ ticket.number }}]")
                english.get_by_label("Text").fill("Open Settings → Data → Export and choose CSV.")
                questions = english.get_by_label(
                    "FAQ: example questions this template answers, one a line (empty: it is no FAQ answer)"
                )
                # A line of stop words only is refused at the field, and nothing is saved.
                questions.fill("How do I export my data to CSV?\nthe and of")
                page.locator("#save-template").click()
                expect(page.locator("section[data-locale=en] .error")).to_contain_text("no word")
                questions = page.locator("section[data-locale=en]").get_by_label(
                    "FAQ: example questions this template answers, one a line (empty: it is no FAQ answer)"
                )
                questions.fill("How do I export my data to CSV?\n\nWhere can I download all my contacts?\n")
                page.locator("#save-template").click()
                expect(page.locator(".flash")).to_contain_text("Template Export to CSV saved.")
                page.screenshot(path=str(ARTIFACTS / "settings-template-faq.png"), full_page=True)

                # The mailbox's threshold, on its settings page.
                page.locator("nav").get_by_role("link", name="Mailboxes").click()
                page.get_by_role("link", name="support@example.com").first.click()
                threshold = page.get_by_label(
                    "…when the new ticket matches an example question by at least (%)"
                )
                expect(threshold).to_have_value("50")
                threshold.fill("60")
                page.get_by_role("button", name="Save").click()
                expect(page.locator(".flash.ok")).to_be_visible()

                link, ticket_id = _link(env, base)
                customer = browser.new_page(viewport={"width": 900, "height": 700}, locale="en-US")
                customer.goto(link)
                expect(customer.get_by_role("heading")).to_have_text("Did this answer your question?")
                assert _said(env, ticket_id) == []  # opening the link decides nothing
                customer.screenshot(path=str(ARTIFACTS / "faq-ask.png"), full_page=True)
                customer.get_by_role("button", name="Yes, this solved it").click()
                expect(customer.locator("#faq-thanks")).to_have_text("Thank you, glad it helped")
                customer.screenshot(path=str(ARTIFACTS / "faq-thanks.png"), full_page=True)
                assert len(_said(env, ticket_id)) == 1
            finally:
                browser.close()
    finally:
        web.stop()
        google.close()
    app = create_app(
        {"DATABASE_URL": env["POSTDESK_DATABASE_URL"], "INSTANCE_PATH": env["POSTDESK_INSTANCE_PATH"]}
    )
    with app.app_context():
        box = get_session().scalar(select(Mailbox))
        assert box.settings["faq"] == {"enabled": True, "threshold": 0.6}
    get_engine(app).dispose()
    for name in ("settings-template-faq", "faq-ask", "faq-thanks"):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 5_000
