"""Every page type a person reads — settings (each page, with an item open where a page shows one),
reports, the CSAT rating page, the FAQ "this solved it" page, the help centre, sign-in — in Chromium
through Playwright against `postdesk web`: axe-core (shipped inside axe-playwright-python) finds no
WCAG 2.1 A/AA violation, and the keyboard alone reaches every control (Tab through the page visits each
visible link, button and field). Needs Chromium like the other browser tests: skips loudly without it,
fails when REQUIRE_BROWSER=1."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
from oidc_issuer import StandInGoogle
from sqlalchemy import select
from test_help_browser import WCAG
from test_previewer_browser import CHROMIUM_FLAGS, _chromium
from test_settings_browser import settings_env, start_web

from server.base.db import get_engine, get_session
from server.base.models import Agent, Mailbox, Message, Template, Ticket, TicketStatus
from server.services import csat
from server.services.articles import Draft
from server.services.articles import save as save_article
from server.services.knowledge.faq import solved_link
from server.services.tickets import set_status

#: Marks every control the keyboard should reach, and answers which were missed after tabbing.
_MARK = """() => {
  const wanted = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]';
  let n = 0;
  for (const el of document.querySelectorAll(wanted)) {
    const hidden = !el.checkVisibility({visibilityProperty: true}) || el.disabled
      || el.getAttribute('tabindex') === '-1' || el.closest('[inert]');
    if (!hidden) { el.dataset.kb = String(n++); }
  }
  window.__reached = new Set();
  document.addEventListener('focusin', e => { if (e.target.dataset && e.target.dataset.kb) window.__reached.add(e.target.dataset.kb); });
  return n;
}"""
_MISSED = """() => [...document.querySelectorAll('[data-kb]')]
  .filter(el => !window.__reached.has(el.dataset.kb))
  .map(el => el.outerHTML.slice(0, 160))"""


def _check(page, what: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options=WCAG)
    assert results.violations_count == 0, f"{what}:\n{results.generate_report()}"
    controls = page.evaluate(_MARK)
    page.locator("body").focus()
    for _ in range(2 * controls + 10):
        page.keyboard.press("Tab")
    missed = page.evaluate(_MISSED)
    assert not missed, f"{what}: the keyboard does not reach {missed}"


def _prepare(env: dict[str, str], gmail_url: str) -> dict[str, str]:
    """The help-centre test's mailbox and admin, plus an article, a webhook and a solved ticket; the
    ids and public links the pages need."""
    import dataclasses

    from test_help_browser import _app
    from test_help_browser import _prepare as mailbox_and_admin

    from server.services.webhooks.subscriptions import Settings, subscribe

    mailbox_and_admin(env, gmail_url)
    app = _app(env, gmail_url)
    with app.app_context():
        db = get_session()
        box = db.scalar(select(Mailbox))
        olga = db.scalar(select(Agent).where(Agent.email == "olga@example.com"))
        allowed = dataclasses.replace(
            Settings.from_config({**app.config, "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8"}), allow_http=True
        )
        hook, _secret = subscribe(db, box, url="http://127.0.0.1:9/hook", events=["ticket.created"], by=olga,
                                  settings=allowed, now=datetime.now(UTC))  # fmt: skip
        article = save_article(db, box, Draft("Changing your plan", "Open **Billing → Plan**.", "en", "Billing",
                                              published=True), author=olga)  # fmt: skip
        at = datetime.now(UTC) - timedelta(days=1)
        ticket = Ticket(
            mailbox_id=box.id, number=1, subject="Plan", status="open", created_at=at, updated_at=at
        )
        db.add(ticket)
        db.flush()
        for direction, text in (
            ("inbound", "How do I change my plan?"),
            ("outbound", "Open Billing → Plan."),
        ):
            db.add(Message(mailbox_id=box.id, ticket_id=ticket.id, gmail_id=f"m-{direction}", gmail_thread_id="t1",
                           direction=direction, text=text, sent_at=at))  # fmt: skip
        set_status(db, ticket, TicketStatus.SOLVED, at=at + timedelta(hours=1))
        db.commit()
        secret = str(app.config["SECRET_KEY"])
        template = db.scalar(select(Template).where(Template.mailbox_id == box.id))
        links = {
            "csat": csat.links(ticket, box, secret=secret, base_url=env["POSTDESK_PUBLIC_URL"])[0].url,
            "faq": solved_link(ticket.id, template.id, secret=secret, base_url=env["POSTDESK_PUBLIC_URL"]),
            "mailbox": str(box.id),
            "agent": str(olga.id),
            "webhook": str(hook.id),
            "article": str(article.id),
        }
    get_engine(app).dispose()
    return links


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_every_page_type_passes_axe_and_the_keyboard_reaches_every_control(tmp_path, gmail):
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    google = StandInGoogle()
    env = settings_env(tmp_path, google)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env["POSTDESK_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    links = _prepare(env, gmail.url)
    web, base = start_web(env, port=port)
    signed_in = [
        "/settings/", "/settings/profile", "/settings/mailboxes", f"/settings/mailboxes/{links['mailbox']}",
        "/settings/agents", f"/settings/agents/{links['agent']}", "/settings/rules", "/settings/rules/builder",
        "/settings/templates", "/settings/templates/edit", "/settings/sla", "/settings/signals",
        "/settings/reminders", "/settings/webhooks", f"/settings/webhooks/{links['webhook']}", "/settings/api-tokens", "/settings/articles",
        f"/settings/articles/edit?id={links['article']}", "/settings/articles/candidates", "/settings/customers",
        "/settings/audit", "/settings/system", "/reports", "/reports/tickets", "/reports/help",
    ]  # fmt: skip
    public = [
        "/auth/sign-in", links["csat"].removeprefix(base), links["faq"].removeprefix(base), "/help/acme/",
        "/help/acme/search?q=plan", f"/help/acme/articles/{links['article']}", "/help/acme/contact",
    ]  # fmt: skip
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            try:
                visitor = browser.new_context(
                    viewport={"width": 1280, "height": 900}, locale="en-US"
                ).new_page()
                for path in public:
                    assert visitor.goto(f"{base}{path}").status == 200, path
                    _check(visitor, path)
                page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US").new_page()
                google.person = {"email": "olga@example.com", "name": "Olga Ivanova"}
                page.goto(f"{base}/settings/")
                for path in signed_in:
                    assert page.goto(f"{base}{path}").status == 200, path
                    _check(page, path)
            finally:
                browser.close()
    finally:
        web.stop()
