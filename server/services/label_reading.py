"""Label changes someone made in Gmail, read back as ticket actions (the other half of
:mod:`server.services.labels`, which puts each ticket's labels on its messages)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from rules.model import ACTIVE_STATUSES
from server.base.models import ActorKind, Agent, GmailLabel, Mailbox, Message, Priority, Ticket, TicketStatus
from server.gmail.sync import LabelChange
from server.services import tickets
from server.services.mailbox_settings import label_settings
from server.services.tickets import Actor, record_event

IN_GMAIL = Actor(ActorKind.SYSTEM)
STATUS_OF_KEY = {f"status:{s}": TicketStatus(s) for s in ("open", "pending", "on_hold", "solved")}


def read_back(session: Session, mailbox: Mailbox, changes: list[LabelChange]) -> None:
    """Apply the label changes someone made in Gmail as the add-on's actions would, inside the sync's
    transaction. Our own changes never come back: label history up to the historyId Gmail gave for
    our last change of the thread is ours (or someone's that our change, made for a newer ticket
    state, overwrote). A change on a ticket that changed since its labels were last put (a label
    request still waiting) loses to that newer change, with an Event saying so.

    Gmail's history does not say who changed a label (a shared mailbox's delegates all act as it), so
    the actions are recorded as done in Gmail (``changed_in_gmail`` Events) by the system."""
    config = label_settings(mailbox)
    if not config["enabled"] or not changes:
        return
    keys = {
        row.gmail_id: row.key
        for row in session.scalars(select(GmailLabel).where(GmailLabel.mailbox_id == mailbox.id))
    }
    owners = _owners(session, mailbox.id, [change.message_id for change in changes])
    by_thread: dict[str, Ticket | None] = {}
    waiting_before: dict[int, bool] = {}
    ignored: set[tuple[int, str, str]] = set()
    now = datetime.now(UTC)
    for change in changes:
        ours = (
            [(x, keys[x]) for x in change.added if x in keys],
            [(x, keys[x]) for x in change.removed if x in keys],
        )
        archived = "INBOX" in change.removed and config["archive_on_solve"]
        if not ours[0] and not ours[1] and not archived:
            continue
        ticket = owners.get(change.message_id)  # a thread split in two has two tickets: the message's
        if ticket is None:
            if change.thread_id not in by_thread:
                by_thread[change.thread_id] = session.scalar(
                    select(Ticket).where(
                        Ticket.mailbox_id == mailbox.id, Ticket.gmail_thread_id == change.thread_id
                    )
                )
            ticket = by_thread[change.thread_id]
        if ticket is None or ticket.status == TicketStatus.MERGED.value:  # a merged ticket carries none
            continue
        if change.history_id <= (ticket.labels_history_id or 0):
            continue  # ours, or someone's that our later change (for a newer ticket state) overwrote
        if ticket.id not in waiting_before:
            waiting_before[ticket.id] = ticket.labels_wanted_at is not None
        gmail_side = [("added", key) for _id, key in ours[0]] + [("removed", key) for _id, key in ours[1]]
        if archived and ticket.status in ACTIVE_STATUSES:
            gmail_side.append(("removed", "inbox"))
        if not gmail_side:
            continue
        if waiting_before[ticket.id]:  # the ticket changed since its labels were put: that change wins
            for how, key in gmail_side:
                if (ticket.id, how, key) not in ignored:  # once per change, not per message of the thread
                    ignored.add((ticket.id, how, key))
                    record_event(session, ticket, "gmail_label_ignored", at=now,
                                 after={how: key, "why": "the ticket changed since its labels were put"})  # fmt: skip
            continue
        for how, key in gmail_side:
            if (_added if how == "added" else _removed)(session, ticket, key, now):
                record_event(
                    session, ticket, "changed_in_gmail", after={how: key, "by": "someone in Gmail"}, at=now
                )
            else:  # nothing to do (already so, or Postdesk's to say): the thread gets the ticket's labels back
                tickets.want_labels(ticket)


def _added(session: Session, ticket: Ticket, key: str, now: datetime) -> bool:
    """The action a label put on in Gmail stands for; True when the ticket changed."""
    before = (ticket.status, ticket.assignee_id, ticket.priority)
    if key in STATUS_OF_KEY:
        tickets.set_status(
            session, ticket, STATUS_OF_KEY[key], at=now, actor=IN_GMAIL, reason="label in Gmail"
        )
    elif key.startswith("agent:"):
        agent = session.get(Agent, int(key.removeprefix("agent:")))
        if agent is not None and agent.active:
            tickets.assign(session, ticket, agent.id, at=now, actor=IN_GMAIL)
    elif key == "unassigned":
        tickets.assign(session, ticket, None, at=now, actor=IN_GMAIL)
    elif key == "urgent":
        tickets.set_priority(session, ticket, Priority.URGENT, at=now, actor=IN_GMAIL)
    # overdue, snoozed: Postdesk's to say
    return before != (ticket.status, ticket.assignee_id, ticket.priority)


def _removed(session: Session, ticket: Ticket, key: str, now: datetime) -> bool:
    """The action a label taken off in Gmail stands for; True when the ticket changed."""
    before = (ticket.status, ticket.assignee_id, ticket.priority)
    if key.startswith("agent:") and ticket.assignee_id == int(key.removeprefix("agent:")):
        tickets.assign(session, ticket, None, at=now, actor=IN_GMAIL)
    elif key == "urgent" and ticket.priority == Priority.URGENT.value:
        tickets.set_priority(session, ticket, Priority.NORMAL, at=now, actor=IN_GMAIL)
    elif key == "inbox":
        tickets.set_status(
            session, ticket, TicketStatus.SOLVED, at=now, actor=IN_GMAIL, reason="archived in Gmail"
        )
    # a status label taken off leaves the status: read_back puts the label back
    return before != (ticket.status, ticket.assignee_id, ticket.priority)


def _owners(session: Session, mailbox_id: int, gmail_ids: Iterable[str]) -> dict[str, Ticket]:
    """The ticket each stored message belongs to, by Gmail id (a query per 500)."""
    found: dict[str, Ticket] = {}
    unique = list(dict.fromkeys(gmail_ids))
    for start in range(0, len(unique), 500):
        rows = select(Message.gmail_id, Ticket).join(Ticket, Ticket.id == Message.ticket_id)
        chunk = rows.where(
            Message.mailbox_id == mailbox_id, Message.gmail_id.in_(unique[start : start + 500])
        )
        found.update((gmail_id, ticket) for gmail_id, ticket in session.execute(chunk))
    return found
