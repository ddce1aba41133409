"""Assign to responder (the mailbox setting ``assign_to_responder``): an unassigned ticket an agent
answers from Gmail becomes theirs when sync files the reply (docs/configuration.md)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

import rules as rule_engine
from server.base.models import ActorKind, Agent, Mailbox, Ticket, mailbox_members
from server.gmail.sync import TicketEvent
from server.services import tickets
from server.services.mailbox_settings import setting
from server.services.tickets import Actor


def responders_of(session: Session, mailbox: Mailbox, events: list[TicketEvent]) -> dict[str, int]:
    """With ``assign_to_responder`` on and an agent's reply in the page: the active members of the
    mailbox by address (one query; none when the setting is off or no agent replied)."""
    replied = any(e.trigger is rule_engine.Trigger.AGENT_REPLIED for e in events)
    if not replied or not setting(mailbox, "assign_to_responder"):
        return {}
    rows = session.execute(
        select(Agent.email, Agent.id)
        .join(mailbox_members, mailbox_members.c.agent_id == Agent.id)
        .where(mailbox_members.c.mailbox_id == mailbox.id, Agent.active.is_(True))
    )
    return {email.lower(): agent_id for email, agent_id in rows}


def assign_to_responder(session: Session, event: TicketEvent, responders: Mapping[str, int]) -> None:
    """An unassigned ticket an agent answered from Gmail becomes theirs (an assignment with its
    Event, the agent as its actor). An assigned ticket keeps its assignee; a reply sent as the shared
    address names nobody, so it assigns nobody."""
    message = event.message
    if event.trigger is not rule_engine.Trigger.AGENT_REPLIED or message is None or message.sender is None:
        return
    agent_id = responders.get(message.sender.email.lower())
    ticket = session.get(Ticket, event.ticket_id)
    if agent_id is None or ticket is None or ticket.assignee_id is not None:
        return
    at = event.at or datetime.now(UTC)
    tickets.assign(session, ticket, agent_id, at=at, actor=Actor(ActorKind.AGENT, agent_id))
