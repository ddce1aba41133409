"""Splitting a customer's message, and the later messages of its Gmail thread, off into a new ticket.

Gmail cannot move a message to another thread, so the new ticket's messages stay where they are: the
new ticket has no thread of its own (``gmail_thread_id`` is None) and shares the old one. Sync files
a later message of a shared thread into the ticket of the message it answers (its In-Reply-To or
References), replies from the new ticket answer its latest message in that thread, and the labels
of a shared thread are put message by message (server.services.labels). Both tickets get an Event
naming the other and the messages that moved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from server.base.models import Customer, Direction, Message, Ticket, TicketStatus
from server.services.tickets.actions import (
    SYSTEM,
    Actor,
    open_ticket,
    record_event,
    record_first_response,
    refresh_due_times,
    want_labels,
)
from server.services.tickets.merging import merged_note


class SplitError(ValueError):
    """A split that cannot be done; ``str(exc)`` says why, to a person."""


def split(
    session: Session, ticket: Ticket, message: Message, *, at: datetime, actor: Actor = SYSTEM
) -> Ticket:
    """Move ``message`` and the later messages of its Gmail thread from ``ticket`` to a new ticket of
    the message's sender; returns the new ticket (the caller runs the new-ticket rules)."""
    if ticket.status == TicketStatus.MERGED.value:
        raise SplitError(merged_note(session, ticket))
    if message.ticket_id != ticket.id:
        raise SplitError(f"that message is not part of #{ticket.number}")
    if message.direction != Direction.INBOUND.value or not message.from_email:
        raise SplitError("only a customer's message can start a ticket")
    session.flush()
    later = or_(
        Message.sent_at > message.sent_at, and_(Message.sent_at == message.sent_at, Message.id >= message.id)
    )
    moving = list(session.scalars(
        select(Message.id).where(Message.ticket_id == ticket.id, Message.gmail_thread_id == message.gmail_thread_id,
                                 later).order_by(Message.sent_at, Message.id)
    ))  # fmt: skip
    total = session.scalar(select(func.count()).select_from(Message).where(Message.ticket_id == ticket.id))
    if total == len(moving):
        raise SplitError(f"that would move every message: nothing would be left on #{ticket.number}")
    new = open_ticket(session, ticket.mailbox_id, subject=message.subject or ticket.subject,
                      customer=_customer(session, ticket, message), gmail_thread_id=None,
                      created_at=message.sent_at, actor=actor)  # fmt: skip
    new.priority = ticket.priority
    session.execute(update(Message).where(Message.id.in_(moving)).values(ticket_id=new.id)
                    )  # fmt: skip
    _count_replies(session, ticket, actor, moved_from=message.sent_at)
    _count_replies(session, new, actor, moved_from=new.created_at)
    record_event(session, ticket, "split", actor=actor, at=at,
                 after={"into": new.number, "ticket_id": new.id, "messages": moving})  # fmt: skip
    record_event(session, new, "split_from", actor=actor, at=at,
                 after={"from": ticket.number, "ticket_id": ticket.id, "messages": moving})  # fmt: skip
    want_labels(ticket)
    want_labels(new)
    return new


def _customer(session: Session, ticket: Ticket, message: Message) -> Customer:
    """The message's sender as a customer of the mailbox (the ticket's own customer, most often)."""
    email = message.from_email.lower()
    if ticket.customer is not None and ticket.customer.email == email:
        return ticket.customer
    found = session.scalar(
        select(Customer).where(Customer.mailbox_id == ticket.mailbox_id, Customer.email == email)
    )
    if found is None:
        found = Customer(mailbox_id=ticket.mailbox_id, email=email, name=message.from_name or "")
        session.add(found)
    return found


def _count_replies(session: Session, ticket: Ticket, actor: Actor, *, moved_from: datetime) -> None:
    """The agents' replies counted again from the messages the ticket has now, and its first response
    found again when it may have moved (it was given at or after ``moved_from``)."""
    session.flush()
    replies = list(session.scalars(
        select(Message.sent_at).where(Message.ticket_id == ticket.id, Message.direction == Direction.OUTBOUND.value,
                                      Message.is_auto.is_(False), Message.sent_at >= ticket.created_at)
        .order_by(Message.sent_at)
    ))  # fmt: skip
    ticket.agent_replies = len(replies)
    first = replies[0] if replies else None
    kept = ticket.first_responded_at is not None and ticket.first_responded_at < moved_from
    if not kept and first != ticket.first_responded_at:
        ticket.first_responded_at = ticket.first_response_minutes = None
        ticket.first_response_business_minutes = ticket.first_response_breached = None
        if first is not None:
            record_first_response(session, ticket, at=first, actor=actor)
    refresh_due_times(session, ticket)


@dataclass
class SplitThreads:
    """Of some tickets: the Gmail threads they share with another ticket, and their messages there."""

    shared: set[str] = field(default_factory=set)
    #: Ticket id → its Gmail message ids in a shared thread (and the shared threads it is in).
    messages: dict[int, list[str]] = field(default_factory=dict)
    threads: dict[int, list[str]] = field(default_factory=dict)


def split_messages(session: Session, mailbox_id: int, ticket_ids: list[int]) -> SplitThreads:
    """Which of the tickets' threads hold messages of another ticket too (one query; one more when
    some do): their labels are put message by message."""
    found = SplitThreads()
    if not ticket_ids:
        return found
    # A question from the help centre's form has no Gmail thread (""): it is in none.
    theirs = (
        select(Message.gmail_thread_id)
        .where(Message.ticket_id.in_(ticket_ids), Message.gmail_thread_id != "")
        .scalar_subquery()
    )
    found.shared = set(session.scalars(
        select(Message.gmail_thread_id).where(Message.mailbox_id == mailbox_id, Message.gmail_thread_id.in_(theirs),
                                              Message.ticket_id.is_not(None))
        .group_by(Message.gmail_thread_id).having(func.count(func.distinct(Message.ticket_id)) > 1)
    ))  # fmt: skip
    if found.shared:
        for ticket_id, gmail_id, thread in session.execute(
            select(Message.ticket_id, Message.gmail_id, Message.gmail_thread_id).where(
                Message.mailbox_id == mailbox_id, Message.gmail_thread_id.in_(found.shared),
                Message.ticket_id.in_(ticket_ids), Message.gmail_deleted.is_(False))
        ):  # fmt: skip
            assert ticket_id is not None
            found.messages.setdefault(ticket_id, []).append(gmail_id)
            if thread not in found.threads.setdefault(ticket_id, []):
                found.threads[ticket_id].append(thread)
    return found
