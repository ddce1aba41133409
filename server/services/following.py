"""Following a ticket: a follower gets the mail its assignee gets (the ``assignee`` of a rule's
``notify``: customer replies, status changes …), if they want it (their ``following`` choice)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from server.base.db import upsert
from server.base.models import Agent, Ticket, TicketFollower


def follow(session: Session, ticket: Ticket, agent: Agent, *, at: datetime) -> None:
    """``agent`` follows ``ticket`` (again: nothing changes)."""
    upsert(
        session, TicketFollower.__table__, {"ticket_id": ticket.id, "agent_id": agent.id}, {"created_at": at}
    )


def unfollow(session: Session, ticket: Ticket, agent: Agent) -> None:
    session.execute(delete(TicketFollower).where(TicketFollower.ticket_id == ticket.id,
                                                 TicketFollower.agent_id == agent.id))  # fmt: skip


def followers(session: Session, ticket: Ticket) -> list[Agent]:
    return list(session.scalars(
        select(Agent).join(TicketFollower, TicketFollower.agent_id == Agent.id)
        .where(TicketFollower.ticket_id == ticket.id).order_by(Agent.name, Agent.email)
    ))  # fmt: skip


def watchers(session: Session, ticket: Ticket) -> list[str]:
    """Whom "the assignee" of a notification reaches: the assignee, and the active followers who
    want mail about the tickets they follow."""
    found = [ticket.assignee.email] if ticket.assignee is not None else []
    if ticket.id is not None:
        found += [a.email for a in followers(session, ticket) if a.active and a.wants("following")]
    return list(dict.fromkeys(found))
