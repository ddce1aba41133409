"""``/api/v1/tickets/{id}/follow`` and ``/unfollow``: the token's owner follows a ticket (gets what its
assignee is told) or stops; both answer who follows it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from spectree import Response as Answers

from server.base.db import get_session
from server.base.models import Agent
from server.faces.api.auth import caller, needs
from server.faces.api.base import bp, tree
from server.faces.api.schemas import Followers, UnmergeIn
from server.faces.api.tickets import TAGS, Problem, problem_answer, visible_ticket
from server.services import following
from server.services.api_tokens import Scope
from server.services.tickets.documents import agent_reference


def _change(ticket_id: int, follow: bool) -> Any:
    session = get_session()
    try:
        ticket = visible_ticket(session, ticket_id, write=True)
    except Problem as exc:
        return problem_answer(exc)
    agent = session.get(Agent, caller().agent_id)
    assert agent is not None  # the token's owner was just read
    if follow:
        following.follow(session, ticket, agent, at=datetime.now(UTC))
    else:
        following.unfollow(session, ticket, agent)
    session.commit()
    people = following.followers(session, ticket)
    return Followers.model_validate(
        {
            "following": any(p.id == agent.id for p in people),
            "followers": [agent_reference(p) for p in people],
        }
    )


@bp.post("/tickets/<int:ticket_id>/follow")
@needs(Scope.TICKETS_WRITE)
@tree.validate(resp=Answers(HTTP_200=Followers), tags=TAGS)
def follow(ticket_id: int, json: UnmergeIn) -> Any:
    """Follow the ticket as the token's owner (send ``{}``)."""
    return _change(ticket_id, True)


@bp.post("/tickets/<int:ticket_id>/unfollow")
@needs(Scope.TICKETS_WRITE)
@tree.validate(resp=Answers(HTTP_200=Followers), tags=TAGS)
def unfollow(ticket_id: int, json: UnmergeIn) -> Any:
    """Stop following the ticket (send ``{}``)."""
    return _change(ticket_id, False)
