"""What can happen to a ticket, each with its audit event (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from server.models import (
    ActorKind,
    Customer,
    Event,
    Mailbox,
    Note,
    Priority,
    SlaPolicy,
    Ticket,
    TicketStatus,
    TicketTag,
)
from server.sla import CalendarError, calendar_for_mailbox, due_times


@dataclass(frozen=True)
class Actor:
    """Who makes a change: an agent, a rule, or the system (sync, scheduler)."""

    kind: ActorKind
    agent_id: int | None = None
    rule_id: int | None = None


SYSTEM = Actor(ActorKind.SYSTEM)
CLOSED_STATUSES = frozenset({TicketStatus.SOLVED.value, TicketStatus.CLOSED.value})


def record_event(
    session: Session,
    ticket: Ticket | None,
    kind: str,
    *,
    actor: Actor = SYSTEM,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    mailbox_id: int | None = None,
    at: datetime | None = None,
) -> Event:
    event = Event(
        mailbox_id=mailbox_id if mailbox_id is not None else (ticket.mailbox_id if ticket else None),
        ticket_id=ticket.id if ticket else None,
        actor_kind=actor.kind.value,
        actor_agent_id=actor.agent_id,
        actor_rule_id=actor.rule_id,
        kind=kind,
        before=before,
        after=after,
    )
    if at is not None:
        event.created_at = at
    session.add(event)
    return event


def _next_number(session: Session, mailbox_id: int) -> int:
    """Take the mailbox's next ticket number atomically (safe across processes)."""
    statement = (
        update(Mailbox)
        .where(Mailbox.id == mailbox_id)
        .values(next_ticket_number=Mailbox.next_ticket_number + 1)
        .returning(Mailbox.next_ticket_number)
    )
    return int(session.execute(statement).scalar_one()) - 1


def open_ticket(
    session: Session,
    mailbox_id: int,
    *,
    subject: str,
    customer: Customer | None,
    gmail_thread_id: str | None,
    created_at: datetime,
    actor: Actor = SYSTEM,
) -> Ticket:
    """A new open ticket with the mailbox's next number."""
    ticket = Ticket(
        mailbox_id=mailbox_id,
        number=_next_number(session, mailbox_id),
        subject=subject,
        customer=customer,
        gmail_thread_id=gmail_thread_id,
        status=TicketStatus.OPEN.value,
        created_at=created_at,
        updated_at=created_at,
    )
    session.add(ticket)
    session.flush()
    refresh_due_times(session, ticket)
    record_event(
        session,
        ticket,
        "ticket_created",
        actor=actor,
        after={"number": ticket.number, "subject": subject, "customer": customer.email if customer else None},
        at=created_at,
    )
    return ticket


def reopen(session: Session, ticket: Ticket, *, reason: str, at: datetime, actor: Actor = SYSTEM) -> None:
    """Back to ``open`` from solved/closed (a customer wrote again)."""
    if ticket.status not in CLOSED_STATUSES:
        return
    before = ticket.status
    ticket.status = TicketStatus.OPEN.value
    ticket.solved_at = None
    touch(ticket, at)
    record_event(
        session,
        ticket,
        "status_changed",
        actor=actor,
        before={"status": before},
        after={"status": "open", "reason": reason},
        at=at,
    )


def set_status(
    session: Session, ticket: Ticket, status: TicketStatus, *, at: datetime, actor: Actor = SYSTEM
) -> None:
    """Change the status; solving stamps ``solved_at``, leaving solved/closed clears it."""
    if ticket.status == status.value:
        return
    before = ticket.status
    ticket.status = status.value
    if status.value in CLOSED_STATUSES:
        ticket.solved_at = ticket.solved_at if before in CLOSED_STATUSES else at
    else:
        ticket.solved_at = None
    touch(ticket, at)
    record_event(
        session,
        ticket,
        "status_changed",
        actor=actor,
        before={"status": before},
        after={"status": status.value},
        at=at,
    )


def record_first_response(session: Session, ticket: Ticket, *, at: datetime, actor: Actor = SYSTEM) -> None:
    """The first agent reply: sets ``first_responded_at`` once."""
    if ticket.first_responded_at is not None:
        return
    ticket.first_responded_at = at
    ticket.due_at = ticket.resolution_due_at  # the next deadline is the resolution
    touch(ticket, at)
    record_event(session, ticket, "first_response", actor=actor, after={"at": at.isoformat()}, at=at)


def touch(ticket: Ticket, at: datetime) -> None:
    """Move ``updated_at`` forward (never back: mail can be synced out of order)."""
    if ticket.updated_at is None or at > ticket.updated_at:
        ticket.updated_at = at


def _change(
    session: Session,
    ticket: Ticket,
    column: str,
    value: Any,
    kind: str,
    key: str,
    *,
    at: datetime,
    actor: Actor,
) -> bool:
    """Set one column and write its Event (before/after under ``key``); False when nothing changes."""
    before = getattr(ticket, column)
    if before == value:
        return False
    setattr(ticket, column, value)
    touch(ticket, at)
    record_event(session, ticket, kind, actor=actor, before={key: before}, after={key: value}, at=at)
    return True


def assign(
    session: Session, ticket: Ticket, agent_id: int | None, *, at: datetime, actor: Actor = SYSTEM
) -> None:
    """Give the ticket to an agent (``None``: unassign)."""
    _change(session, ticket, "assignee_id", agent_id, "assigned", "agent_id", at=at, actor=actor)


def set_priority(
    session: Session, ticket: Ticket, priority: Priority, *, at: datetime, actor: Actor = SYSTEM
) -> None:
    """Change the priority; the due times follow it."""
    if _change(
        session, ticket, "priority", priority.value, "priority_changed", "priority", at=at, actor=actor
    ):
        refresh_due_times(session, ticket)


def add_tag(session: Session, ticket: Ticket, name: str, *, at: datetime, actor: Actor = SYSTEM) -> None:
    name = name.strip()[:100]
    if not name or name in {tag.name for tag in ticket.tags}:
        return
    ticket.tags.append(TicketTag(name=name))
    touch(ticket, at)
    record_event(session, ticket, "tag_added", actor=actor, after={"tag": name}, at=at)


def remove_tag(session: Session, ticket: Ticket, name: str, *, at: datetime, actor: Actor = SYSTEM) -> None:
    kept = [tag for tag in ticket.tags if tag.name != name.strip()]
    if len(kept) == len(ticket.tags):
        return
    ticket.tags = kept
    touch(ticket, at)
    record_event(session, ticket, "tag_removed", actor=actor, before={"tag": name.strip()}, at=at)


def set_sla_policy(
    session: Session, ticket: Ticket, policy: SlaPolicy | None, *, at: datetime, actor: Actor = SYSTEM
) -> None:
    policy_id = policy.id if policy else None
    _change(
        session, ticket, "sla_policy_id", policy_id, "sla_policy_changed", "policy_id", at=at, actor=actor
    )


def add_note(
    session: Session,
    ticket: Ticket,
    body: str,
    *,
    at: datetime,
    author_id: int | None = None,
    actor: Actor = SYSTEM,
) -> Note:
    """An internal note (never sent to the customer)."""
    note = Note(ticket_id=ticket.id, author_id=author_id, body=body, created_at=at)
    session.add(note)
    touch(ticket, at)
    record_event(session, ticket, "note_added", actor=actor, after={"body": body[:200]}, at=at)
    return note


def refresh_due_times(session: Session, ticket: Ticket) -> None:
    """First-response and resolution due times from the mailbox calendar and the ticket's priority."""
    mailbox = session.get(Mailbox, ticket.mailbox_id)
    try:
        calendar = calendar_for_mailbox(mailbox.settings if mailbox else None)
        first_response, resolution = due_times(calendar, ticket.created_at, ticket.priority)
    except CalendarError:
        return
    ticket.first_response_due_at = (
        first_response if ticket.first_responded_at is None else ticket.first_response_due_at
    )
    ticket.resolution_due_at = resolution
    pending = [
        d
        for d in (ticket.first_response_due_at if ticket.first_responded_at is None else None, resolution)
        if d
    ]
    ticket.due_at = min(pending) if pending else None
