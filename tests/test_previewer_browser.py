"""The card previewer in a real browser: `postdesk demo` as a user starts it, Chromium driven by
Playwright assigns a ticket and solves it through the add-on's cards, and a screenshot is kept in
build/artifacts/. Needs Debian's Chromium (/usr/bin/chromium, or POSTDESK_CHROMIUM): without it the
test skips loudly, and fails when REQUIRE_BROWSER=1 (as in CI, which installs it)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from helpers import Process
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from server.base.models import Agent, Event, Ticket

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "build" / "artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # This machine's network is closed: without these Chromium keeps trying Google's hosts.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    path = os.environ.get("POSTDESK_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    problem = None
    if not Path(path).exists():
        problem = f"no Chromium at {path} (apt install chromium, or set POSTDESK_CHROMIUM)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is missing (pip install -e '.[test]')"
    if problem is None:
        from playwright.sync_api import expect

        # A page on a shared 2-core machine running two test workers can take more than Playwright's
        # default 5 s to show an answer; a wrong answer still fails, only later.
        expect.set_options(timeout=20_000)
        return path
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser test: {problem}; REQUIRE_BROWSER=1 asks for it")
    pytest.skip(f"SKIPPED LOUDLY: the browser test did not run: {problem}")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_an_agent_assigns_and_solves_a_ticket_through_the_previewer(tmp_path):
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    instance = tmp_path / "instance"
    demo = Process(
        ["demo", "--port", "0", "--sandbox-port", "0"], env={"POSTDESK_INSTANCE_PATH": str(instance)}
    )
    try:
        url = demo.wait_for(r"add-on preview\s+(http://\S+)")[1]
        demo.wait_for(r"worker demo: running the jobs")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                # The first page a newcomer opens: where things are, and who to be in the demo.
                page.goto(url.split("/dev/addon")[0] + "/")
                expect(page.get_by_role("heading", name="Where things are")).to_be_visible()
                expect(page.get_by_role("link", name="card previewer")).to_be_visible()
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "front-page.png"), full_page=True)
                page.get_by_role("button", name=re.compile("^Mark Chen")).click()
                expect(page.locator("#sign-out")).to_be_visible()  # signed in, on the settings page
                assert "/settings" in page.url

                page.goto(url)
                page.select_option("#agent", "mark@example.com")
                expect(page.locator("#locale")).to_have_value("en")  # follows the agent
                # The newest ticket the team has not taken yet.
                thread = page.locator("#thread option", has_text=re.compile(r"^#\d+ ")).first
                label = thread.inner_text()
                number = int(re.match(r"#(\d+) ", label)[1])  # type: ignore[index]
                page.select_option("#thread", thread.get_attribute("value"))
                page.click("#open-message")
                card = page.locator("#card")
                expect(card.locator(".card-title")).to_contain_text(f"#{number} ")
                expect(card).to_contain_text("Nobody")

                card.get_by_role("button", name="Assign to me").click()
                expect(page.locator("#toast")).not_to_be_empty()
                expect(card).to_contain_text("Mark Chen")

                card.get_by_role("button", name="Solve").click()
                status = card.locator(
                    ".w-decorated", has=page.locator(".label", has_text=re.compile("^Status$"))
                )
                expect(status).to_contain_text("Solved")
                expect(card.get_by_role("button", name="Reopen")).to_be_visible()
                expect(page.locator("#json")).to_contain_text('"updateCard"', use_inner_text=False)
                assert page.locator("#error").inner_text() == ""
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "addon-previewer.png"), full_page=True)

                # The other two triggers: the homepage, and a template rendered into the draft.
                page.click("#open-homepage")
                expect(card.locator(".card-title")).to_have_text("My queue")
                page.click("#open-compose")
                expect(card.locator(".card-title")).to_have_text("Insert a template")
                card.get_by_role("button", name="Insert", exact=True).click()
                expect(page.locator("#draft")).to_contain_text(f"#{number}")
                assert page.locator("#error").inner_text() == ""

                # Similar solved tickets beside an open one, and one's answer into the draft.
                upload = page.locator("#thread option", has_text="Apple Mail: attachment won't upload")
                page.select_option("#thread", upload.get_attribute("value"))
                page.click("#open-message")
                expect(card).to_contain_text("Similar solved tickets")
                expect(card).to_contain_text("Bulk import fails with a 413 error")
                page.screenshot(path=str(ARTIFACTS / "addon-similar.png"), full_page=True)
                page.click("#open-compose")
                # The best suggestion first (more may follow, by words or by meaning): its answer.
                card.get_by_role("button", name="Insert this reply").first.click()
                expect(page.locator("#draft")).to_contain_text("25 MB per file")
                assert page.locator("#error").inner_text() == ""
            finally:
                browser.close()
    finally:
        demo.stop()

    # What the clicks did, read from the demo's database: the same changes and Events as anywhere.
    engine = create_engine(f"sqlite:///{instance / 'demo.sqlite3'}")
    try:
        with Session(engine) as session:
            mark = session.scalar(select(Agent).where(Agent.email == "mark@example.com"))
            ticket = session.scalar(select(Ticket).where(Ticket.number == number))
            assert ticket is not None and mark is not None
            assert (ticket.status, ticket.assignee_id) == ("solved", mark.id)
            by_mark = session.scalars(
                select(Event.kind).where(Event.ticket_id == ticket.id, Event.actor_agent_id == mark.id)
            ).all()
    finally:
        engine.dispose()
    assert "assigned" in by_mark and "status_changed" in by_mark, by_mark
    assert (ARTIFACTS / "addon-previewer.png").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_merge_undo_and_a_mention_through_the_previewer(tmp_path):
    """A customer writes again in a new thread: merge it from its card, see the survivor, undo; then
    mention a colleague in a note, be them, and find it in their Mentions."""
    chromium = _chromium()
    from helpers import http, make_email, wait_until
    from playwright.sync_api import expect, sync_playwright

    instance = tmp_path / "instance"
    demo = Process(
        ["demo", "--port", "0", "--sandbox-port", "0"], env={"POSTDESK_INSTANCE_PATH": str(instance)}
    )
    engine = create_engine(f"sqlite:///{instance / 'demo.sqlite3'}")
    try:
        url = demo.wait_for(r"add-on preview\s+(http://\S+)")[1]
        sandbox = demo.wait_for(r"gmail sandbox\s+(http://\S+)")[1]
        demo.wait_for(r"worker demo: running the jobs")
        with Session(engine) as session:
            first = session.scalar(
                select(Ticket)
                .where(Ticket.status == "open", Ticket.customer_id.is_not(None))
                .order_by(Ticket.id)
            )
            assert first is not None and first.customer is not None
            number, email = first.number, first.customer.email
        http("POST", f"{sandbox}sandbox/users/support@example.com/messages",
             raw=make_email("About my earlier question", "Any news on this?", sender=email))  # fmt: skip

        def filed() -> bool:
            with Session(engine) as session:
                return (
                    session.scalar(select(Ticket.id).where(Ticket.subject == "About my earlier question"))
                    is not None
                )

        assert wait_until(filed, timeout=60), "the demo did not file the new mail"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1100})
                page.goto(url)
                page.select_option("#agent", "mark@example.com")
                again = page.locator("#thread option", has_text="About my earlier question").first
                page.select_option("#thread", again.get_attribute("value"))
                page.click("#open-message")
                card = page.locator("#card")
                expect(card.locator(".card-title")).to_contain_text("About my earlier question")
                card.get_by_role("button", name="Merge this ticket into…").click()
                expect(card).to_contain_text("becomes part of the ticket you choose")
                choice = card.locator('[data-input="merge_into"] option', has_text=f"#{number} ").first
                card.locator('[data-input="merge_into"]').select_option(choice.get_attribute("value"))
                card.get_by_role("button", name="Merge", exact=True).click()
                expect(page.locator("#toast")).to_contain_text(f"merged into #{number}")
                expect(card.locator(".card-title")).to_contain_text(f"#{number} ")
                expect(card.get_by_role("button", name=re.compile("^Undo the merge of #"))).to_be_visible()
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "addon-merged.png"), full_page=True)
                card.get_by_role("button", name=re.compile("^Undo the merge of #")).click()
                expect(page.locator("#toast")).to_contain_text("is a ticket of its own again")
                expect(card.locator(".card-title")).to_contain_text("About my earlier question")

                # A note that mentions Anna; then, as Anna, the homepage lists it.
                card.locator('[data-input="note"]').fill("@Anna Petrova could you call them back?")
                card.get_by_role("button", name="Add note").click()
                expect(page.locator("#toast")).to_contain_text("Done")
                expect(card).to_contain_text("Anna Petrova")  # she follows the ticket now
                page.select_option("#agent", "anna@example.com")
                page.click("#open-homepage")
                expect(card).to_contain_text("could you call them back?")
                page.screenshot(path=str(ARTIFACTS / "addon-mentions.png"), full_page=True)
                assert page.locator("#error").inner_text() == ""
            finally:
                browser.close()
    finally:
        demo.stop()
    with Session(engine) as session:
        kinds = set(session.scalars(select(Event.kind).where(Event.kind.in_(["merged", "unmerged"]))))
        assert kinds == {"merged", "unmerged"}
    engine.dispose()
