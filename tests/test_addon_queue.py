"""What an agent notices first: the homepage is a queue, "Take the next one" hands out each ticket once,
and the ticket card's last events speak the agent's language and say why automatic mail was ignored."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from helpers import MAILBOX, make_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.db import get_engine
from server.base.models import ActorKind, Agent, Event, Message, Priority, Ticket
from server.faces.addon import cards
from server.services import tickets
from server.services.tickets import Actor


def text_of(response: Any) -> str:
    return json.dumps(response.get_json(), ensure_ascii=False)


def _agent(session: Session, email: str) -> Agent:
    agent = session.scalar(select(Agent).where(Agent.email == email))
    assert agent is not None
    return agent


def _write_in(deliver: Any, desk: Any, count: int, subject: str = "Question") -> None:
    for n in range(count):
        deliver(make_email(f"{subject} {n + 1}", "Hello", sender=f"customer{n}@customer.test"))
    desk.cycle(MAILBOX)


def _buttons(response: Any) -> dict[str, dict[str, str]]:
    """Each button's label → its parameters, on the card of the answer."""
    found = {}
    for card in cards.cards_in(response.get_json()):
        for section in card["sections"]:
            for widget in section["widgets"]:
                for button in widget.get("buttonList", {}).get("buttons", []):
                    items = button["onClick"]["action"]["parameters"]
                    found[button["text"]] = {p["key"]: p["value"] for p in items}
    return found


def test_the_homepage_lists_unassigned_mine_and_overdue_most_urgent_first(addon, session, desk, deliver):
    _write_in(deliver, desk, 7)
    anna = _agent(session, "anna@example.com")
    urgent = session.scalar(select(Ticket).where(Ticket.subject == "Question 6"))
    tickets.set_priority(session, urgent, Priority.URGENT, at=datetime.now(UTC))
    mine = session.scalar(select(Ticket).where(Ticket.subject == "Question 2"))
    tickets.assign(session, mine, anna.id, at=datetime.now(UTC))
    late = session.scalar(select(Ticket).where(Ticket.subject == "Question 3"))
    late.due_at = datetime.now(UTC) - timedelta(hours=1)
    session.commit()

    home = addon.post("/addon/v1/homepage")
    text = text_of(home)
    # support@ has "Cannot log in" and Questions 1–7; Anna has one, so seven are unassigned.
    assert "Unassigned (7)" in text and "Mine (1)" in text and "Overdue (1)" in text
    unassigned = text.index("Unassigned (7)")
    assert text.index("#", unassigned) == text.index(f"#{urgent.number} Question 6")  # urgent comes first
    assert "Show all 7" in text  # the homepage shows five of each list
    more = _buttons(home)["Show all 7"]
    page = addon.act("queue", queue=more["queue"], page=more["page"])
    assert page.status_code == 200 and "Page 1 of 1" in text_of(page)
    assert text_of(page).count("Question") == 6  # every unassigned one, Anna's own excepted


def test_a_list_pages_through_and_a_hostile_page_number_is_clamped(addon, session, desk, deliver):
    _write_in(deliver, desk, 22)
    first = addon.act("queue", queue="unassigned", page="1")
    assert "Page 1 of 2" in text_of(first) and "Next" in _buttons(first)
    second = addon.act("queue", queue="unassigned", page=_buttons(first)["Next"]["page"])
    assert "Page 2 of 2" in text_of(second) and "Previous" in _buttons(second)
    for page in ("0", "-3", "99999999999999999999999", "²", "many"):
        answer = addon.act("queue", queue="nonsense", page=page)
        assert answer.status_code == 200 and "Unassigned (23)" in text_of(answer)


def test_take_the_next_one_gives_the_oldest_unassigned_ticket_and_opens_it(addon, session, desk, deliver):
    _write_in(deliver, desk, 2)
    oldest = session.scalar(select(Ticket).order_by(Ticket.created_at, Ticket.id).limit(1))
    taken = addon.act("take_next")
    assert taken.status_code == 200
    assert f"#{oldest.number} " in text_of(taken)
    session.refresh(oldest)
    anna = _agent(session, "anna@example.com")
    assert oldest.assignee_id == anna.id
    event = session.scalars(
        select(Event).where(Event.ticket_id == oldest.id).order_by(Event.id.desc())
    ).first()
    assert (event.kind, event.actor_agent_id) == ("assigned", anna.id)
    for _ in range(2):
        addon.act("take_next")
    nothing = addon.act("take_next")
    assert (
        nothing.get_json()["renderActions"]["action"]["notification"]["text"]
        == "No unassigned tickets to take"
    )


def test_two_agents_taking_the_next_one_at_once_get_two_different_tickets(app, session, desk, deliver):
    _write_in(deliver, desk, 3)
    agents = [_agent(session, "anna@example.com").id, _agent(session, "bob@example.com").id]
    mailbox_ids = [desk.mailboxes[MAILBOX].id]
    session.commit()
    start = threading.Barrier(len(agents))
    got: dict[int, int | None] = {}
    errors: list[BaseException] = []

    def press(agent_id: int) -> None:
        with app.app_context(), Session(get_engine()) as own:
            try:
                start.wait(timeout=10)
                ticket = tickets.take_next(
                    own, mailbox_ids, agent_id, at=datetime.now(UTC), actor=Actor(ActorKind.AGENT, agent_id)
                )
                own.commit()
                got[agent_id] = ticket.id if ticket else None
            except BaseException as exc:  # reported below, in the test's own thread
                errors.append(exc)

    threads = [threading.Thread(target=press, args=(agent_id,)) for agent_id in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert None not in got.values() and len(set(got.values())) == 2
    session.expire_all()
    for agent_id, ticket_id in got.items():
        assert session.get(Ticket, ticket_id).assignee_id == agent_id
    assigned = session.scalars(select(Event).where(Event.kind == "assigned")).all()
    assert sorted(e.ticket_id for e in assigned) == sorted(got.values())  # one event each, no double


def test_the_russian_card_speaks_russian_and_says_why_automatic_mail_was_ignored(
    addon, session, desk, deliver
):
    out_of_office = make_email(
        "Re: Cannot log in",
        "I am out of the office until Monday.",
        sender="alice@customer.test",
        in_reply_to="<alice-1@customer.test>",
        extra="Auto-Submitted: auto-replied",
    )
    deliver(out_of_office)
    desk.cycle(MAILBOX)
    stored = session.scalar(select(Message).where(Message.text.contains("out of the office")))
    assert stored.is_auto and "auto-replied" in stored.auto_reason
    ticket = session.scalar(select(Ticket).where(Ticket.subject == "Cannot log in"))
    addon.act("assign_me", ticket=ticket.id)
    russian = addon.post(
        "/addon/v1/message",
        commonEventObject={"userLocale": "ru", "timeZone": {"id": "Europe/Moscow"}},
        postdesk={"rfc822MessageId": "<alice-1@customer.test>"},
    )
    text = text_of(russian)
    assert "Назначен исполнитель" in text and "Автоматическое письмо, без действий" in text
    assert "auto-replied" in text  # the reason, as the mail said it
    for english in ("assigned", "automatic mail", "reminder queued", "first response", "ticket created"):
        assert f'"{english}' not in text.lower()
