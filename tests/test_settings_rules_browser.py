"""The rules and templates pages in Chromium, as an admin works with them: write a rule as text, try
it on the mailbox's tickets (nothing changes), save it; change a template and watch the live preview
follow. Screenshots go to build/artifacts/ for docs/settings.md. Needs Debian's Chromium, like the
other browser tests (skips loudly without it, fails when REQUIRE_BROWSER=1)."""

from __future__ import annotations

import time
import urllib.request
from datetime import UTC, datetime

import pytest
from helpers import Process
from oidc_issuer import StandInGoogle
from sqlalchemy import func, select
from test_previewer_browser import ARTIFACTS, CHROMIUM_FLAGS, _chromium
from test_settings_browser import _free_port, _prepare

from server import create_app, tickets
from server.db import get_engine, get_session
from server.defaults import install_defaults
from server.models import Event, Mailbox, Rule, Ticket

URGENT = """rules:
  - name: Urgent words
    trigger: ticket_created
    conditions:
      any:
        - {field: subject, op: contains, value: срочно}
        - {field: subject, op: contains, value: urgent}
    actions:
      - set_priority: urgent
      - add_tag: urgent
"""


def _counts(app) -> tuple[int, int, list[str]]:
    with app.app_context():
        db = get_session()
        return (
            db.scalar(select(func.count()).select_from(Event)),
            db.scalar(select(func.count()).select_from(Rule)),
            [t.priority for t in db.scalars(select(Ticket).order_by(Ticket.id))],
        )


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_admin_tries_a_rule_saves_it_and_edits_a_template_with_a_live_preview(tmp_path):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    google = StandInGoogle()
    port = _free_port()
    env = {
        "POSTDESK_DATABASE_URL": f"sqlite:///{tmp_path / 'postdesk.sqlite3'}",
        "POSTDESK_INSTANCE_PATH": str(tmp_path / "instance"),
        "POSTDESK_COOKIE_SECURE": "false",
        **{f"POSTDESK_{k}": v for k, v in google.config().items()},
    }
    _prepare(env)
    app = create_app(
        {"DATABASE_URL": env["POSTDESK_DATABASE_URL"], "INSTANCE_PATH": env["POSTDESK_INSTANCE_PATH"]}
    )
    with app.app_context():
        db = get_session()
        box = db.scalar(select(Mailbox))
        install_defaults(db, box)
        db.execute(Rule.__table__.delete())  # this test writes the mailbox's rules itself
        tickets.open_ticket(db, box.id, subject="Срочно: сервер не отвечает", customer=None,
                            gmail_thread_id="u1", created_at=datetime.now(UTC))  # fmt: skip
        db.commit()
    before = _counts(app)
    web = Process(["web", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env=env)
    base = f"http://127.0.0.1:{port}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "\n".join(web.lines)
                time.sleep(0.2)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000}, locale="en-US")
                google.person = {"email": "olga@example.com", "name": "Olga Ivanova"}
                page.goto(f"{base}/settings/rules")
                expect(page.get_by_role("heading", name="Rules", exact=True)).to_be_visible()

                # Write, try: the dry run lists the matching ticket and why, and changes nothing.
                page.locator("#rule-editor textarea").fill(URGENT)
                page.get_by_role("button", name="Dry run").click()
                report = page.locator("#dry-run-report")
                expect(report).to_contain_text("1 matches on 4 tickets; nothing was changed")
                expect(report.locator("tr.match")).to_contain_text("Срочно: сервер не отвечает")
                expect(report.locator("tr.match")).to_contain_text("set priority urgent")
                page.screenshot(path=str(ARTIFACTS / "settings-rules.png"), full_page=True)
                assert _counts(app) == before

                # Save.
                page.get_by_role("button", name="Save the rules").click()
                expect(page.locator(".flash.ok")).to_contain_text("1 rules saved")
                expect(page.locator("tr.rule")).to_contain_text("Urgent words")

                # A template, and its live preview following the typing.
                page.locator("nav").get_by_role("link", name="Templates").click()
                page.get_by_role("link", name="Acknowledgement").click()
                english = page.locator("section[data-locale=en]")
                english.get_by_label("Text").fill(
                    "Hello {{ customer.name }}, ticket #{{ ticket.number }} is ours now."
                )
                expect(page.locator("#preview-en")).to_contain_text(
                    "Hello Maria Ivanova, ticket #1042 is ours now."
                )
                english.get_by_label("Text").fill("Broken {{ ticket.numbr }}")
                expect(page.locator("#preview-en .error")).to_contain_text("numbr")
                english.get_by_label("Text").fill("Thanks, {{ customer.name }}!")
                expect(page.locator("#preview-en")).to_contain_text("Thanks, Maria Ivanova!")
                page.screenshot(path=str(ARTIFACTS / "settings-template.png"), full_page=True)
                page.get_by_role("button", name="Save").click()
                expect(page.locator(".flash.ok")).to_contain_text("Template Acknowledgement saved")
            finally:
                browser.close()
    finally:
        web.stop()
        google.close()
    with app.app_context():
        db = get_session()
        saved = db.scalar(select(Rule))
        ack = db.scalar(select(Event).where(Event.kind == "template_changed"))
        assert saved is not None and saved.name == "Urgent words"
        assert ack is not None and ack.after["text"] == "Thanks, {{ customer.name }}!"
    get_engine(app).dispose()
    for name in ("rules", "template"):
        assert (ARTIFACTS / f"settings-{name}.png").stat().st_size > 5_000
