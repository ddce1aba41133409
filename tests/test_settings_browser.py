"""The settings pages in a real browser, as an admin uses them: `postdesk web` as a subprocess, sign-in
through the stand-in Google issuer (the real redirect dance), invite, change a role, deactivate and
reassign, read the audit log, switch to Russian; an agent gets 403 on an admin page. Screenshots of
each page go to build/artifacts/ (docs/settings.md shows them). Needs Debian's Chromium, like the
previewer's browser test: skips loudly without it, fails when REQUIRE_BROWSER=1."""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import Process
from oidc_issuer import StandInGoogle
from sqlalchemy import select
from test_previewer_browser import ARTIFACTS, CHROMIUM_FLAGS, _chromium

from server import create_app
from server.base.db import get_engine, get_session, init_db
from server.base.models import Agent, AuthKind, Ticket
from server.services import tickets
from server.services.accounts import AgentChange, MailboxSpec, add_agent, add_mailbox


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _prepare(env: dict[str, str]) -> None:
    """A team of two with one mailbox, and three open tickets of the agent who is leaving."""
    app = create_app(
        {"DATABASE_URL": env["POSTDESK_DATABASE_URL"], "INSTANCE_PATH": env["POSTDESK_INSTANCE_PATH"]}
    )
    with app.app_context():
        init_db()
        db = get_session()
        box = add_mailbox(
            db, MailboxSpec("support@example.com", AuthKind.SANDBOX, "http://127.0.0.1:9/", None, "Support")
        )
        box.last_sync_at = datetime.now(UTC)
        box.sync_state = "incremental"
        db.commit()
        add_agent(
            db, "olga@example.com", AgentChange(name="Olga Ivanova", role="admin", mailboxes=(box.address,))
        )
        boris = add_agent(db, "boris@example.com", AgentChange(name="Boris", mailboxes=(box.address,)))
        for n, subject in enumerate(("Printer on fire", "Invoice copy", "Cannot sign in")):
            ticket = tickets.open_ticket(db, box.id, subject=subject, customer=None, gmail_thread_id=f"t{n}",
                                         created_at=datetime.now(UTC))  # fmt: skip
            tickets.assign(db, ticket, boris.id, at=datetime.now(UTC))
        db.commit()
    get_engine(app).dispose()


def settings_env(tmp_path: Path, google: StandInGoogle) -> dict[str, str]:
    """The environment of a `postdesk web` on a file database, signing in through ``google``."""
    return {
        "POSTDESK_DATABASE_URL": f"sqlite:///{tmp_path / 'postdesk.sqlite3'}",
        "POSTDESK_INSTANCE_PATH": str(tmp_path / "instance"),
        "POSTDESK_COOKIE_SECURE": "false",  # plain HTTP on loopback
        "POSTDESK_TIME_CHECK_URL": "http://127.0.0.1:9/",  # no Google here: the live clock check says so
        **{f"POSTDESK_{k}": v for k, v in google.config().items()},
    }


def start_web(env: dict[str, str], port: int | None = None) -> tuple[Process, str]:
    """`postdesk web` on ``port`` (a free loopback one by default), once it answers /healthz; its
    process and base URL."""
    port = port or _free_port()
    web = Process(["web", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env=env)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=2)
            return web, base
        except OSError:
            if time.monotonic() > deadline:
                web.stop()
                raise AssertionError("postdesk web did not answer:\n" + "\n".join(web.lines)) from None
            time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_admin_runs_the_team_from_the_settings_pages(tmp_path):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    google = StandInGoogle()
    env = settings_env(tmp_path, google)
    _prepare(env)
    shots = ARTIFACTS
    shots.mkdir(parents=True, exist_ok=True)
    web, base = start_web(env)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-US")
                # Sign in: Postdesk -> the stand-in's consent -> Postdesk's callback -> the page asked for.
                google.person = {"email": "olga@example.com", "name": "Olga Ivanova"}
                page.goto(f"{base}/settings/")
                expect(page.get_by_role("heading", name="Mailboxes")).to_be_visible()
                assert google.authorize_requests and google.token_requests  # the dance really happened
                expect(page.locator("tr.mailbox")).to_contain_text("Healthy")
                page.screenshot(path=str(shots / "settings-mailboxes.png"), full_page=True)
                page.get_by_role("link", name="support@example.com").click()
                settings_form = page.locator("#mailbox-settings")
                settings_form.get_by_label("Time zone").fill("Europe/Moscow")
                settings_form.get_by_role("button", name="Save").click()
                expect(page.locator(".flash.ok")).to_contain_text("Settings saved")
                page.screenshot(path=str(shots / "settings-mailbox.png"), full_page=True)

                # Invite an agent.
                page.locator("nav").get_by_role("link", name="Agents").click()
                invite = page.locator("#invite")
                invite.get_by_label("Email").fill("chen@example.com")
                invite.get_by_label("Name").fill("Chen Wei")
                invite.get_by_label("Mailboxes").select_option("support@example.com")
                invite.get_by_role("button", name="Invite").click()
                expect(page.locator(".flash.ok")).to_contain_text("chen@example.com was added")
                expect(page.locator("tr.agent", has_text="chen@example.com")).to_contain_text("Agent")
                page.screenshot(path=str(shots / "settings-agents.png"), full_page=True)

                # Change a role: Chen becomes a manager.
                page.get_by_role("link", name="Chen Wei").click()
                page.locator("#agent-form").get_by_label("Role").select_option("manager")
                page.locator("#agent-form").get_by_role("button", name="Save").click()
                expect(page.locator(".flash.ok")).to_contain_text("chen@example.com saved")

                # Deactivate Boris, then give his open tickets to Olga in one action.
                page.locator("nav").get_by_role("link", name="Agents").click()
                page.get_by_role("link", name="Boris").click()
                page.locator("#agent-form").get_by_label("Active (can sign in and get tickets)").uncheck()
                page.locator("#agent-form").get_by_role("button", name="Save").click()
                expect(page.get_by_role("heading", name=re.compile("Open tickets"))).to_contain_text("(3)")
                page.locator("#reassign").get_by_label("Give their open tickets to").select_option(
                    label="Olga Ivanova"
                )
                page.locator("#reassign").get_by_role("button", name="Reassign all").click()
                expect(page.locator(".flash.ok")).to_contain_text("3 open tickets reassigned")
                page.screenshot(path=str(shots / "settings-agent.png"), full_page=True)

                # The audit log says who did what.
                page.locator("nav").get_by_role("link", name="Audit log").click()
                rows = page.locator("tr.event")
                expect(rows.first).to_contain_text("olga@example.com")
                expect(page.locator("table")).to_contain_text("agent_changed")
                page.locator("select[name=kind]").select_option("agent_added")
                page.get_by_role("button", name="Filter").click()
                expect(rows).to_have_count(3)  # Olga and Boris (command line), Chen (invited)
                page.screenshot(path=str(shots / "settings-audit.png"), full_page=True)

                # System health: what does not hold, and what to do about it; then the live checks.
                page.locator("nav").get_by_role("link", name="System health").click()
                worker = page.locator("tr.check", has_text="no worker holds the clock's lease")
                expect(worker).to_contain_text("Fails")
                expect(worker).to_contain_text("start postdesk worker")
                expect(page.locator("tr.check", has_text="database")).to_contain_text("Holds")
                expect(
                    page.locator("tr.check", has=page.get_by_role("rowheader", name="clock"))
                ).to_contain_text("Not checked")
                page.get_by_role("button", name=re.compile("Check live")).click()
                expect(
                    page.locator("tr.check", has=page.get_by_role("rowheader", name="clock"))
                ).to_contain_text("gave no time")
                page.screenshot(path=str(shots / "settings-system.png"), full_page=True)
                page.locator("nav").get_by_role("link", name="Audit log").click()

                # Russian.
                page.get_by_role("button", name="Русский").click()
                expect(page.get_by_role("heading", name="Журнал изменений")).to_be_visible()
                page.locator("nav").get_by_role("link", name="Профиль").click()
                expect(page.get_by_role("heading", name="Ваш профиль")).to_be_visible()
                page.screenshot(path=str(shots / "settings-profile-ru.png"), full_page=True)
                page.get_by_role("button", name="Выйти", exact=True).click()
                expect(page.get_by_role("heading", name="Вы вышли из Postdesk")).to_be_visible()

                # An agent on an admin page: 403.
                agent_page = browser.new_page(viewport={"width": 1000, "height": 600}, locale="en-US")
                google.person = {"email": "boris@example.com"}  # inactive now: refused at sign-in
                agent_page.goto(f"{base}/settings/audit")
                expect(agent_page.get_by_role("alert")).to_contain_text("not an active member")
                google.person = {"email": "chen@example.com", "name": "Chen Wei"}
                answer = agent_page.goto(f"{base}/settings/audit")
                assert answer is not None and answer.status == 403
                expect(agent_page.get_by_role("heading", name="Not allowed")).to_be_visible()
                agent_page.screenshot(path=str(shots / "settings-403.png"), full_page=True)
            finally:
                browser.close()
    finally:
        web.stop()
        google.close()

    app = create_app(
        {"DATABASE_URL": env["POSTDESK_DATABASE_URL"], "INSTANCE_PATH": env["POSTDESK_INSTANCE_PATH"]}
    )
    with app.app_context():
        db = get_session()
        olga = db.scalar(select(Agent).where(Agent.email == "olga@example.com"))
        people = {a.email: (a.role, a.active) for a in db.scalars(select(Agent))}
        owners = {t.assignee_id for t in db.scalars(select(Ticket))}
    get_engine(app).dispose()
    assert people == {"olga@example.com": ("admin", True), "boris@example.com": ("agent", False),
                      "chen@example.com": ("manager", True)}  # fmt: skip
    assert owners == {olga.id}
    for name in ("mailboxes", "mailbox", "agents", "agent", "audit", "profile-ru", "403"):
        assert (shots / f"settings-{name}.png").stat().st_size > 5_000
