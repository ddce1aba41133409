"""``/api/v1/tickets``: list (filters, sort, cursor pages), read, change, note, reply.

Changes go through the same action handlers as the add-on's buttons (:mod:`server.services.action_kinds`), as the
token's owner. ``ETag`` is a hash of the ticket's document; ``If-Match`` with another one gets 412 and
changes nothing (checked and changed under the ticket's row lock).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from flask import request
from spectree import Response as Answers
from sqlalchemy import exists, false, select, tuple_
from sqlalchemy.orm import Session

from rules import ActionKind
from server.base.db import get_session
from server.base.models import ActorKind, Agent, Event, Message, Note, Template, Ticket, TicketTag
from server.faces.api.auth import caller, chosen_mailboxes, needs, readable_mailboxes, writable_mailboxes
from server.faces.api.base import bp, tree
from server.faces.api.schemas import (
    MAX_ID,
    NoteCreated,
    NoteIn,
    ReplyIn,
    ReplyQueued,
    TicketChange,
    TicketDetail,
    TicketFilter,
    TicketPage,
)
from server.faces.errors import problem_response
from server.services import action_kinds, mentions, tickets
from server.services.api_tokens import Scope
from server.services.templating import TemplateError
from server.services.tickets.actions import MAX_SNOOZE
from server.services.tickets.documents import DOCUMENT_LOADS, agent_reference, ticket_document

TAGS = ["tickets"]
SORTS = {
    "-updated_at": (Ticket.updated_at, True),
    "updated_at": (Ticket.updated_at, False),
    "-created_at": (Ticket.created_at, True),
    "created_at": (Ticket.created_at, False),
}
#: The most messages, notes and events a ticket's document carries (the newest).
MAX_DETAIL = 500


class Problem(Exception):
    """An answer other than the happy one, raised from deep in a view."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def problem_answer(exc: Problem) -> Any:
    return problem_response(exc.status, exc.title, exc.detail)


def etag_of(ticket: Ticket) -> str:
    document = json.dumps(ticket_document(ticket), sort_keys=True, default=str)
    return '"' + hashlib.sha256(document.encode()).hexdigest()[:32] + '"'


def _encode_cursor(sort: str, value: datetime, ticket_id: int) -> str:
    raw = json.dumps([sort, value.isoformat(), ticket_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, value, ticket_id = json.loads(raw)
        moment = datetime.fromisoformat(value)
        if name != sort or type(ticket_id) is not int or moment.tzinfo is None:
            raise ValueError(name)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise Problem(400, "Bad Request", "cursor: not a cursor of this list and sort") from exc
    return moment.astimezone(UTC), ticket_id


def visible_ticket(session: Session, ticket_id: int, *, write: bool = False, lock: bool = False) -> Ticket:
    """The ticket, if the caller may read (or change) it; 404 otherwise (its existence stays hidden)."""
    who = caller()
    allowed = writable_mailboxes(session, who) if write else readable_mailboxes(session, who)
    query = select(Ticket).options(*DOCUMENT_LOADS).where(Ticket.id == ticket_id)
    if lock:
        query = query.with_for_update(of=Ticket)
    ticket = session.scalar(query) if 0 < ticket_id < 2**31 else None
    if ticket is None or ticket.mailbox_id not in allowed:
        if ticket is not None and write and ticket.mailbox_id in readable_mailboxes(session, who):
            raise Problem(403, "Forbidden", "You read this mailbox but do not work in it.")
        raise Problem(404, "Not Found", "No such ticket.")
    return ticket


@bp.get("/tickets")
@needs(Scope.TICKETS_READ)
@tree.validate(resp=Answers(HTTP_200=TicketPage), tags=TAGS)
def list_tickets(query: TicketFilter) -> Any:
    """List tickets, newest change first by default, a page at a time."""
    session = get_session()
    mailboxes = chosen_mailboxes(session, caller(), query.mailbox)
    column, descending = SORTS[query.sort]
    statement = select(Ticket).options(*DOCUMENT_LOADS).where(Ticket.mailbox_id.in_(mailboxes))
    if query.status:
        statement = statement.where(Ticket.status.in_([s.value for s in query.status]))
    if query.priority:
        statement = statement.where(Ticket.priority.in_([p.value for p in query.priority]))
    if query.assignee == "none":
        statement = statement.where(Ticket.assignee_id.is_(None))
    elif query.assignee is not None:
        # An id no row can have finds nothing (PostgreSQL's integer ends at 2**31: no overflow error).
        assignee = int(query.assignee)
        statement = statement.where(Ticket.assignee_id == assignee if assignee <= MAX_ID else false())
    if query.tag is not None:
        statement = statement.where(
            exists().where(TicketTag.ticket_id == Ticket.id, TicketTag.name == query.tag.strip())
        )
    if query.due_before is not None:
        statement = statement.where(Ticket.due_at < query.due_before.astimezone(UTC))
    if query.due_after is not None:
        statement = statement.where(Ticket.due_at >= query.due_after.astimezone(UTC))
    if query.updated_since is not None:
        statement = statement.where(Ticket.updated_at >= query.updated_since.astimezone(UTC))
    if query.customer is not None:
        statement = statement.where(Ticket.customer_id == query.customer)
    if query.cursor:
        try:
            value, last_id = _decode_cursor(query.cursor, query.sort)
        except Problem as exc:
            return problem_answer(exc)
        key = tuple_(column, Ticket.id)
        statement = statement.where(key < (value, last_id) if descending else key > (value, last_id))
    order = (column.desc(), Ticket.id.desc()) if descending else (column.asc(), Ticket.id.asc())
    found = list(session.scalars(statement.order_by(*order).limit(query.limit + 1)).unique())
    page, more = found[: query.limit], len(found) > query.limit
    last = page[-1] if page else None
    cursor = _encode_cursor(query.sort, getattr(last, column.key), last.id) if more and last else None
    return TicketPage.model_validate({"items": [ticket_document(t) for t in page], "next_cursor": cursor})


def ticket_detail(session: Session, ticket: Ticket) -> dict[str, Any]:
    messages = session.scalars(
        select(Message).where(Message.ticket_id == ticket.id).order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(MAX_DETAIL)
    ).all()  # fmt: skip
    notes = session.scalars(
        select(Note).where(Note.ticket_id == ticket.id).order_by(Note.id.desc()).limit(MAX_DETAIL)
    ).all()
    authors = {
        a.id: a for a in session.scalars(select(Agent).where(Agent.id.in_({n.author_id for n in notes})))
    }
    events = session.scalars(
        select(Event).where(Event.ticket_id == ticket.id).order_by(Event.id.desc()).limit(MAX_DETAIL)
    ).all()
    return ticket_document(ticket) | {
        "messages": [
            {
                "id": m.id,
                "direction": m.direction,
                "from_email": m.from_email,
                "from_name": m.from_name,
                "to": m.to,
                "cc": m.cc,
                "subject": m.subject,
                "sent_at": m.sent_at,
                "text": m.text,
                "is_automatic": m.is_auto,
                "attachments": [a for a in m.attachments if isinstance(a, dict)],
            }
            for m in reversed(messages)
        ],
        "notes": [
            {
                "id": n.id,
                "author": agent_reference(authors.get(n.author_id or 0)),
                "body": n.body,
                "created_at": n.created_at,
            }
            for n in reversed(notes)
        ],
        "events": [
            {
                "id": e.id,
                "kind": e.kind,
                "actor": e.actor_kind,
                "actor_agent_id": e.actor_agent_id,
                "before": e.before,
                "after": e.after,
                "created_at": e.created_at,
            }
            for e in reversed(events)
        ],
    }


@bp.get("/tickets/<int:ticket_id>")
@needs(Scope.TICKETS_READ)
@tree.validate(resp=Answers(HTTP_200=TicketDetail), tags=TAGS)
def get_ticket(ticket_id: int) -> Any:
    """One ticket with its messages, internal notes and audit events (oldest first)."""
    session = get_session()
    try:
        ticket = visible_ticket(session, ticket_id)
    except Problem as exc:
        return problem_answer(exc)
    return TicketDetail.model_validate(ticket_detail(session, ticket)), 200, {"ETag": etag_of(ticket)}


def _apply(session: Session, ticket: Ticket, change: TicketChange, agent: Agent, now: datetime) -> None:
    """The asked changes, each through the shared action handlers (or :func:`tickets.snooze`)."""
    given = change.model_fields_set
    actor = tickets.Actor(ActorKind.AGENT, agent_id=agent.id)
    ctx = action_kinds.ActionContext(session, ticket.mailbox, ticket, actor, now)
    if "status" in given:
        if change.status is None:
            raise action_kinds.ActionRefused("status: choose a status")
        action_kinds.perform(ctx, ActionKind.SET_STATUS, change.status.value)
    if "priority" in given:
        if change.priority is None:
            raise action_kinds.ActionRefused("priority: choose a priority")
        action_kinds.perform(ctx, ActionKind.SET_PRIORITY, change.priority.value)
    if "assignee_id" in given:
        action_kinds.perform(ctx, ActionKind.ASSIGN, change.assignee_id)
    if "tags" in given:
        wanted = [tag.strip() for tag in change.tags or []]
        have = {tag.name for tag in ticket.tags}
        for tag in sorted(have - set(wanted)):
            action_kinds.perform(ctx, ActionKind.REMOVE_TAG, tag)
        for tag in dict.fromkeys(wanted):
            if tag not in have:
                action_kinds.perform(ctx, ActionKind.ADD_TAG, tag)
    if "snoozed_until" in given:
        until = change.snoozed_until.astimezone(UTC) if change.snoozed_until else None
        if until is not None and not now < until <= now + MAX_SNOOZE:
            raise action_kinds.ActionRefused("snoozed_until: a snooze ends in the future, within a year")
        tickets.snooze(session, ticket, until, at=now, actor=actor)


@bp.patch("/tickets/<int:ticket_id>")
@needs(Scope.TICKETS_WRITE)
@tree.validate(resp=Answers(HTTP_200=TicketDetail), tags=TAGS)
def update_ticket(ticket_id: int, json: TicketChange) -> Any:
    """Change status, priority, assignee, tags or snooze. Send ``If-Match`` with the ETag you read."""
    session = get_session()
    now = datetime.now(UTC)
    try:
        ticket = visible_ticket(session, ticket_id, write=True, lock=True)
        agent = session.get(Agent, caller().agent_id)
        assert agent is not None  # the token's owner was just read
        expected = request.headers.get("If-Match")
        if expected is not None and expected.strip() != "*":
            current = etag_of(ticket)
            if current not in [tag.strip() for tag in expected.split(",")]:
                session.rollback()
                return problem_response(
                    412,
                    "Precondition Failed",
                    "The ticket changed since you read it; read it again and retry.",
                    headers={"ETag": current},
                )
        _apply(session, ticket, json, agent, now)
    except Problem as exc:
        session.rollback()
        return problem_answer(exc)
    except action_kinds.ActionRefused as exc:
        session.rollback()
        return problem_response(400, "Bad Request", str(exc))
    return changed_ticket(session, ticket_id)


def changed_ticket(session: Session, ticket_id: int, status: int = 200) -> Any:
    """Commit the change and answer the ticket as it is now, with its new ETag."""
    session.commit()
    fresh = visible_ticket(session, ticket_id)
    session.refresh(fresh)
    return TicketDetail.model_validate(ticket_detail(session, fresh)), status, {"ETag": etag_of(fresh)}


@bp.post("/tickets/<int:ticket_id>/notes")
@needs(Scope.TICKETS_WRITE)
@tree.validate(resp=Answers(HTTP_201=NoteCreated), tags=TAGS)
def add_note(ticket_id: int, json: NoteIn) -> Any:
    """Add an internal note (never sent to the customer). ``@name`` mentions a colleague (docs/api.md):
    an unknown or ambiguous mention, or one of someone who cannot see the mailbox, answers 400."""
    session = get_session()
    try:
        ticket = visible_ticket(session, ticket_id, write=True)
        who = caller()
        writer = session.get(Agent, who.agent_id)
        assert writer is not None  # the token's owner was just read
        mentions.add_note(session, ticket, json.body, writer=writer, at=datetime.now(UTC))
    except Problem as exc:
        return problem_answer(exc)
    except (action_kinds.ActionRefused, mentions.MentionProblem) as exc:
        session.rollback()
        return problem_response(400, "Bad Request", str(exc))
    session.flush()
    note = session.scalar(select(Note).where(Note.ticket_id == ticket.id).order_by(Note.id.desc()).limit(1))
    assert note is not None  # just added
    author = session.get(Agent, who.agent_id)
    answer = NoteCreated.model_validate(
        {
            "note": {
                "id": note.id,
                "author": agent_reference(author),
                "body": note.body,
                "created_at": note.created_at,
            }
        }
    )
    session.commit()
    return answer, 201


@bp.post("/tickets/<int:ticket_id>/replies")
@needs(Scope.TICKETS_WRITE)
@tree.validate(resp=Answers(HTTP_202=ReplyQueued), tags=TAGS)
def reply(ticket_id: int, json: ReplyIn) -> Any:
    """Answer the customer in the ticket's thread, with a template or text; sent by the worker (Outbox)."""
    session = get_session()
    if (json.template_id is None) == (json.text is None):
        return problem_response(400, "Bad Request", "Give either template_id or text.")
    now = datetime.now(UTC)
    try:
        ticket = visible_ticket(session, ticket_id, write=True)
        agent = session.get(Agent, caller().agent_id)
        assert agent is not None  # the token's owner was just read
        if json.template_id is not None:
            template = session.get(Template, json.template_id)
            if (
                template is None
                or template.mailbox_id not in (None, ticket.mailbox_id)
                or template.owner_id
                not in (
                    None,
                    agent.id,
                )
            ):
                raise Problem(404, "Not Found", "No such template in this ticket's mailbox.")
            queued = action_kinds.reply_with_template(
                session, ticket, template, agent=agent, zone=agent.timezone, now=now
            )
        else:
            queued = action_kinds.reply_with_text(session, ticket, json.text or "", agent=agent, now=now)
    except Problem as exc:
        session.rollback()
        return problem_answer(exc)
    except (action_kinds.ActionRefused, TemplateError) as exc:
        session.rollback()
        return problem_response(400, "Bad Request", str(exc))
    session.commit()
    return ReplyQueued(queued=queued), 202
