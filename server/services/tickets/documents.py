"""A ticket as a JSON document: the REST API's answer and every webhook's ``ticket`` are this one shape."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.strategy_options import _AbstractLoad

from server.base.models import Agent, Customer, Ticket


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def agent_reference(agent: Agent | None) -> dict[str, Any] | None:
    return None if agent is None else {"id": agent.id, "email": agent.email, "name": agent.name}


def customer_reference(customer: Customer | None) -> dict[str, Any] | None:
    return None if customer is None else {"id": customer.id, "email": customer.email, "name": customer.name}


#: What :func:`ticket_document` reads, loaded with the ticket (a few queries for a whole page).
DOCUMENT_LOADS: tuple[_AbstractLoad, ...] = (
    joinedload(Ticket.assignee),
    joinedload(Ticket.customer),
    selectinload(Ticket.tags),
)


def ticket_document(ticket: Ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "mailbox_id": ticket.mailbox_id,
        "number": ticket.number,
        "subject": ticket.subject,
        "status": ticket.status,
        "priority": ticket.priority,
        "assignee": agent_reference(ticket.assignee),
        "customer": customer_reference(ticket.customer),
        "tags": sorted(tag.name for tag in ticket.tags),
        "due_at": _when(ticket.due_at),
        "first_response_due_at": _when(ticket.first_response_due_at),
        "resolution_due_at": _when(ticket.resolution_due_at),
        "first_responded_at": _when(ticket.first_responded_at),
        "solved_at": _when(ticket.solved_at),
        "snoozed_until": _when(ticket.snoozed_until),
        "created_at": _when(ticket.created_at),
        "updated_at": _when(ticket.updated_at),
        "merged_into": ticket.merged_into_id,
    }
