"""Reading tickets for people and scripts: plain dicts shaped for JSON (the CLI, later the API)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from server.base.models import Agent, Customer, Mailbox, Message, Ticket
from server.gmail.mime import split_reply


class TicketNotFound(LookupError):
    """No ticket with that number in that mailbox."""


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def list_tickets(
    session: Session, *, mailbox: str | None = None, status: str | None = None, number: int | None = None
) -> list[dict[str, Any]]:
    """Tickets newest first, with their customer, assignee and message count."""
    counts = select(Message.ticket_id, func.count().label("messages")).group_by(Message.ticket_id).subquery()
    query = (
        select(Ticket, Mailbox.address, Customer.email, Agent.email, counts.c.messages)
        .join(Mailbox, Ticket.mailbox_id == Mailbox.id)
        .outerjoin(Customer, Ticket.customer_id == Customer.id)
        .outerjoin(Agent, Ticket.assignee_id == Agent.id)
        .outerjoin(counts, counts.c.ticket_id == Ticket.id)
        .order_by(Mailbox.address, Ticket.number.desc())
        .options(selectinload(Ticket.tags))
    )
    if mailbox:
        query = query.where(Mailbox.address == mailbox.strip().lower())
    if status:
        query = query.where(Ticket.status == status)
    if number is not None:
        query = query.where(Ticket.number == number)
    return [
        {
            "number": ticket.number,
            "mailbox": address,
            "subject": ticket.subject,
            "status": ticket.status,
            "priority": ticket.priority,
            "assignee": assignee,
            "customer": customer,
            "customer_email": customer,
            "tags": [tag.name for tag in ticket.tags],
            "message_count": messages or 0,
            "due_at": _iso(ticket.due_at),
            "first_responded_at": _iso(ticket.first_responded_at),
            "created_at": _iso(ticket.created_at),
            "updated_at": _iso(ticket.updated_at),
        }
        for ticket, address, customer, assignee, messages in session.execute(query)
    ]


def ticket_detail(session: Session, number: int, mailbox: str) -> dict[str, Any]:
    """One ticket with its messages, oldest first."""
    matches = list_tickets(session, mailbox=mailbox, number=number)
    if not matches:
        raise TicketNotFound(f"no ticket #{number} in mailbox {mailbox}")
    detail = matches[0]
    ticket_id = session.scalar(
        select(Ticket.id)
        .join(Mailbox)
        .where(Mailbox.address == mailbox.strip().lower(), Ticket.number == number)
    )
    messages = session.scalars(
        select(Message).where(Message.ticket_id == ticket_id).order_by(Message.sent_at, Message.id)
    )
    detail["messages"] = [
        {
            "direction": m.direction,
            "from": m.from_email,
            "from_name": m.from_name,
            "to": m.to,
            "subject": m.subject,
            "sent_at": _iso(m.sent_at),
            "text": m.text,
            "new_text": split_reply(m.text)[0],
            "attachments": m.attachments,
            "is_auto": m.is_auto,
            "trashed": m.trashed,
            "deleted_in_gmail": m.gmail_deleted,
            "problems": [p.get("kind") for p in m.parse_problems],
            "gmail_id": m.gmail_id,
        }
        for m in messages
    ]
    return detail
