"""Forgetting a customer: their words and their address leave Postdesk; the ticket counts stay.

``forget`` finds every ticket of the customers with that address (in every mailbox) and, in one
transaction: empties their messages (text, HTML, subject, names, addresses, attachments' names, the
urgency/tone reading) — keeping each row's opaque Gmail ids, so a later sync does not import the
mail again —, renames the tickets "(forgotten)", empties the details of the tickets' audit events,
the rating's comment and every Outbox row about them (one still waiting is cancelled), drops their
webhook deliveries, takes their tickets (and any ticket with their mail, or an answer naming their
address) out of the knowledge index — compacting it, so no deleted word stays behind in the
database's full-text index — and deletes the customer rows. Ticket numbers, statuses, times and
measures stay, so the reports count them as before. Internal notes stay: they are the team's words.

Gmail keeps its own copy of the mail; deleting it there is the mailbox owner's step (docs/knowledge.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from server.base.models import (
    CsatRating,
    Customer,
    Event,
    KnowledgeEntry,
    Message,
    Outbox,
    OutboxState,
    Ticket,
    WebhookDelivery,
)
from server.services.knowledge import index
from server.services.tickets import SYSTEM, Actor, record_event

#: What a forgotten ticket is called from then on.
FORGOTTEN = "(forgotten)"


class ForgetError(ValueError):
    """The request cannot be done as asked; ``str(exc)`` says why."""


@dataclass(frozen=True)
class Forgotten:
    customers: int
    tickets: int
    messages: int


def forget(session: Session, email: str, *, actor: Actor = SYSTEM, now: datetime) -> Forgotten:
    """Forget the customer with ``email`` in every mailbox (not committed); see the module's docstring."""
    address = email.strip().lower()
    if "@" not in address or len(address) > 320 or any(ord(ch) < 32 or ch == "\x7f" for ch in address):
        raise ForgetError("give the customer's email address")  # no control character is in an address
    customers = list(session.scalars(select(Customer).where(func.lower(Customer.email) == address)))
    customer_ids = [c.id for c in customers]
    ticket_ids = (
        list(session.scalars(select(Ticket.id).where(Ticket.customer_id.in_(customer_ids))))
        if customer_ids
        else []
    )
    # Their mail on other tickets too (a customer copied on someone else's thread).
    from_them = or_(func.lower(Message.from_email) == address, Message.ticket_id.in_(ticket_ids or [-1]))
    # Out of the knowledge index: their tickets, tickets with their mail, answers naming their address.
    indexed = set(ticket_ids) | {
        ticket_id for ticket_id in session.scalars(select(Message.ticket_id).where(from_them)) if ticket_id
    }
    indexed |= set(
        session.scalars(
            select(KnowledgeEntry.ticket_id).where(
                or_(
                    func.lower(KnowledgeEntry.question).contains(address),
                    func.lower(KnowledgeEntry.answer).contains(address),
                )
            )
        )
    )
    if index.remove(session, indexed):
        index.compact(session)
    messages = session.execute(
        update(Message)
        .where(from_them)
        .values(
            subject="",
            text="",
            html=None,
            from_email="",
            from_name="",
            to="",
            cc="",
            attachments=[],
            rfc822_message_id=None,
            in_reply_to=None,
            references=None,
            parse_problems=[],
            auto_reason=None,
            urgency=None,
            tone=None,
            signals=None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]  # an UPDATE's result has a rowcount
    # Other people's mail that had them in To or Cc keeps no address list.
    session.execute(
        update(Message)
        .where(or_(func.lower(Message.to).contains(address), func.lower(Message.cc).contains(address)))
        .values(to="", cc="")
        .execution_options(synchronize_session=False)
    )
    if ticket_ids:
        session.execute(
            update(Ticket).where(Ticket.id.in_(ticket_ids)).values(subject=FORGOTTEN, customer_id=None)
        )
        session.execute(
            update(Event)
            .where(Event.ticket_id.in_(ticket_ids))
            .values(before=None, after={"forgotten": True})
            .execution_options(synchronize_session=False)
        )
        session.execute(update(CsatRating).where(CsatRating.ticket_id.in_(ticket_ids)).values(comment=""))
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.ticket_id.in_(ticket_ids)))
    about_them = or_(
        Outbox.ticket_id.in_(ticket_ids or [-1]),
        func.lower(Outbox.to).contains(address),
        func.lower(Outbox.cc).contains(address),
    )
    session.execute(
        update(Outbox)
        .where(about_them, Outbox.state.in_([OutboxState.PENDING.value, OutboxState.SENDING.value]))
        .values(state=OutboxState.CANCELLED.value)
    )
    session.execute(
        update(Outbox)
        .where(about_them)
        .values(to="", cc="", subject=FORGOTTEN, body_text="", body_html=None, headers={}, last_error=None)
        .execution_options(synchronize_session=False)
    )
    if customer_ids:
        session.execute(delete(Customer).where(Customer.id.in_(customer_ids)))
    session.expire_all()
    found = Forgotten(customers=len(customer_ids), tickets=len(ticket_ids), messages=int(messages or 0))
    # The audit log says that someone was forgotten, and how much, never whom.
    record_event(
        session,
        None,
        "customer_forgotten",
        actor=actor,
        after={"customers": found.customers, "tickets": found.tickets, "messages": found.messages},
        at=now,
    )
    return found
