"""Forgetting a customer leaves no trace of their words or address in any table; the counts stay."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from helpers import MAILBOX, make_email
from sqlalchemy import LargeBinary, func, select, text

from server.base.models import Agent, Base, Event, KnowledgeEntry, Message, Ticket, TicketStatus
from server.services import action_kinds
from server.services.tickets import set_status

MARKER = "zq7marker"
CUSTOMER = f"Olga {MARKER.title()} <olga.{MARKER}@{MARKER}-shop.test>"


def traces(session: Any) -> list[str]:
    """Every (table.column) whose text holds the marker, in every table Postdesk has."""
    found = []
    for table in Base.metadata.sorted_tables:
        columns = [c for c in table.columns if not isinstance(c.type, LargeBinary)]
        for row in session.execute(select(*columns)).all():
            for column, value in zip(columns, row, strict=True):
                if value is not None and MARKER in str(value).lower():
                    found.append(f"{table.name}.{column.name}")
    return sorted(set(found))


def in_full_text_index(session: Any) -> bool:
    """The marker in the database's own full-text index: found by a search, or anywhere in its stored
    bytes (SQLite's FTS5 keeps a deleted entry's words in old segments until they merge)."""
    if session.get_bind().dialect.name == "postgresql":
        return bool(session.scalar(text("SELECT count(*) FROM knowledge_entries WHERE document::text LIKE :m"),
                                   {"m": f"%{MARKER}%"}))  # fmt: skip
    found = session.scalar(
        text("SELECT count(*) FROM knowledge_fts WHERE knowledge_fts MATCH :m"), {"m": f'"{MARKER}"'}
    )
    shadow = [
        name
        for (name,) in session.execute(
            text("SELECT name FROM sqlite_master WHERE name LIKE 'knowledge_fts_%'")
        )
    ]
    stored = b"".join(
        value if isinstance(value, bytes) else str(value).encode()
        for name in shadow
        for row in session.execute(text(f"SELECT * FROM {name}"))
        for value in row
        if value is not None
    )
    return bool(found) or MARKER.encode() in stored


def test_forgetting_a_customer_leaves_no_trace_of_them_and_keeps_the_ticket_counts(
    app, helpdesk, deliver, session, runner
):
    from server.services import csat, webhooks

    box = helpdesk.connect(MAILBOX, ["anna@example.com"])
    admin = session.scalar(select(Agent))
    webhooks.subscribe(session, box, url="https://93.184.215.14/in", events=list(webhooks.EVENT_TYPES), by=admin,
                       settings=webhooks.Settings.from_config(app.config), now=datetime.now(UTC))  # fmt: skip
    session.commit()
    deliver(make_email(f"Order {MARKER} is late", f"My order {MARKER} did not arrive, urgent!",
                       sender=CUSTOMER, message_id=f"<first.{MARKER}@{MARKER}-shop.test>"))  # fmt: skip
    deliver(make_email("Someone else", "Where is my invoice?", sender="bob@other.test",
                       extra=f"Cc: olga.{MARKER}@{MARKER}-shop.test"))  # fmt: skip
    helpdesk.cycle(MAILBOX)
    deliver(make_email(f"Re: Order {MARKER} is late", f"Still waiting, {MARKER}", sender=CUSTOMER,
                       in_reply_to=f"<first.{MARKER}@{MARKER}-shop.test>"))  # fmt: skip
    helpdesk.cycle(MAILBOX)
    ticket = session.scalar(select(Ticket).where(Ticket.subject.contains(MARKER)))
    csat.rate(session, ticket, "bad", at=datetime.now(UTC), comment=f"{MARKER} was slow")
    session.commit()
    # Answered and solved: the ticket is in the knowledge index, its words in the full-text index too.
    anna = session.scalar(select(Agent).where(Agent.email == "anna@example.com"))
    assert action_kinds.reply_with_text(
        session, ticket, f"Hi Olga {MARKER}, it is on its way.", agent=anna, now=datetime.now(UTC)
    )
    session.commit()
    helpdesk.cycle(MAILBOX)  # sends it
    helpdesk.cycle(MAILBOX)  # files it from Gmail
    set_status(session, ticket, TicketStatus.SOLVED, at=datetime.now(UTC))
    session.commit()
    assert MARKER in session.scalar(
        select(KnowledgeEntry.answer).where(KnowledgeEntry.ticket_id == ticket.id)
    )
    assert in_full_text_index(session)
    assert len(traces(session)) >= 8  # messages, tickets, customers, events, outbox, ratings, deliveries …
    counts = session.scalar(select(func.count(Ticket.id))), session.scalar(select(func.count(Message.id)))

    answer = runner.invoke(args=["customer", "forget", f"OLGA.{MARKER}@{MARKER}-shop.test", "--yes"])

    assert answer.exit_code == 0, answer.output
    assert "1 tickets" in answer.output
    session.expire_all()
    assert traces(session) == []
    assert not in_full_text_index(session)
    assert (
        session.scalar(select(func.count(Ticket.id))),
        session.scalar(select(func.count(Message.id))),
    ) == counts
    forgotten = session.scalar(select(Ticket).where(Ticket.id == ticket.id))
    assert (
        forgotten.subject == "(forgotten)"
        and forgotten.number == ticket.number
        and forgotten.customer_id is None
    )
    other = session.scalar(select(Ticket).where(Ticket.subject == "Someone else"))
    assert other.customer is not None and other.customer.email == "bob@other.test"  # nobody else forgotten
    audit = session.scalar(select(Event).where(Event.kind == "customer_forgotten"))
    assert audit.after == {
        "customers": 1,
        "tickets": 1,
        "messages": 4,
    }  # two of theirs, our acknowledgement, the answer
    # The next sync does not bring the forgotten mail back (Gmail still has it; the rows keep its ids).
    helpdesk.cycle(MAILBOX)
    assert traces(session) == []


def test_forget_refuses_what_is_not_an_address_and_asks_first(runner):
    assert runner.invoke(args=["customer", "forget", "nobody", "--yes"]).exit_code == 2
    # A NUL (PostgreSQL's text cannot hold one; found by the settings fuzz) or another control character.
    for address in ("@\x00", "a\x00@b.test", "a@b.test\x1b"):
        refused = runner.invoke(args=["customer", "forget", address, "--yes"])
        assert refused.exit_code == 2 and "email address" in refused.output
    asked = runner.invoke(args=["customer", "forget", "a@b.test"], input="n\n")
    assert asked.exit_code == 1 and "cannot be undone" in asked.output


def test_an_admin_forgets_a_customer_on_the_settings_page(web, google, team):
    from web_support import csrf_token, sign_in

    from server.base.db import get_session
    from server.base.models import Customer

    with web.app_context():
        db = get_session()
        db.add(Customer(mailbox_id=team["mailbox"], email="leaving@shop.test", name="Leaving"))
        db.commit()
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    token = csrf_token(client, "/settings/customers")
    unconfirmed = client.post("/settings/customers", data={"csrf_token": token, "email": "leaving@shop.test"})
    assert unconfirmed.status_code == 400 and "Tick this" in unconfirmed.get_data(as_text=True)
    done = client.post("/settings/customers", data={"csrf_token": token, "email": "leaving@shop.test", "confirm": "y"},
                       follow_redirects=True)  # fmt: skip
    assert done.status_code == 200 and "Forgotten" in done.get_data(as_text=True)
    with web.app_context():
        assert (
            get_session().scalars(select(Customer).where(Customer.email == "leaving@shop.test")).all() == []
        )
