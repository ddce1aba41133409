"""The add-on tests' fixtures: Google-style keys, two connected mailboxes, and an add-on client
that posts as the shim does and checks every card it gets back (a pytest plugin: see conftest)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from addon_support import CLIENT_ID, GoogleKeys, card_schema
from helpers import MAILBOX, make_email

import rules as rule_engine
from server.faces.addon import cards
from server.services.defaults import DEFAULT_RULES, replace_rules

SALES = "sales@example.com"
ROUTES = ("/addon/v1/homepage", "/addon/v1/message", "/addon/v1/compose", "/addon/v1/action")
VALIDATOR = jsonschema.Draft7Validator(card_schema())


@pytest.fixture
def keys():
    served = GoogleKeys()
    yield served
    served.close()


@pytest.fixture
def desk(app, helpdesk, keys, deliver, session):
    """support@ (Anna, admin; Bob) and sales@ (Carol), one customer email each, synced."""
    app.config.update(ADDON_CLIENT_ID=CLIENT_ID, ADDON_CERTS_URL=keys.url)
    helpdesk.connect(MAILBOX, agents=["anna@example.com", "bob@example.com"])
    helpdesk.connect(SALES, agents=["carol@example.com"])
    acknowledge_only = rule_engine.load_rules(
        [r for r in DEFAULT_RULES if r["name"].startswith("Acknowledge")]
    )
    for box in helpdesk.mailboxes.values():  # agents take tickets themselves here
        replace_rules(session, box, acknowledge_only)
    session.commit()
    deliver(
        make_email(
            "Cannot log in", "Help!", sender="alice@customer.test", message_id="<alice-1@customer.test>"
        )
    )
    deliver(
        make_email(
            "Price list", "Prices?", sender="dan@customer.test", to=SALES, message_id="<dan-1@customer.test>"
        ),
        to=SALES,
    )
    helpdesk.cycle(MAILBOX)
    helpdesk.cycle(SALES)
    return helpdesk


class AddOn:
    """Posts to the add-on routes as the shim does, checks every card it gets back."""

    def __init__(self, client: Any, keys: GoogleKeys) -> None:
        self.client, self.keys = client, keys

    def post(
        self, route: str, email: str | None = "anna@example.com", *, token: str | None = None, **event: Any
    ):
        headers = {}
        if token is not None or email is not None:
            headers["Authorization"] = f"Bearer {token if token is not None else self.keys.token(email)}"
        body = {
            "commonEventObject": {"userLocale": "en", "timeZone": {"id": "Europe/Moscow"}},
            "postdesk": {},
        } | event
        response = self.client.post(route, json=body, headers=headers)
        if response.status_code in (200, 403):
            for card in cards.cards_in(response.get_json()):
                check_card(card)
        return response

    def message(self, rfc822: str, email: str = "anna@example.com"):
        return self.post(
            "/addon/v1/message", email, postdesk={"rfc822MessageId": rfc822}, gmail={"threadId": "x"}
        )

    def act(
        self, do: str, email: str = "anna@example.com", form: dict[str, Any] | None = None, **parameters: Any
    ):
        common = {
            "userLocale": "en",
            "timeZone": {"id": "Europe/Moscow"},
            "parameters": {"do": do} | {k: str(v) for k, v in parameters.items()},
            "formInputs": form or {},
        }
        return self.post("/addon/v1/action", email, commonEventObject=common)


def check_card(card: dict[str, Any]) -> None:
    """Valid against GoogleAppsCardV1Card and inside Gmail's limits."""
    errors = sorted(VALIDATOR.iter_errors(card), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    assert cards.widget_count(card) <= cards.MAX_WIDGETS
    assert len(card.get("cardActions", [])) <= cards.MAX_CARD_ACTIONS
    for section in card["sections"]:
        for widget in section["widgets"]:
            items = widget.get("selectionInput", {}).get("items", [])
            assert len(items) <= cards.MAX_SELECTION_ITEMS


@pytest.fixture
def addon(client, keys, desk):
    return AddOn(client, keys)


def solved_ticket(session: Any, mailbox_id: int, subject: str, question: str, answer: str) -> Any:
    """A ticket the team answered and solved (rows written directly; the index follows the solve)."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import func, select

    from server.base.models import Message, Ticket, TicketStatus
    from server.services.tickets import set_status

    at = datetime.now(UTC) - timedelta(days=1)
    number = (session.scalar(select(func.max(Ticket.number)).where(Ticket.mailbox_id == mailbox_id)) or 0) + 1
    ticket = Ticket(
        mailbox_id=mailbox_id, number=number, subject=subject, status="open", created_at=at, updated_at=at
    )
    session.add(ticket)
    session.flush()
    for direction, text, minutes in (("inbound", question, 0), ("outbound", answer, 30)):
        session.add(Message(mailbox_id=mailbox_id, ticket_id=ticket.id, gmail_id=f"solved-{ticket.id}-{direction}",
                            gmail_thread_id=f"solved-{ticket.id}", direction=direction, text=text,
                            sent_at=at + timedelta(minutes=minutes)))  # fmt: skip
    set_status(session, ticket, TicketStatus.SOLVED, at=at + timedelta(hours=1))
    session.commit()
    return ticket
