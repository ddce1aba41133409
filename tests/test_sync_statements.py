"""What one filed message costs the database: SQL statements per message for a page of 100, with
every feature of a default mailbox on (the default rules and their acknowledgements, readings, the
knowledge index, Gmail labels, a webhook subscribed to everything). A page's work is a handful of
statements whatever its size, so the figures are mostly the per-message ones.

Each kind of mail has a budget. A feature that adds a statement per message breaks it loudly: make
the new work one statement per page (read what the page needs at once, write it in the page's one
flush) or, if it truly must be per message, raise the budget here and say why in
docs/architecture.md. The budgets hold on SQLite and PostgreSQL alike: both insert a page's rows
of a table together (SQLite through the tables' insert sentinels, migration 0026).
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
from helpers import MAILBOX, make_email
from sqlalchemy import event, func, select

from server.base.crypto import encrypt_json
from server.base.db import get_engine
from server.base.models import Message, Ticket, Webhook

PAGE = 100
#: Statements per filed message, by kind (what each costs is listed in docs/architecture.md).
BUDGETS = {
    # A new ticket: its customer, ticket, message and events (a page's rows of each table in one
    # INSERT); the default rules assign it, read its urgency, check loop safety (one statement) and
    # queue the acknowledgement (2.3 on both databases today: the acknowledgement answers the message
    # sync holds, no query for its thread).
    "new ticket": 3,
    # A customer's reply on an open ticket: the message and its reading (0.2 today).
    "reply": 0.5,
    # An out-of-office answer in a ticket's thread: filed with its event, not acted on (0.2 today).
    "automatic mail": 0.5,
}


def _with_everything_on(helpdesk, session):
    box = helpdesk.connect(MAILBOX, agents=["anna@example.com", "boris@example.com"])
    box.settings = {**(box.settings or {}), "gmail_labels": {"enabled": True}}
    session.add(
        Webhook(mailbox_id=box.id, url="https://hooks.example.com/postdesk", enabled=True,
                events=["ticket.created", "ticket.updated", "ticket.assigned", "ticket.solved",
                        "ticket.reopened", "message.received"],
                secret_encrypted=encrypt_json({"secret": "whsec_test"}))
    )  # fmt: skip
    session.commit()
    return box


def _statements_per_message(helpdesk, session, deliveries) -> tuple[float, list[str]]:
    before = session.scalar(select(func.count()).select_from(Message))
    for raw in deliveries:
        helpdesk.gmail.sandbox.deliver(MAILBOX, raw)
    statements: list[str] = []

    def count(*args):
        statements.append(args[2])

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", count)
    try:
        result = helpdesk.cycle(MAILBOX, send=False)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert result.messages_filed == len(deliveries)
    assert session.scalar(select(func.count()).select_from(Message)) == before + len(deliveries)
    return len(statements) / len(deliveries), statements


@pytest.fixture
def costs(app, helpdesk, session):
    _with_everything_on(helpdesk, session)
    new = [make_email(f"Question {n}", "The export button does nothing.", sender=f"c{n}@example.org",
                      message_id=f"<q{n}@example.org>") for n in range(PAGE)]  # fmt: skip
    replies = [make_email(f"Re: Question {n}", "Any news? It still does nothing.", sender=f"c{n}@example.org",
                          in_reply_to=f"<q{n}@example.org>") for n in range(PAGE)]  # fmt: skip
    automatic = [make_email(f"Out of office: Re: Question {n}", "I am away until Monday.", sender=f"c{n}@example.org",
                            in_reply_to=f"<q{n}@example.org>", extra="Auto-Submitted: auto-replied")
                 for n in range(PAGE)]  # fmt: skip
    figures = {
        "new ticket": _statements_per_message(helpdesk, session, new),
        "reply": _statements_per_message(helpdesk, session, replies),
        "automatic mail": _statements_per_message(helpdesk, session, automatic),
    }
    assert session.scalar(select(func.count()).select_from(Ticket)) == PAGE
    return figures


def _most_common(statements: list[str]) -> str:
    shapes = Counter(re.sub(r"\s+", " ", text)[:100] for text in statements)
    return "\n".join(f"  {count:5d}  {shape}" for shape, count in shapes.most_common(12))


def test_each_kind_of_mail_stays_within_its_budget_of_statements_per_message(costs):
    print({kind: round(figure, 2) for kind, (figure, _statements) in costs.items()})
    over = {kind: figure for kind, (figure, _statements) in costs.items() if figure > BUDGETS[kind]}
    assert not over, f"over budget (statements per message): {over}; budgets {BUDGETS}\n" + "\n".join(
        f"{kind}:\n{_most_common(costs[kind][1])}" for kind in over
    )
