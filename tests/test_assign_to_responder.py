"""Assign to responder (a mailbox setting, off by default): an unassigned ticket an agent answers from
Gmail, their reply filed by sync, becomes theirs; an assigned ticket never changes hands."""

from __future__ import annotations

import pytest
from helpers import MAILBOX, make_email
from sqlalchemy import select

from server.base.models import Agent, Event, Message, Ticket
from server.services import tickets
from server.services.accounts import ensure_agent
from server.services.mailbox_settings import SettingsError, validate


def _turn_on(session, mailbox) -> None:
    mailbox.settings = {**(mailbox.settings or {}), "assign_to_responder": True}
    session.commit()


def _ticket(session, gmail_id: str) -> Ticket:
    return session.scalar(
        select(Ticket).join(Message, Message.ticket_id == Ticket.id).where(Message.gmail_id == gmail_id)
    )


def _reply(deliver, sender: str, to_id: str, body: str = "On it") -> dict:
    return deliver(make_email("Re: Printer", body, sender=sender, to="bob@example.org", in_reply_to=to_id))


def test_the_agent_who_answers_from_gmail_gets_the_ticket(session, mailbox, deliver, sync):
    _turn_on(session, mailbox)
    deliver(make_email("Warm-up", sender="first@example.org"))
    sync()  # the first sync reads old mail without acting on it
    question = deliver(
        make_email("Printer", "It jams", sender="bob@example.org", message_id="<p1@example.org>")
    )
    sync()
    ticket = _ticket(session, question["id"])
    assert ticket.assignee_id is None
    anna = session.scalar(select(Agent).where(Agent.email == "anna@example.com"))

    _reply(deliver, "Anna <anna@example.com>", "<p1@example.org>")
    sync()

    session.refresh(ticket)
    assert ticket.assignee_id == anna.id
    event = session.scalar(select(Event).where(Event.ticket_id == ticket.id, Event.kind == "assigned"))
    assert event.actor_agent_id == anna.id and event.after == {"agent_id": anna.id}


def test_an_assigned_ticket_keeps_its_assignee_and_the_shared_address_names_nobody(
    session, mailbox, deliver, sync
):
    _turn_on(session, mailbox)
    boris = ensure_agent(session, "boris@example.com", "Boris", mailbox=mailbox)
    session.commit()
    deliver(make_email("Warm-up", sender="first@example.org"))
    sync()
    mine = deliver(make_email("Printer", sender="bob@example.org", message_id="<p2@example.org>"))
    theirs = deliver(make_email("Scanner", sender="carol@example.org", message_id="<s2@example.org>"))
    sync()
    assigned = _ticket(session, mine["id"])
    tickets.assign(session, assigned, boris.id, at=assigned.created_at)
    session.commit()

    _reply(deliver, "anna@example.com", "<p2@example.org>")
    deliver(
        make_email(
            "Re: Scanner", "Looking", sender=MAILBOX, to="carol@example.org", in_reply_to="<s2@example.org>"
        )
    )
    sync()

    unanswered_by_a_person = _ticket(session, theirs["id"])
    session.refresh(assigned)
    assert assigned.assignee_id == boris.id
    assert unanswered_by_a_person.assignee_id is None


def test_off_by_default_and_someone_outside_the_mailbox_is_not_a_responder(session, mailbox, deliver, sync):
    outsider = ensure_agent(session, "olga@example.com", "Olga")  # an agent of no mailbox
    session.commit()
    deliver(make_email("Warm-up", sender="first@example.org"))
    sync()
    question = deliver(make_email("Printer", sender="bob@example.org", message_id="<p3@example.org>"))
    sync()
    _reply(deliver, "anna@example.com", "<p3@example.org>")
    sync()
    ticket = _ticket(session, question["id"])
    assert ticket.assignee_id is None  # the setting is off

    _turn_on(session, mailbox)
    _reply(deliver, "olga@example.com", "<p3@example.org>", "Me too")
    sync()
    session.refresh(ticket)
    assert ticket.assignee_id is None and outsider.id is not None


@pytest.mark.parametrize("value", ["yes", 1, None, []])
def test_the_setting_is_true_or_false(value):
    with pytest.raises(SettingsError, match="assign_to_responder: true or false"):
        validate({"assign_to_responder": value})
    assert validate({"assign_to_responder": True}) == {"assign_to_responder": True}
