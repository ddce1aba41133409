"""One table of actions: every action kind a rule can name has exactly one handler, and the rules and
the add-on go through it (the same refusal, in the same words, from both faces)."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from rules import ActionKind
from server.base.models import ActorKind, Agent, Event, Ticket
from server.services import action_kinds
from server.services.tickets import Actor

ROOT = Path(__file__).resolve().parent.parent


def test_every_action_kind_has_one_handler_in_the_table():
    assert set(action_kinds.ACTIONS) == set(ActionKind)


def test_no_face_or_service_dispatches_on_action_kinds_by_if_chain():
    for path in (ROOT / "server").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(isinstance(op, ast.Is) for op in node.ops):
                names = [ast.unparse(c) for c in node.comparators]
                assert not any(n.startswith("ActionKind.") for n in names), f"{path}:{node.lineno}"


@pytest.fixture
def ticket(helpdesk, deliver, session):
    from helpers import MAILBOX, make_email

    helpdesk.connect(MAILBOX, agents=["anna@example.com"])
    deliver(make_email("Printer on fire", "Help", sender="alice@customer.test"))
    helpdesk.cycle()
    return session.scalar(select(Ticket).where(Ticket.subject == "Printer on fire"))


@pytest.mark.parametrize(
    ("kind", "value", "problem"),
    [
        (ActionKind.SET_PRIORITY, "whenever", "choose a priority"),
        (ActionKind.SET_STATUS, "deleted", "unknown status"),
        (ActionKind.ADD_TAG, "x" * 101, "a tag is 1 to 100 characters"),
        (ActionKind.ADD_NOTE, "  ", "a note is 1 to 20,000 characters"),
        (ActionKind.ASSIGN, "nobody@example.com", "that agent does not work in this mailbox"),
        (ActionKind.SET_SLA_POLICY, "Platinum", "no SLA policy named 'Platinum'"),
    ],
)
def test_a_refused_action_changes_nothing_and_says_why(session, ticket, kind, value, problem):
    anna = session.scalar(select(Agent).where(Agent.email == "anna@example.com"))
    before = session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))
    ctx = action_kinds.ActionContext(
        session, ticket.mailbox, ticket, Actor(ActorKind.AGENT, agent_id=anna.id), datetime.now(UTC)
    )
    with pytest.raises(action_kinds.ActionRefused, match=problem):
        action_kinds.perform(ctx, kind, value)
    session.flush()
    assert session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) == before


def test_a_dry_run_describes_and_changes_nothing(session, ticket):
    def state():
        return (ticket.priority, [t.name for t in ticket.tags], ticket.assignee_id, ticket.status)

    before = state()
    ctx = action_kinds.ActionContext(
        session, ticket.mailbox, ticket, Actor(ActorKind.RULE, rule_id=None), datetime.now(UTC), dry_run=True
    )
    said = [
        action_kinds.perform(ctx, kind, value)
        for kind, value in [
            (ActionKind.SET_PRIORITY, "urgent"),
            (ActionKind.ADD_TAG, "fire"),
            (ActionKind.ASSIGN, "round_robin"),
            (ActionKind.SET_STATUS, "pending"),
        ]
    ]
    assert said == ["set priority urgent", "add tag fire", "assign to anna@example.com", "set status pending"]
    session.flush()
    session.refresh(ticket)
    assert state() == before and before[0] == "normal" and before[3] == "open"
