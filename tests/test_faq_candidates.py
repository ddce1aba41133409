"""FAQ candidates: a generated history with known groups — the questions that keep coming back are
found as groups of the right size, biggest first, with their typical wording and the team's answer;
a group an article already answers and questions asked once are left out; the page and the command
line show them, and "Write the article" makes a draft from the best answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from server.base.help_tables import Article
from server.base.models import Message, Ticket, TicketStatus
from server.services import articles
from server.services.knowledge.candidates import faq_candidates
from server.services.tickets import actions

INVOICES = ("Where can I download my invoice?", "Invoice download for March please", "How do I download invoices",
            "I need to download the invoice PDF", "download invoice for my accountant")  # fmt: skip
PASSWORDS = ("How do I reset my password?", "Password reset link does not arrive", "reset password please",
             "forgot password, how to reset it")  # fmt: skip
EXPORTS = ("How do I export my data to CSV?", "export data csv", "Can I export all data as CSV",
           "data export to csv file")  # fmt: skip
ONCE = ("The logo looks blurry on mobile", "Do you have an office in Berlin?", "Change the time zone of reports",
        "Can two people share one seat?", "Is there a dark mode?")  # fmt: skip
ANSWERS = {"inv": "Billing → History lists every invoice with a PDF link.",
           "pwd": "Use Forgot password on the sign-in page; the link works for an hour.",
           "exp": "Settings → Data → Export makes a ZIP of CSV files."}  # fmt: skip


@pytest.fixture
def history(session, mailbox):
    now = datetime.now(UTC)
    cases = [(q, ANSWERS["inv"]) for q in INVOICES] + [(q, ANSWERS["pwd"]) for q in PASSWORDS]
    cases += [(q, ANSWERS["exp"]) for q in EXPORTS] + [(q, f"Answer {n}") for n, q in enumerate(ONCE)]
    cases.append(("Where can I download my invoice from last year?", ANSWERS["inv"]))  # 91 days ago: too old
    for n, (question, answer) in enumerate(cases, start=1):
        at = now - timedelta(days=91 if "last year" in question else 1, minutes=n)
        ticket = Ticket(
            mailbox_id=mailbox.id, number=n, subject=question, status="open", created_at=at, updated_at=at
        )
        session.add(ticket)
        session.flush()
        session.add(Message(mailbox_id=mailbox.id, ticket_id=ticket.id, gmail_id=f"{n}-in", gmail_thread_id=str(n),
                            direction="inbound", text=question, sent_at=at))  # fmt: skip
        session.add(Message(mailbox_id=mailbox.id, ticket_id=ticket.id, gmail_id=f"{n}-out", gmail_thread_id=str(n),
                            direction="outbound", text=answer, sent_at=at + timedelta(minutes=5)))  # fmt: skip
        actions.set_status(session, ticket, TicketStatus.SOLVED, at=at + timedelta(minutes=6))
    articles.save(session, mailbox, articles.Draft("Exporting your data", "Settings → Data → Export makes CSV files of "
                                                   "all your data.", "en", "Data", True), author=None)  # fmt: skip
    session.commit()
    return mailbox


def test_the_questions_that_keep_coming_back_without_an_article_are_grouped(session, history):
    found = faq_candidates(session, history, now=datetime.now(UTC))
    assert [len(c.tickets) for c in found] == [5, 4]
    invoices, passwords = found
    subjects = lambda c: {session.get(Ticket, t).subject for t in c.tickets}  # noqa: E731
    assert subjects(invoices) == set(INVOICES) and subjects(passwords) == set(PASSWORDS)
    assert invoices.wording in INVOICES and invoices.answer == ANSWERS["inv"]
    assert session.get(Ticket, invoices.answer_ticket).subject in INVOICES
    assert faq_candidates(session, history, now=datetime.now(UTC), min_tickets=6) == []


def test_the_page_and_the_command_line_show_them_and_a_click_makes_the_draft(app, runner, session, history):
    result = runner.invoke(args=["faq", "candidates", "--mailbox", history.address, "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [row["count"] for row in rows] == [5, 4] and rows[0]["answer"] == ANSWERS["inv"]
    plain = runner.invoke(args=["faq", "candidates", "--mailbox", history.address])
    assert "5 tickets" in plain.output
    best = rows[0]["answer_ticket"]
    made = articles.from_ticket(session, session.get(Ticket, best), author=None, at=datetime.now(UTC))
    session.commit()
    assert made.body == ANSWERS["inv"] and made.ticket_id == best and made.published is False
    assert session.scalar(select(Article).where(Article.ticket_id == best)).id == made.id
