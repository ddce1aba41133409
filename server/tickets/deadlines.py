"""Watching deadlines: a passed first-response or resolution due time becomes an Event, once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import Event, Ticket, TicketStatus
from server.tickets.actions import record_event

ACTIVE = (TicketStatus.OPEN.value, TicketStatus.PENDING.value, TicketStatus.ON_HOLD.value)


def record_breaches(session: Session, *, now: datetime) -> int:
    """Record each deadline that has passed (``due_at`` index: reads only tickets that are due)."""
    due = session.scalars(
        select(Ticket).where(Ticket.due_at <= now, Ticket.status.in_(ACTIVE)).order_by(Ticket.due_at)
    )
    recorded = 0
    for ticket in due:
        seen = {
            (event.after or {}).get("due_at")
            for event in session.scalars(
                select(Event).where(Event.ticket_id == ticket.id, Event.kind == "sla_breached")
            )
        }
        passed = [
            (kind, deadline)
            for kind, deadline in (
                (
                    "first_response",
                    ticket.first_response_due_at if ticket.first_responded_at is None else None,
                ),
                ("resolution", ticket.resolution_due_at),
            )
            if deadline is not None and deadline <= now
        ]
        for kind, deadline in passed:
            if deadline.isoformat() not in seen:
                record_event(
                    session,
                    ticket,
                    "sla_breached",
                    after={"deadline": kind, "due_at": deadline.isoformat()},
                    at=deadline,
                )
                recorded += 1
    session.commit()
    return recorded
