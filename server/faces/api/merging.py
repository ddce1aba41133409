"""``/api/v1/tickets/{id}/merge`` and ``/unmerge``: merging a ticket into another, and undoing it
within a day (:mod:`server.services.tickets.merging` says what moves)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from spectree import Response as Answers

from server.base.db import get_session
from server.base.models import ActorKind
from server.faces.api.auth import caller, needs
from server.faces.api.base import bp, tree
from server.faces.api.schemas import MergeIn, TicketDetail, UnmergeIn
from server.faces.api.tickets import TAGS, Problem, etag_of, problem_answer, ticket_detail, visible_ticket
from server.faces.errors import problem_response
from server.services import tickets
from server.services.api_tokens import Scope


def _done(ticket_id: int) -> Any:
    session = get_session()
    session.commit()
    fresh = visible_ticket(session, ticket_id)
    session.refresh(fresh)
    return TicketDetail.model_validate(ticket_detail(session, fresh)), 200, {"ETag": etag_of(fresh)}


@bp.post("/tickets/<int:ticket_id>/merge")
@needs(Scope.TICKETS_WRITE)
@tree.validate(resp=Answers(HTTP_200=TicketDetail), tags=TAGS)
def merge(ticket_id: int, json: MergeIn) -> Any:
    """Merge this ticket into ``into`` (same mailbox); answers the ticket that survives. 409 when the
    merge cannot be done (another mailbox, itself, already merged, a loop)."""
    session = get_session()
    try:
        source = visible_ticket(session, ticket_id, write=True, lock=True)
        target = visible_ticket(session, json.into, write=True, lock=True)
        actor = tickets.Actor(ActorKind.AGENT, agent_id=caller().agent_id)
        survivor = tickets.merge(session, source, target, at=datetime.now(UTC), actor=actor)
    except Problem as exc:
        session.rollback()
        return problem_answer(exc)
    except tickets.MergeError as exc:
        session.rollback()
        return problem_response(409, "Conflict", str(exc))
    return _done(survivor.id)


@bp.post("/tickets/<int:ticket_id>/unmerge")
@needs(Scope.TICKETS_WRITE)
@tree.validate(resp=Answers(HTTP_200=TicketDetail), tags=TAGS)
def unmerge(ticket_id: int, json: UnmergeIn) -> Any:
    """Undo this ticket's merge (within a day): its messages, notes and tags go back; answers it."""
    session = get_session()
    try:
        source = visible_ticket(session, ticket_id, write=True, lock=True)
        actor = tickets.Actor(ActorKind.AGENT, agent_id=caller().agent_id)
        tickets.unmerge(session, source, at=datetime.now(UTC), actor=actor)
    except Problem as exc:
        session.rollback()
        return problem_answer(exc)
    except tickets.MergeError as exc:
        session.rollback()
        return problem_response(409, "Conflict", str(exc))
    return _done(source.id)
