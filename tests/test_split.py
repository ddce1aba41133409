"""Splitting a customer's message off into a new ticket: against the Gmail sandbox with the real client
(what moves, where later mail files, where replies go, labels message by message), the new-ticket rules
with the acknowledgement held back unless the mailbox wants it, refusals, and every face (API, command
line, add-on card)."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import pytest
from addon_fixtures import addon, desk, keys  # noqa: F401  (fixtures)
from api_support import SUPPORT, api_app, api_desk  # noqa: F401  (fixtures)
from helpers import MAILBOX, make_email
from sqlalchemy import select

from server.base.db import get_session
from server.base.models import Agent, Event, Message, Outbox, Ticket, TicketStatus
from server.services import action_kinds, regrouping, tickets
from server.services.labels import apply_wanted
from server.services.mailbox_settings import LABEL_DEFAULTS


def _ticket_of(session, gmail_id: str) -> Ticket:
    return session.scalar(
        select(Ticket).join(Message, Message.ticket_id == Ticket.id).where(Message.gmail_id == gmail_id)
    )


def _messages(session, ticket: Ticket) -> list[str]:
    return list(
        session.scalars(
            select(Message.gmail_id).where(Message.ticket_id == ticket.id).order_by(Message.sent_at)
        )
    )


@pytest.fixture
def thread(helpdesk, deliver):
    """One Gmail thread: a question (m1), the agent's answer (m2), a new question in the same thread
    (m3) and a follow-up to it (m4); the mailbox mirrors tickets in labels."""
    team = helpdesk
    box = team.connect(MAILBOX, agents=["anna@example.com"])
    box.settings = {**(box.settings or {}), "gmail_labels": {**LABEL_DEFAULTS, "enabled": True}}
    team.session.commit()
    session = team.session
    m1 = deliver(make_email("Printer", "It jams", sender="ann@shop.example", message_id="<p1@shop.example>"))
    team.cycle()
    first = _ticket_of(session, m1["id"])
    anna = session.scalar(select(Agent).where(Agent.email == "anna@example.com"))
    action_kinds.reply_with_text(session, first, "Clean the roller", agent=anna, now=datetime.now(UTC))
    session.commit()
    team.cycle()
    m2 = next(m for m in team.sent_by(MAILBOX) if b"Clean the roller" in m.raw)
    m2_rfc822 = m2.rfc822_id
    m3 = deliver(make_email("Re: Printer", "Thanks! Also, how do I change my invoice address?",
                            sender="ann@shop.example", message_id="<p3@shop.example>", in_reply_to=m2_rfc822))  # fmt: skip
    m4 = deliver(make_email("Re: Printer", "It is for the March invoice", sender="ann@shop.example",
                            message_id="<p4@shop.example>", in_reply_to="<p3@shop.example>"))  # fmt: skip
    team.cycle()
    assert m1["threadId"] == m2.thread_id == m3["threadId"] == m4["threadId"]
    assert {_ticket_of(session, m["id"]).id for m in (m1, m3, m4)} == {first.id}
    return team, box, first, anna, {"m1": m1["id"], "m2": m2.id, "m3": m3["id"], "m4": m4["id"],
                                    "thread": m1["threadId"], "m2_rfc822": m2_rfc822}  # fmt: skip


def test_a_split_moves_the_message_and_the_later_ones_and_mail_follows(thread, deliver):
    team, box, first, anna, ids = thread
    session = team.session
    message = session.scalar(select(Message).where(Message.gmail_id == ids["m3"]))
    acks_before = session.scalar(
        select(Outbox.id).where(Outbox.kind == "auto_reply").order_by(Outbox.id.desc())
    )

    new = regrouping.split_ticket(session, first, message, at=datetime.now(UTC), actor=tickets.SYSTEM)
    session.commit()

    kept = _messages(session, first)  # the question, its acknowledgement, the agent's answer
    assert kept[0] == ids["m1"] and kept[-1] == ids["m2"] and len(kept) == 3
    assert _messages(session, new) == [ids["m3"], ids["m4"]]
    assert new.number != first.number and new.customer_id == first.customer_id and new.status == "open"
    assert new.gmail_thread_id is None and new.created_at == message.sent_at
    assert first.first_responded_at is not None and new.first_responded_at is None and new.due_at is not None
    events = {
        (e.ticket_id, e.kind): e.after
        for e in session.scalars(select(Event).where(Event.kind.like("split%")))
    }
    assert events[(first.id, "split")]["into"] == new.number
    assert events[(new.id, "split_from")]["from"] == first.number
    assert events[(first.id, "split")]["messages"] == events[(new.id, "split_from")]["messages"]
    # The new-ticket rules ran: assigned round-robin; the acknowledgement held back (the admin's choice).
    assert new.assignee_id == anna.id
    held = session.scalar(
        select(Event).where(Event.ticket_id == new.id, Event.kind == "auto_reply_suppressed")
    )
    assert "does not acknowledge split tickets" in held.after["reason"]
    assert (
        session.scalar(select(Outbox.id).where(Outbox.kind == "auto_reply").order_by(Outbox.id.desc()))
        == acks_before
    )

    # The customer answers the agent's first answer (A's) and, separately, the new question (B's).
    to_first = deliver(make_email("Re: Printer", "The roller worked", sender="ann@shop.example",
                                  in_reply_to=ids["m2_rfc822"]))  # fmt: skip
    to_new = deliver(make_email("Re: Printer", "Any news on the address?", sender="ann@shop.example",
                                in_reply_to="<p4@shop.example>"))  # fmt: skip
    team.cycle()
    assert to_first["threadId"] == to_new["threadId"] == ids["thread"]
    assert _ticket_of(session, to_first["id"]).id == first.id
    assert _ticket_of(session, to_new["id"]).id == new.id

    # A reply from the new ticket answers its latest message, in the same Gmail thread.
    action_kinds.reply_with_text(session, new, "Address changed", agent=anna, now=datetime.now(UTC))
    session.commit()
    team.cycle()
    sent = next(m for m in team.sent_by(MAILBOX) if b"Address changed" in m.raw)
    assert sent.thread_id == ids["thread"]
    assert f"In-Reply-To: {_rfc822(session, to_new['id'])}".encode() in sent.raw
    team.cycle()  # our sent reply is filed by the next sync: into the new ticket (it answers its message)
    assert _ticket_of(session, sent.id).id == new.id
    session.refresh(new)
    assert new.first_responded_at is not None and new.agent_replies == 1

    # Labels: each ticket's state on its own messages of the shared thread.
    tickets.set_status(session, first, TicketStatus.SOLVED, at=datetime.now(UTC))
    session.commit()
    while apply_wanted(session, box, team.clients[MAILBOX]).tickets:
        pass
    user = team.gmail.sandbox.user(MAILBOX)
    names = {label["id"]: label["name"] for label in user.labels.values()}

    def status_of(gmail_id: str) -> set[str]:
        return {names[x] for x in user.messages[gmail_id].label_ids if names.get(x, "").startswith("Postdesk/")
                and names[x].removeprefix("Postdesk/") in {"Open", "Solved", "Pending"}}  # fmt: skip

    assert status_of(ids["m1"]) == status_of(ids["m2"]) == {"Postdesk/Solved"}
    assert status_of(ids["m3"]) == status_of(ids["m4"]) == status_of(to_new["id"]) == {"Postdesk/Open"}
    # A label changed in Gmail on one of the new ticket's messages changes that ticket only.
    urgent = next(i for i, n in names.items() if n == "Postdesk/Urgent")
    team.clients[MAILBOX].batch_modify([ids["m4"]], add=[urgent], remove=[])  # someone else, in Gmail
    team.cycle()
    session.refresh(new)
    session.refresh(first)
    assert new.priority == "urgent" and first.priority != "urgent"


def _rfc822(session, gmail_id: str) -> str:
    return session.scalar(select(Message.rfc822_message_id).where(Message.gmail_id == gmail_id))


def test_the_acknowledgement_goes_when_the_mailbox_wants_it(thread):
    team, box, first, _anna, ids = thread
    session = team.session
    box.settings = {**box.settings, "acknowledge_splits": True}
    session.commit()
    message = session.scalar(select(Message).where(Message.gmail_id == ids["m3"]))
    new = regrouping.split_ticket(session, first, message, at=datetime.now(UTC))
    session.commit()
    ack = session.scalar(select(Outbox).where(Outbox.ticket_id == new.id, Outbox.kind == "auto_reply"))
    assert ack is not None and ack.to == "ann@shop.example"
    assert (
        ack.headers["gmail_thread_id"] == ids["thread"] and ack.headers["in_reply_to"] == "<p4@shop.example>"
    )


def test_what_cannot_be_split_is_refused_with_the_reason(thread):
    team, _box, first, _anna, ids = thread
    session = team.session
    row = {
        key: session.scalar(select(Message).where(Message.gmail_id == ids[key])) for key in ("m1", "m2", "m3")
    }
    with pytest.raises(tickets.SplitError, match="customer's message"):
        tickets.split(session, first, row["m2"], at=datetime.now(UTC))
    with pytest.raises(tickets.SplitError, match="nothing would be left"):
        tickets.split(session, first, row["m1"], at=datetime.now(UTC))
    new = tickets.split(session, first, row["m3"], at=datetime.now(UTC))
    with pytest.raises(tickets.SplitError, match="not part of"):
        tickets.split(session, first, row["m3"], at=datetime.now(UTC))
    tickets.merge(session, new, first, at=datetime.now(UTC))
    with pytest.raises(tickets.SplitError, match="merged into"):
        tickets.split(session, new, row["m3"], at=datetime.now(UTC))
    session.rollback()


def test_the_api_splits_and_refuses(api_desk):  # noqa: F811
    api = api_desk
    ticket_id = api.tickets[SUPPORT][0]
    with api.app.app_context():
        db = get_session()
        ticket = db.get(Ticket, ticket_id)
        later = Message(mailbox_id=ticket.mailbox_id, ticket_id=ticket.id, gmail_id="split-later",
                        gmail_thread_id=ticket.gmail_thread_id or "t", direction="inbound", from_email="zoe@shop.example",
                        subject="Another thing", sent_at=datetime.now(UTC))  # fmt: skip
        earlier = Message(mailbox_id=ticket.mailbox_id, ticket_id=ticket.id, gmail_id="split-earlier",
                          gmail_thread_id=later.gmail_thread_id, direction="inbound", from_email="zoe@shop.example",
                          subject="First thing", sent_at=datetime.now(UTC) - timedelta(hours=1))  # fmt: skip
        db.add_all([earlier, later])
        db.commit()
        later_id = later.id
    answer = api.call("POST", f"/api/v1/tickets/{ticket_id}/split", "anna", json={"message": later_id})
    assert answer.status_code == 201, answer.json
    assert answer.json["id"] != ticket_id and answer.json["subject"] == "Another thing"
    assert answer.json["customer"]["email"] == "zoe@shop.example" and answer.headers["ETag"]
    assert [m["id"] for m in answer.json["messages"]] == [later_id]
    again = api.call("POST", f"/api/v1/tickets/{ticket_id}/split", "anna", json={"message": later_id})
    assert again.status_code == 404  # no longer the ticket's message
    alone = api.call("POST", f"/api/v1/tickets/{answer.json['id']}/split", "anna", json={"message": later_id})
    assert alone.status_code == 409 and "nothing would be left" in alone.json["detail"]
    assert (
        api.call("POST", f"/api/v1/tickets/{ticket_id}/split", "anna_read", json={"message": 1}).status_code
        == 403
    )
    assert (
        api.call("POST", f"/api/v1/tickets/{ticket_id}/split", "anna", json={"message": "x"}).status_code
        == 400
    )


def test_the_command_line_splits(thread, runner):
    team, _box, first, _anna, ids = thread
    result = runner.invoke(
        args=["tickets", "split", str(first.number), "--message", ids["m3"], "--mailbox", MAILBOX]
    )
    assert result.exit_code == 0, result.output
    new = _ticket_of(team.session, ids["m4"])
    assert f"split off #{first.number} into #{new.number}" in result.output and new.id != first.id
    again = runner.invoke(
        args=["tickets", "split", str(first.number), "--message", ids["m3"], "--mailbox", MAILBOX]
    )
    assert again.exit_code == 2 and "has no message" in again.output


def test_the_card_of_a_later_customer_message_offers_the_split(addon, session, desk, deliver):  # noqa: F811
    first = session.scalar(select(Ticket).where(Ticket.subject == "Cannot log in"))
    opening = session.scalar(select(Message).where(Message.ticket_id == first.id))
    later = deliver(make_email("Re: Cannot log in", "And how do I export my data?", sender="alice@customer.test",
                               message_id="<alice-later@customer.test>", in_reply_to=opening.rfc822_message_id,
                               date=email.utils.format_datetime(first.created_at + timedelta(minutes=5))))  # fmt: skip
    desk.cycle(MAILBOX)
    assert _ticket_of(session, later["id"]).id == first.id
    assert "Split this message" not in addon.message(opening.rfc822_message_id).get_data(as_text=True)
    card = addon.message("<alice-later@customer.test>").get_data(as_text=True)
    assert "Split this message into a new ticket" in card
    row = session.scalar(select(Message).where(Message.gmail_id == later["id"]))

    answer = addon.act("split", ticket=first.id, message=row.id).get_json()["renderActions"]["action"]

    session.expire_all()
    new = _ticket_of(session, later["id"])
    assert new.id != first.id
    assert answer["notification"]["text"] == f"Split off #{first.number} into #{new.number}"
    assert f"#{new.number}" in str(answer["navigations"])
    gone = addon.act("split", ticket=first.id, message=row.id).get_json()["renderActions"]["action"]
    assert gone["notification"]["text"].endswith(f"that message is no longer part of #{first.number}")
    nonsense = addon.act("split", ticket=first.id, message="x").get_json()["renderActions"]["action"]
    assert "no longer part" in nonsense["notification"]["text"]
