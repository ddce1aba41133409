"""``/api/v1/tickets/{id}/merge``, ``/unmerge`` and ``/split``: merging a ticket into another, undoing
it within a day, and splitting a customer's message off into a new ticket
(:mod:`server.services.tickets.merging` and ``splitting`` say what moves)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from spectree import Response as Answers
from sqlalchemy import select

from server.base.db import get_session
from server.base.models import ActorKind, Message
from server.faces.api.auth import caller, needs
from server.faces.api.base import bp, tree
from server.faces.api.schemas import MergeIn, SplitIn, TicketDetail, UnmergeIn
from server.faces.api.tickets import TAGS, Problem, changed_ticket, problem_answer, visible_ticket
from server.faces.errors import problem_response
from server.services import regrouping, tickets
from server.services.api_tokens import Scope


def _change(do: Callable[[tickets.Actor, datetime], int], status: int = 200) -> Any:
    """Do the change as the token's agent; 404 for a ticket the caller cannot see, 409 with the reason
    when it cannot be done; else the changed ticket (whose id ``do`` returns). A merge locks two
    tickets: when PostgreSQL undoes it for a worker's batch holding one of them, the whole request is
    done again (:class:`server.Postdesk`)."""
    session = get_session()
    try:
        ticket_id = do(tickets.Actor(ActorKind.AGENT, agent_id=caller().agent_id), datetime.now(UTC))
        session.flush()
    except Problem as exc:
        session.rollback()
        return problem_answer(exc)
    except (tickets.MergeError, tickets.SplitError) as exc:
        session.rollback()
        return problem_response(409, "Conflict", str(exc))
    return changed_ticket(session, ticket_id, status)


@bp.post("/tickets/<int:ticket_id>/merge")
@needs(Scope.TICKETS_WRITE)
@tree.validate(resp=Answers(HTTP_200=TicketDetail), tags=TAGS)
def merge(ticket_id: int, json: MergeIn) -> Any:
    """Merge this ticket into ``into`` (same mailbox); answers the ticket that survives. 409 when the
    merge cannot be done (another mailbox, itself, already merged, a loop)."""

    def do(actor: tickets.Actor, now: datetime) -> int:
        session = get_session()
        source = visible_ticket(session, ticket_id, write=True, lock=True)
        target = visible_ticket(session, json.into, write=True, lock=True)
        return regrouping.merge_tickets(session, source, target, at=now, actor=actor).id

    return _change(do)


@bp.post("/tickets/<int:ticket_id>/unmerge")
@needs(Scope.TICKETS_WRITE)
@tree.validate(resp=Answers(HTTP_200=TicketDetail), tags=TAGS)
def unmerge(ticket_id: int, json: UnmergeIn) -> Any:
    """Undo this ticket's merge (within a day): its messages, notes and tags go back; answers it."""

    def do(actor: tickets.Actor, now: datetime) -> int:
        session = get_session()
        source = visible_ticket(session, ticket_id, write=True, lock=True)
        return tickets.unmerge(session, source, at=now, actor=actor).id

    return _change(do)


@bp.post("/tickets/<int:ticket_id>/split")
@needs(Scope.TICKETS_WRITE)
@tree.validate(resp=Answers(HTTP_201=TicketDetail), tags=TAGS)
def split(ticket_id: int, json: SplitIn) -> Any:
    """Split the customer's ``message`` and the later messages of its Gmail thread off into a new
    ticket, which runs the new-ticket rules; answers the new ticket. 409 when it cannot be done (an
    agent's message, the ticket's only messages, a merged ticket)."""

    def do(actor: tickets.Actor, now: datetime) -> int:
        session = get_session()
        ticket = visible_ticket(session, ticket_id, write=True, lock=True)
        message = session.scalar(
            select(Message).where(Message.id == json.message, Message.ticket_id == ticket.id)
        )
        if message is None:
            raise Problem(404, "Not Found", f"#{ticket.number} has no message {json.message}")
        return regrouping.split_ticket(session, ticket, message, at=now, actor=actor).id

    return _change(do, 201)
