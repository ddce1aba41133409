"""The add-on backend: every token checked on every route, no data across mailboxes, card actions as
ticket actions with the agent in the Event, cards valid against Google's schema and within limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from addon_fixtures import ROUTES, SALES, AddOn  # noqa: F401 - the fixtures come from the plugin
from addon_support import CLIENT_ID
from helpers import MAILBOX, make_email
from sqlalchemy import event as sa_event
from sqlalchemy import select

from server.base.db import get_engine
from server.base.models import Agent, Event, Note, Outbox, Ticket, TicketView
from server.faces.addon import cards


def strings(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@pytest.mark.parametrize(
    "kind",
    [
        "missing",
        "garbage",
        "forged",
        "expired",
        "wrong_audience",
        "wrong_issuer",
        "unverified",
        "unknown",
        "inactive",
    ],
)
def test_every_route_refuses_a_bad_token_with_401(addon, keys, session, kind):
    now = int(datetime.now(UTC).timestamp())
    tokens = {
        "missing": None,
        "garbage": "not-a-jwt",
        "forged": keys.token("anna@example.com", forged=True),
        "expired": keys.token("anna@example.com", iat=now - 7200, exp=now - 3600),
        "wrong_audience": keys.token("anna@example.com", aud="someone-else.apps.googleusercontent.com"),
        "wrong_issuer": keys.token("anna@example.com", iss="https://evil.example"),
        "unverified": keys.token("anna@example.com", email_verified=False),
        "unknown": keys.token("mallory@example.com"),
        "inactive": keys.token("bob@example.com"),
    }
    session.scalar(select(Agent).where(Agent.email == "bob@example.com")).active = False
    session.commit()
    for route in ROUTES:
        response = addon.post(route, None) if kind == "missing" else addon.post(route, token=tokens[kind])
        assert response.status_code == 401, (route, kind)
        assert "Cannot log in" not in response.get_data(as_text=True)


def test_no_client_id_configured_means_nobody_gets_in(addon, app):
    app.config["ADDON_CLIENT_ID"] = ""
    assert addon.post("/addon/v1/homepage").status_code == 401


SERVICE_ACCOUNT = "service-42@gcp-sa-gsuiteaddons.iam.gserviceaccount.com"
PUBLIC_URL = "https://postdesk.example.com"


def _http_runtime_call(addon, route: str, system: str | None, user: str | None, **event: Any):
    """A request as Google's HTTP runtime sends it: its system token, the user's in the event."""
    authorization = {"userIdToken": user} if user is not None else {}
    return addon.post(route, token=system, postdesk=None, authorizationEventObject=authorization, **event)


def test_the_http_runtime_gets_in_with_its_system_token_and_the_users_token(addon, app, keys, session):
    app.config.update(
        ADDON_PUBLIC_URL=PUBLIC_URL + "/",
        ADDON_SERVICE_ACCOUNT=SERVICE_ACCOUNT,
        ADDON_CLIENT_ID=f"other-project.apps.googleusercontent.com, {CLIENT_ID}",
    )
    ticket = session.scalar(select(Ticket).where(Ticket.subject == "Cannot log in"))
    system = keys.token(SERVICE_ACCOUNT, aud=PUBLIC_URL + "/addon/v1/message")
    shown = _http_runtime_call(
        addon,
        "/addon/v1/message",
        system,
        keys.token("bob@example.com"),
        gmail={"threadId": ticket.gmail_thread_id},
    )
    assert shown.status_code == 200, shown.get_data(as_text=True)
    card = cards.cards_in(shown.get_json())[0]
    assert card["header"]["title"] == "#1 Cannot log in"
    functions = {b["onClick"]["action"]["function"] for b in _buttons(card)}
    assert functions == {PUBLIC_URL + "/addon/v1/action"}  # buttons call the backend, not the shim
    common = {"parameters": {"do": "assign_me", "ticket": str(ticket.id)}, "userLocale": "en"}
    clicked = _http_runtime_call(
        addon,
        "/addon/v1/action",
        keys.token(SERVICE_ACCOUNT, aud=PUBLIC_URL + "/addon/v1/action"),
        keys.token("bob@example.com"),
        commonEventObject=common,
    )
    assert clicked.status_code == 200
    session.refresh(ticket)
    bob = session.scalar(select(Agent).where(Agent.email == "bob@example.com"))
    assert ticket.assignee_id == bob.id and _last_event(session, ticket).actor_agent_id == bob.id


@pytest.mark.parametrize(
    "kind",
    [
        "system_token_for_another_route",
        "another_service_account",
        "no_user_token",
        "forged_user_token",
        "user_token_for_the_url",
        "users_own_token_for_the_url",
        "http_runtime_not_configured",
        "expired_system_token",
    ],
)
def test_the_http_runtime_is_refused_unless_both_tokens_check_out(addon, app, keys, session, kind):
    app.config.update(ADDON_PUBLIC_URL=PUBLIC_URL, ADDON_SERVICE_ACCOUNT=SERVICE_ACCOUNT)
    route = "/addon/v1/homepage"
    url = PUBLIC_URL + route
    now = int(datetime.now(UTC).timestamp())
    system, user = keys.token(SERVICE_ACCOUNT, aud=url), keys.token("anna@example.com")
    if kind == "system_token_for_another_route":
        system = keys.token(SERVICE_ACCOUNT, aud=PUBLIC_URL + "/addon/v1/action")
    elif kind == "another_service_account":
        system = keys.token("mallory@gcp-sa-gsuiteaddons.iam.gserviceaccount.com", aud=url)
    elif kind == "no_user_token":
        user = None
    elif kind == "forged_user_token":
        user = keys.token("anna@example.com", forged=True)
    elif kind == "user_token_for_the_url":
        user = keys.token("anna@example.com", aud=url)
    elif kind == "users_own_token_for_the_url":
        system = keys.token("anna@example.com", aud=url)
    elif kind == "http_runtime_not_configured":
        app.config["ADDON_SERVICE_ACCOUNT"] = ""
    elif kind == "expired_system_token":
        system = keys.token(SERVICE_ACCOUNT, aud=url, iat=now - 7200, exp=now - 3600)
    response = _http_runtime_call(addon, route, system, user)
    assert response.status_code == 401, kind
    assert "Cannot log in" not in response.get_data(as_text=True)


def test_the_message_card_shows_the_ticket_and_records_the_view(addon, session):
    response = addon.message("<alice-1@customer.test>")
    assert response.status_code == 200
    card = cards.cards_in(response.get_json())[0]
    text = strings(card)
    assert card["header"]["title"] == "#1 Cannot log in"
    assert "alice@customer.test" in text and "Assign to me" in text and "On time" in text
    bob_sees = strings(
        cards.cards_in(addon.message("<alice-1@customer.test>", "bob@example.com").get_json())[0]
    )
    assert "Also looked at by Anna" in bob_sees
    assert {v.agent_id for v in session.scalars(select(TicketView))} == {
        session.scalar(select(Agent.id).where(Agent.email == e))
        for e in ("anna@example.com", "bob@example.com")
    }


def test_an_agent_of_one_mailbox_gets_nothing_of_another(addon, session):
    sales_ticket = session.scalar(select(Ticket).where(Ticket.subject == "Price list"))
    before = (sales_ticket.assignee_id, sales_ticket.status)
    response = addon.message("<dan-1@customer.test>", "anna@example.com")
    assert response.status_code == 403
    assert "Price list" not in response.get_data(as_text=True) and "dan@" not in response.get_data(
        as_text=True
    )
    for do in ("open_ticket", "assign_me", "set_status"):
        denied = addon.act(do, ticket=sales_ticket.id, status="solved")
        assert denied.status_code == 403 and "Price list" not in denied.get_data(as_text=True)
    session.refresh(sales_ticket)
    assert (sales_ticket.assignee_id, sales_ticket.status) == before
    found = addon.act("find", form={"number": {"stringInputs": {"value": ["1"]}}})  # #1 exists in both
    assert "Cannot log in" in found.get_data(as_text=True) and "Price list" not in found.get_data(
        as_text=True
    )
    carol = addon.post("/addon/v1/homepage", "carol@example.com").get_data(as_text=True)
    assert "Cannot log in" not in carol


def _ticket(session) -> Ticket:
    ticket = session.scalar(select(Ticket).where(Ticket.subject == "Cannot log in"))
    session.refresh(ticket)
    return ticket


def _buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        button
        for section in card["sections"]
        for widget in section["widgets"]
        for button in widget.get("buttonList", {}).get("buttons", [])
    ]


def _last_event(session, ticket: Ticket) -> Event:
    return session.scalars(
        select(Event).where(Event.ticket_id == ticket.id).order_by(Event.id.desc())
    ).first()


def test_each_card_action_changes_the_ticket_with_an_event_naming_the_agent(addon, session):
    anna = session.scalar(select(Agent).where(Agent.email == "anna@example.com"))
    bob = session.scalar(select(Agent).where(Agent.email == "bob@example.com"))
    ticket = _ticket(session)
    steps: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
        ("assign_me", {}, {}, "assigned"),
        ("assign", {"assignee": {"stringInputs": {"value": [str(bob.id)]}}}, {}, "assigned"),
        ("set_priority", {"priority": {"stringInputs": {"value": ["urgent"]}}}, {}, "priority_changed"),
        ("set_status", {}, {"status": "pending"}, "status_changed"),
        ("add_tag", {"tag": {"stringInputs": {"value": ["billing"]}}}, {}, "tag_added"),
        ("remove_tag", {}, {"tag": "billing"}, "tag_removed"),
        ("add_note", {"note": {"stringInputs": {"value": ["Called her back"]}}}, {}, "note_added"),
        (
            "snooze",
            {"snooze_until": {"dateTimeInput": {"msSinceEpoch": _ms(timedelta(days=1))}}},
            {},
            "snoozed",
        ),
        ("unsnooze", {}, {}, "unsnoozed"),
        ("set_status", {}, {"status": "solved"}, "status_changed"),
    ]
    for do, form, parameters, kind in steps:
        response = addon.act(do, form=form, ticket=ticket.id, **parameters)
        assert response.status_code == 200, (do, response.get_data(as_text=True))
        assert response.get_json()["renderActions"]["action"]["notification"]["text"] == "Done"
        event = _last_event(session, ticket)
        assert (event.kind, event.actor_kind, event.actor_agent_id) == (kind, "agent", anna.id), do
    ticket = _ticket(session)
    assert (ticket.assignee_id, ticket.priority, ticket.status, ticket.snoozed_until) == (
        bob.id,
        "urgent",
        "solved",
        None,
    )
    assert [t.name for t in ticket.tags] == []
    note = session.scalar(select(Note))
    assert (note.body, note.author_id) == ("Called her back", anna.id)


def _ms(delta: timedelta) -> int:
    return int((datetime.now(UTC) + delta).timestamp() * 1000)


@pytest.mark.parametrize(
    ("do", "form", "parameters", "problem"),
    [
        ("assign", {"assignee": {"stringInputs": {"value": ["999"]}}}, {}, "does not work in this mailbox"),
        ("assign", {}, {}, "choose an agent"),
        ("set_priority", {"priority": {"stringInputs": {"value": ["whenever"]}}}, {}, "choose a priority"),
        ("set_status", {}, {"status": "deleted"}, "unknown status"),
        ("snooze", {"snooze_until": {"dateTimeInput": {"msSinceEpoch": 1}}}, {}, "in the future"),
        ("snooze", {"snooze_until": {"dateTimeInput": {"msSinceEpoch": 10**18}}}, {}, "cannot be used"),
        ("add_tag", {"tag": {"stringInputs": {"value": ["x" * 101]}}}, {}, "1 to 100"),
        ("add_note", {"note": {"stringInputs": {"value": ["   "]}}}, {}, "1 to 20,000"),
        ("reply", {"template": {"stringInputs": {"value": ["No such template"]}}}, {}, "no template"),
        ("teleport", {}, {}, "unknown action"),
    ],
)
def test_bad_input_on_a_card_is_a_clear_message_and_changes_nothing(
    addon, session, do, form, parameters, problem
):
    ticket = _ticket(session)
    before = session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1))
    response = addon.act(do, form=form, ticket=ticket.id, **parameters)
    assert response.status_code == 200
    assert problem in response.get_json()["renderActions"]["action"]["notification"]["text"]
    assert session.scalar(select(Event.id).order_by(Event.id.desc()).limit(1)) == before


def test_reply_with_a_template_goes_once_through_the_outbox_in_the_thread(addon, session, desk):
    ticket = _ticket(session)
    form = {"template": {"stringInputs": {"value": ["Acknowledgement"]}}}
    first = addon.act("reply", form=form, ticket=ticket.id)
    again = addon.act("reply", form=form, ticket=ticket.id)  # a double click
    assert first.get_json()["renderActions"]["action"]["notification"]["text"] == "The reply is on its way"
    assert again.status_code == 200
    replies = session.scalars(select(Outbox).where(Outbox.kind == "reply")).all()
    assert len(replies) == 1
    assert replies[0].to == "alice@customer.test" and replies[0].subject == "Re: Cannot log in"
    assert replies[0].headers["gmail_thread_id"] == ticket.gmail_thread_id and "#1" in replies[0].body_text
    event = session.scalar(select(Event).where(Event.kind == "reply_queued"))
    assert event.actor_agent_id == session.scalar(select(Agent.id).where(Agent.email == "anna@example.com"))


def test_homepage_compose_and_not_a_ticket_cards(addon, session, desk, keys):
    anna = session.scalar(select(Agent).where(Agent.email == "anna@example.com"))
    addon.act("assign_me", ticket=_ticket(session).id)
    home = addon.post("/addon/v1/homepage")
    assert home.status_code == 200
    text = strings(home.get_json())
    assert "My queue" in text and "#1 Cannot log in" in text and "Find ticket by number" in text
    russian = addon.post(
        "/addon/v1/homepage", commonEventObject={"userLocale": "ru-RU", "timeZone": {"id": "UTC"}}
    )
    assert "Мои заявки" in strings(russian.get_json())

    compose = addon.post("/addon/v1/compose", gmail={"threadId": _ticket(session).gmail_thread_id})
    assert "Acknowledgement" in strings(compose.get_json())
    inserted = addon.act(
        "insert_template",
        form={"template": {"stringInputs": {"value": ["Acknowledgement"]}}},
        ticket=_ticket(session).id,
    ).get_json()
    body = inserted["renderActions"]["hostAppAction"]["gmailAction"]["updateDraftActionMarkup"]["updateBody"]
    assert "ticket #1" in body["insertContents"][0]["content"] and body["type"] == "IN_PLACE_INSERT"

    # An agent's own thread: not a ticket until someone creates it (or a customer answers).
    client = desk.clients[MAILBOX]
    raw = make_email(
        "Our offer",
        "Dear Erin, ...",
        sender=MAILBOX,
        to="erin@partner.test",
        message_id="<offer-1@example.com>",
    )
    client.send(raw, None)
    desk.cycle(MAILBOX)
    own = addon.message("<offer-1@example.com>")
    assert "Not a ticket yet" in strings(own.get_json())
    create = _buttons(cards.cards_in(own.get_json())[0])[0]["onClick"]["action"]["parameters"]
    params = {p["key"]: p["value"] for p in create}
    created = addon.act("create_ticket", mailbox=params["mailbox"], thread=params["thread"])
    ticket = session.scalar(select(Ticket).where(Ticket.subject == "Our offer"))
    assert ticket.customer.email == "erin@partner.test" and created.status_code == 200
    assert _last_event(session, ticket).actor_agent_id == anna.id
    assert "#2 Our offer" in strings(addon.message("<offer-1@example.com>").get_json())


def test_the_message_card_takes_at_most_19_sql_statements(addon, app, session):
    from addon_fixtures import solved_ticket

    box = session.scalar(select(Ticket.mailbox_id).where(Ticket.subject == "Cannot log in"))
    solved_ticket(session, box, "Login fails", "I cannot log in to my account", "Reset the password, please.")
    engine = get_engine(app)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    addon.message("<alice-1@customer.test>", "bob@example.com")  # warm: the view row exists
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        response = addon.message("<alice-1@customer.test>", "bob@example.com")
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200
    assert "Reset the password" in json.dumps(response.get_json())  # similar solved tickets were read
    # 15 for the ticket, 4 for similar solved tickets: the question, stem counts, window, candidates.
    assert len(statements) <= 19, "\n".join(statements)


def test_hostile_text_is_escaped_in_cards(addon, session, deliver, desk):
    deliver(
        make_email(
            '<a href="https://evil.test">Click</a> <b>me</b>',
            "x",
            sender="eve@customer.test",
            message_id="<eve@customer.test>",
        )
    )
    desk.cycle(MAILBOX)
    text = strings(addon.message("<eve@customer.test>").get_json())
    assert '<a href="https://evil.test">' not in text and "&lt;a href=" in text


GOLDEN = Path(__file__).resolve().parent.parent / "build" / "addon-cards"


def test_golden_answers_for_the_shim(addon, session, desk):
    """The backend's real answers, written for addon/test (node) to drive the Apps Script shim with."""
    ticket = _ticket(session)
    answers = {
        "homepage": addon.post("/addon/v1/homepage"),
        "message": addon.message("<alice-1@customer.test>"),
        "no_access": addon.message("<dan-1@customer.test>"),
        "compose": addon.post("/addon/v1/compose", gmail={"threadId": ticket.gmail_thread_id}),
        "action_update": addon.act("assign_me", ticket=ticket.id),
        "action_push": addon.act("open_ticket", ticket=ticket.id),
        "action_notify": addon.act("set_status", ticket=ticket.id, status="deleted"),
        "action_settings": addon.act("settings"),
        "insert_template": addon.act(
            "insert_template",
            form={"template": {"stringInputs": {"value": ["Acknowledgement"]}}},
            ticket=ticket.id,
        ),
    }
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name, response in answers.items():
        assert response.status_code in (200, 403), name
        (GOLDEN / f"{name}.json").write_text(
            json.dumps(
                {"status": response.status_code, "body": response.get_json()}, ensure_ascii=False, indent=1
            ),
            encoding="utf-8",
        )
    assert len(list(GOLDEN.glob("*.json"))) >= len(answers)


def test_the_same_template_again_after_the_agents_own_reply_is_a_new_decision(addon, session, desk):
    """Anna answers with a template; the answer goes out and comes back through sync. With no new
    mail from the customer she sends the same template again (a follow-up): it goes out too. Before,
    the Outbox key named only the customer's last message and the second answer was dropped as a
    duplicate."""
    ticket = _ticket(session)
    form = {"template": {"stringInputs": {"value": ["Acknowledgement"]}}}
    addon.act("reply", form=form, ticket=ticket.id)
    desk.cycle(MAILBOX)  # sent
    desk.cycle(MAILBOX)  # and filed back as the agents' reply
    again = addon.act("reply", form=form, ticket=ticket.id)
    assert again.get_json()["renderActions"]["action"]["notification"]["text"] == "The reply is on its way"
    double = addon.act("reply", form=form, ticket=ticket.id)
    assert (
        double.get_json()["renderActions"]["action"]["notification"]["text"] == "This reply was already sent"
    )
    assert len(session.scalars(select(Outbox).where(Outbox.kind == "reply")).all()) == 2


def test_a_good_answer_becomes_the_teams_template_from_the_card(addon, session, desk, deliver):
    """Anna (admin) answered in Gmail; her answer, without the quoted customer mail, becomes a template
    in the ticket's language. Bob (an agent) is not offered the button and is refused if he tries."""
    from server.base.models import Template

    answer = (
        "Hello Alice,\n\nclear the cookies for our site and sign in again; {{ braces }} stay text.\n\n"
        "On Mon, 23 Nov 2026 at 10:00, Alice <alice@customer.test> wrote:\n> Help!\n"
    )
    deliver(make_email("Re: Cannot log in", answer, sender=MAILBOX, to="alice@customer.test",
                       in_reply_to="<alice-1@customer.test>"))  # fmt: skip
    desk.cycle(MAILBOX)
    ticket = _ticket(session)
    card = strings(addon.act("open_ticket", ticket=ticket.id).get_json())
    bob_card = strings(addon.act("open_ticket", "bob@example.com", ticket=ticket.id).get_json())

    nameless = addon.act("save_reply_template", ticket=ticket.id)
    saved = addon.act("save_reply_template", form={"template_name": {"stringInputs": {"value": ["Cookies"]}}},
                      ticket=ticket.id)  # fmt: skip
    refused = addon.act("save_reply_template", "bob@example.com",
                        form={"template_name": {"stringInputs": {"value": ["Mine"]}}}, ticket=ticket.id)  # fmt: skip

    assert "Save my last reply as a template" in card and "Save my last reply as a template" not in bob_card
    assert "Give the template a name" in strings(nameless.get_json())
    assert (
        saved.get_json()["renderActions"]["action"]["notification"]["text"] == "Saved as the template Cookies"
    )
    assert "Only the mailbox's admins change its templates" in strings(refused.get_json())
    template = session.scalar(select(Template).where(Template.name == "Cookies"))
    assert template.locale == "en" and "clear the cookies" in template.body_text
    assert "wrote:" not in template.body_text and "> Help!" not in template.body_text
    from server.services import template_sets

    rendered = template_sets.preview(session, ticket.mailbox, template_sets.Draft(template.subject, template.body_text),
                                     "en", ticket=ticket, agent=None)  # fmt: skip
    assert "{{ braces }} stay text" in rendered.text
    assert (
        session.scalar(select(Event).where(Event.kind == "template_changed")).after["template"] == "Cookies"
    )


def test_the_card_says_how_urgent_the_customer_s_last_message_reads_and_why(addon, session, desk, deliver):
    from helpers import make_email

    deliver(make_email("Checkout broken", "<b>Our checkout is down</b>, we are losing sales. Fix it ASAP!!"))
    deliver(make_email("Invoices", "Where do I find them?", sender="zoe@customer.test"))
    desk.cycle()
    ticket = session.scalar(select(Ticket).where(Ticket.subject == "Checkout broken"))
    text = json.dumps(addon.act("open_ticket", ticket=ticket.id).get_json(), ensure_ascii=False)
    assert "The customer's last message" in text and "Urgent" in text and "negative tone" in text
    assert "is down" in text and "losing sales" in text and "<b>Our" not in text  # the customer's words
    quiet = session.scalar(select(Ticket).where(Ticket.subject == "Invoices"))
    text = json.dumps(addon.act("open_ticket", ticket=quiet.id).get_json(), ensure_ascii=False)
    assert "Normal urgency" in text and "neutral tone" in text and "Why:" not in text
