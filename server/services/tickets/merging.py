"""Merging ticket B into ticket A, and undoing it within a day.

A keeps every message of both (each with its Gmail thread), the notes, the union of tags, the earlier
creation time, the higher priority and the earlier first response, and its deadlines are computed
again from that. B becomes ``merged``: read-only, out of every queue, report and label list, with a
link to A; new mail in B's threads files into A (sync follows the link). What moved is recorded in
the ``merged`` Events, so :func:`unmerge` puts every message, note and tag back where it came from.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from rules.model import ACTIVE_STATUSES, PRIORITIES
from server.base.models import Event, Message, Note, Ticket, TicketStatus, TicketTag
from server.services.tickets.actions import (
    SYSTEM,
    Actor,
    record_event,
    refresh_due_times,
    set_status,
    want_labels,
)

#: How long a merge can be undone.
UNDO_WINDOW = timedelta(days=1)
#: The longest chain of merges followed to a survivor (a merged ticket merged again …).
MAX_HOPS = 20


class MergeError(ValueError):
    """A merge or unmerge that cannot be done; ``str(exc)`` says why, to a person."""


def survivor(session: Session, ticket: Ticket) -> Ticket:
    """The ticket a merged ticket lives on in (itself when it is not merged)."""
    seen = {ticket.id}
    while ticket.merged_into_id is not None and len(seen) <= MAX_HOPS:
        into = session.get(Ticket, ticket.merged_into_id)
        if into is None or into.id in seen:
            break
        seen.add(into.id)
        ticket = into
    return ticket


def merged_note(session: Session, ticket: Ticket) -> str:
    """Why a merged ticket cannot be changed, naming the ticket to work on instead."""
    into = survivor(session, ticket)
    return f"#{ticket.number} was merged into #{into.number}: work on #{into.number}"


def merge(session: Session, source: Ticket, target: Ticket, *, at: datetime, actor: Actor = SYSTEM) -> Ticket:
    """Merge ``source`` into ``target`` (followed to its survivor); returns the survivor."""
    if source.mailbox_id != target.mailbox_id:
        raise MergeError("only tickets of the same mailbox can be merged")
    if source.status == TicketStatus.MERGED.value:
        into = survivor(session, source)
        raise MergeError(f"#{source.number} is already merged into #{into.number}")
    target = survivor(session, target)
    if target.id == source.id:
        raise MergeError(f"#{source.number} cannot be merged into itself")
    session.flush()
    messages = list(session.scalars(select(Message.id).where(Message.ticket_id == source.id)))
    threads = sorted(
        {
            t
            for t in session.scalars(select(Message.gmail_thread_id).where(Message.ticket_id == source.id))
            if t
        }
        | ({source.gmail_thread_id} if source.gmail_thread_id else set())
    )
    notes = list(session.scalars(select(Note.id).where(Note.ticket_id == source.id)))
    had = {tag.name for tag in target.tags}
    added = sorted({tag.name for tag in source.tags} - had)
    before = {"created_at": target.created_at.isoformat(), "priority": target.priority,
              "first_responded_at": target.first_responded_at.isoformat() if target.first_responded_at else None}  # fmt: skip

    session.execute(update(Message).where(Message.id.in_(messages)).values(ticket_id=target.id)
                    )  # fmt: skip
    session.execute(update(Note).where(Note.id.in_(notes)).values(ticket_id=target.id)
                    )  # fmt: skip
    for name in added:
        target.tags.append(TicketTag(name=name))
    target.created_at = min(target.created_at, source.created_at)
    target.priority = max(target.priority, source.priority, key=PRIORITIES.index)
    answered = [t for t in (target.first_responded_at, source.first_responded_at) if t is not None]
    target.first_responded_at = min(answered) if answered else None
    target.merged_in = (target.merged_in or 0) + 1
    if source.status in ACTIVE_STATUSES and target.status not in ACTIVE_STATUSES:
        set_status(session, target, TicketStatus.OPEN, at=at, actor=actor, reason=f"merged #{source.number}")
    refresh_due_times(session, target)

    was = source.status
    source.status = TicketStatus.MERGED.value
    source.status_changed_at = source.merged_at = at
    source.merged_into_id = target.id
    source.due_at = source.first_response_due_at = source.resolution_due_at = source.remind_at = None
    source.snoozed_until = None
    record_event(session, source, "merged", actor=actor, at=at, before={"status": was},
                 after={"into": target.number, "ticket_id": target.id})  # fmt: skip
    record_event(session, target, "merged", actor=actor, at=at, before=before,
                 after={"merged": source.number, "ticket_id": source.id, "messages": messages,
                        "notes": notes, "tags_added": added, "threads": threads})  # fmt: skip
    want_labels(source)
    return target


def unmerge(session: Session, source: Ticket, *, at: datetime, actor: Actor = SYSTEM) -> Ticket:
    """Undo the merge of ``source`` (within :data:`UNDO_WINDOW`); returns ``source``, active again.

    Every message, note and tag goes back as the ``merged`` Event recorded it, and so does mail that
    came into the survivor through the source's threads since."""
    if source.status != TicketStatus.MERGED.value or source.merged_into_id is None:
        raise MergeError(f"#{source.number} is not merged")
    target = session.get(Ticket, source.merged_into_id)
    if target is None:
        raise MergeError(f"the ticket #{source.number} was merged into no longer exists")
    if target.status == TicketStatus.MERGED.value:
        raise MergeError(f"#{target.number} was merged too since: undo that merge first")
    if source.merged_at is None or at - source.merged_at > UNDO_WINDOW:
        raise MergeError(f"the merge of #{source.number} is more than a day old: it cannot be undone")
    record = _merge_record(session, target, source)
    moved: dict[str, Any] = record.after or {}
    back = or_(
        Message.id.in_(moved.get("messages") or []), Message.gmail_thread_id.in_(moved.get("threads") or [])
    )
    session.execute(update(Message).where(Message.ticket_id == target.id, back).values(ticket_id=source.id)
                    )  # fmt: skip
    session.execute(update(Note).where(Note.ticket_id == target.id, Note.id.in_(moved.get("notes") or []))
                    .values(ticket_id=source.id))  # fmt: skip
    added = set(moved.get("tags_added") or [])
    target.tags[:] = [tag for tag in target.tags if tag.name not in added]
    before: dict[str, Any] = record.before or {}
    target.created_at = datetime.fromisoformat(before["created_at"])
    if target.priority == max(before["priority"], source.priority, key=PRIORITIES.index):
        target.priority = before["priority"]  # unless someone changed it since
    first = before.get("first_responded_at")
    target.first_responded_at = datetime.fromisoformat(first) if first else None
    target.merged_in = max(0, (target.merged_in or 0) - 1)
    refresh_due_times(session, target)

    source.status = _status_before(session, source)
    source.status_changed_at = at
    source.merged_into_id = source.merged_at = None
    refresh_due_times(session, source)
    record_event(session, source, "unmerged", actor=actor, at=at, before={"into": target.number},
                 after={"status": source.status})  # fmt: skip
    record_event(session, target, "unmerged", actor=actor, at=at, before={"merged": source.number},
                 after={"ticket_id": source.id})  # fmt: skip
    return source


def merged_threads(session: Session, survivors: list[int]) -> dict[int, list[str]]:
    """The own Gmail threads of the tickets merged into each of ``survivors``, through chains too (a
    ticket merged into one that was merged again later lives on in the last): one query per link of
    the longest chain, one when nothing was merged twice."""
    found: dict[int, list[str]] = {}
    owner = {ticket_id: ticket_id for ticket_id in survivors}  # ticket -> the survivor it lives on in
    frontier = list(survivors)
    for _ in range(MAX_HOPS):
        if not frontier:
            break
        rows = session.execute(
            select(Ticket.id, Ticket.merged_into_id, Ticket.gmail_thread_id, Ticket.merged_in).where(
                Ticket.merged_into_id.in_(frontier)
            )
        ).all()
        frontier = []
        for ticket_id, into, thread, absorbed in rows:
            if ticket_id in owner or into not in owner:  # a cycle: already placed
                continue
            owner[ticket_id] = owner[into]
            if absorbed:  # it had tickets merged into it before it was merged itself
                frontier.append(ticket_id)
            if thread:
                found.setdefault(owner[into], []).append(thread)
    return found


def _merge_record(session: Session, target: Ticket, source: Ticket) -> Event:
    for event in session.scalars(
        select(Event).where(Event.ticket_id == target.id, Event.kind == "merged").order_by(Event.id.desc())
    ):
        if (event.after or {}).get("ticket_id") == source.id:
            return event
    raise MergeError(f"no record of what moved when #{source.number} was merged")


def _status_before(session: Session, source: Ticket) -> str:
    event = session.scalar(
        select(Event)
        .where(Event.ticket_id == source.id, Event.kind == "merged")
        .order_by(Event.id.desc())
        .limit(1)
    )
    status = (event.before or {}).get("status") if event is not None else None
    return (
        status
        if status in {s.value for s in TicketStatus} - {TicketStatus.MERGED.value}
        else TicketStatus.OPEN.value
    )


def candidates(session: Session, ticket: Ticket, *, now: datetime, limit: int = 10) -> list[Ticket]:
    """Tickets ``ticket`` could be merged into: the customer's other open tickets, then tickets with a
    similar subject from the last 30 days (newest first)."""
    same_customer = (
        list(session.scalars(
            select(Ticket).where(Ticket.mailbox_id == ticket.mailbox_id, Ticket.customer_id == ticket.customer_id,
                                 Ticket.id != ticket.id, Ticket.status.in_(ACTIVE_STATUSES))
            .order_by(Ticket.created_at.desc()).limit(limit)
        ))
        if ticket.customer_id is not None
        else []
    )  # fmt: skip
    words = _subject_words(ticket.subject)
    found = {t.id for t in same_customer}
    similar: list[Ticket] = []
    if words:
        recent = session.scalars(
            select(Ticket).where(Ticket.mailbox_id == ticket.mailbox_id, Ticket.id != ticket.id,
                                 Ticket.status != TicketStatus.MERGED.value,
                                 Ticket.created_at >= now - timedelta(days=30))
            .order_by(Ticket.created_at.desc()).limit(200)
        )  # fmt: skip
        for other in recent:
            if other.id not in found and len(words & _subject_words(other.subject)) * 2 >= len(words):
                similar.append(other)
    return (same_customer + similar)[:limit]


def _subject_words(subject: str) -> set[str]:
    text = subject.lower()
    for prefix in ("re:", "fwd:", "fw:", "отв:", "ответ:", "пересл:"):
        text = text.replace(prefix, " ")
    return {word for word in "".join(c if c.isalnum() else " " for c in text).split() if len(word) > 2}
