"""Merging and splitting tickets as every face does them: the change itself
(:mod:`server.services.tickets`) and the rules it fires, in the caller's transaction.

A merge fires ``ticket_merged`` on the ticket that survives; a split runs the new-ticket rules
(``ticket_created``) on the new ticket with the message it starts from, its acknowledgement held back
unless the mailbox's ``acknowledge_splits`` asks for it (server.services.action_kinds says why in an
``auto_reply_suppressed`` Event).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from rules import Trigger
from server.base.models import Message, Ticket
from server.gmail.sync import TicketEvent
from server.services import tickets
from server.services.automation import parsed_from_row, run_rules_on_events
from server.services.tickets import SYSTEM, Actor


def merge_tickets(
    session: Session, source: Ticket, target: Ticket, *, at: datetime, actor: Actor = SYSTEM
) -> Ticket:
    """Merge ``source`` into ``target`` and run the ``ticket_merged`` rules on the survivor."""
    survivor = tickets.merge(session, source, target, at=at, actor=actor)
    session.flush()
    run_rules_on_events(
        session, survivor.mailbox, [TicketEvent(Trigger.TICKET_MERGED, survivor.id, None, at)]
    )
    return survivor


def split_ticket(
    session: Session, ticket: Ticket, message: Message, *, at: datetime, actor: Actor = SYSTEM
) -> Ticket:
    """Split ``message`` and the later ones of its thread off ``ticket``; the new ticket's rules run."""
    new = tickets.split(session, ticket, message, at=at, actor=actor)
    session.flush()
    event = TicketEvent(Trigger.TICKET_CREATED, new.id, parsed_from_row(message), message.sent_at, row=message,
                        split_from=ticket.number)  # fmt: skip
    run_rules_on_events(session, ticket.mailbox, [event])
    return new
