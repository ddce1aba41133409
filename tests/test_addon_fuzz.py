"""A signed-in agent sending nonsense to any add-on route or button gets a 400 or an error card, never
a 500: generated event objects, and real ones with any part swapped for something of another shape."""

from __future__ import annotations

from typing import Any

import pytest
from helpers import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from server.base.models import Ticket
from server.faces.addon.clicks import CLICKS

ROUTES = ("/addon/v1/homepage", "/addon/v1/message", "/addon/v1/compose", "/addon/v1/action")
FUZZ = settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "1", "²", "9" * 25, "-1", "1e400", "<x@y>", "#42", "urgent", "solved", "\x00"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
#: Inputs of every kind a card can send, under every name a card uses.
FORM_NAMES = ("assignee", "priority", "tag", "note", "template", "number", "snooze_until")
form_input = st.one_of(
    st.fixed_dictionaries({"stringInputs": st.fixed_dictionaries({"value": st.lists(scalars, max_size=3)})}),
    st.fixed_dictionaries({"dateTimeInput": st.fixed_dictionaries({"msSinceEpoch": scalars})}),
    st.fixed_dictionaries({"dateInput": st.fixed_dictionaries({"msSinceEpoch": scalars})}),
    json_values,
)


def _event(do: str, ticket_id: int, parameters: dict[str, Any], form: dict[str, Any]) -> dict[str, Any]:
    return {
        "commonEventObject": {
            "userLocale": "ru",
            "timeZone": {"id": "Europe/Moscow"},
            "parameters": {"do": do, "ticket": str(ticket_id)} | parameters,
            "formInputs": form,
        },
        "gmail": {"threadId": "t1", "messageId": "m1"},
        "postdesk": {"rfc822MessageId": "<alice-1@customer.test>"},
    }


def _mutate(event: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    """The event with the value at ``path`` (as far as it leads) replaced by ``value``."""
    if not path:
        return value if isinstance(value, dict) else {"replaced": value}
    node: Any = event
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            break
        node = node[key]
    node[path[-1] if isinstance(node, dict) else "x"] = value
    return event


PATHS = st.sampled_from(
    [
        [],
        ["commonEventObject"],
        ["commonEventObject", "parameters"],
        ["commonEventObject", "parameters", "ticket"],
        ["commonEventObject", "parameters", "do"],
        ["commonEventObject", "formInputs"],
        ["commonEventObject", "timeZone"],
        ["commonEventObject", "timeZone", "id"],
        ["commonEventObject", "userLocale"],
        ["gmail"],
        ["gmail", "threadId"],
        ["postdesk"],
        ["postdesk", "rfc822MessageId"],
        ["parameters"],
    ]
)


def _ticket_id(session) -> int:
    return session.scalar(select(Ticket.id).where(Ticket.subject == "Cannot log in"))


def _no_server_error(response) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400:
        assert response.status_code in (400, 403), response.status_code


@pytest.mark.slow
@FUZZ
@given(
    route=st.sampled_from(ROUTES),
    do=st.sampled_from(sorted(CLICKS)),
    parameters=st.dictionaries(
        st.sampled_from(["status", "tag", "mailbox", "thread", "queue", "page", "ticket"]),
        scalars,
        max_size=3,
    ),
    form=st.dictionaries(st.sampled_from(FORM_NAMES), form_input, max_size=3),
    path=PATHS,
    replacement=json_values,
)
def test_mutated_events_with_a_valid_token_never_answer_500(
    addon, session, route, do, parameters, form, path, replacement
):
    event = _event(do, _ticket_id(session), {k: str(v) for k, v in parameters.items()}, form)
    event = _mutate(event, path, replacement)
    response = addon.client.post(
        route, json=event, headers={"Authorization": f"Bearer {addon.keys.token('anna@example.com')}"}
    )
    _no_server_error(response)
    session.rollback()


@pytest.mark.slow
@FUZZ
@given(route=st.sampled_from(ROUTES), body=json_values)
def test_any_json_body_with_a_valid_token_never_answers_500(addon, route, body):
    response = addon.client.post(
        route, json=body, headers={"Authorization": f"Bearer {addon.keys.token('anna@example.com')}"}
    )
    _no_server_error(response)


@pytest.mark.parametrize(
    "event",
    [
        {"commonEventObject": "not an object"},
        {"commonEventObject": {"parameters": {"do": "set_priority", "ticket": "1"}, "formInputs": []}},
        {"commonEventObject": {"parameters": {"do": "add_tag", "ticket": "1"},
                               "formInputs": {"tag": {"dateTimeInput": {"msSinceEpoch": 5}}}}},
        {"commonEventObject": {"parameters": {"do": "snooze", "ticket": "1"},
                               "formInputs": {"snooze_until": {"dateTimeInput": "tomorrow"}}}},
        {"commonEventObject": {"parameters": {"do": "note", "ticket": "1"},
                               "formInputs": {"note": {"stringInputs": "text"}}}},
        {"commonEventObject": {"parameters": {"do": "open_ticket", "ticket": "99999999999999999999999"}}},
        {"commonEventObject": {"parameters": {"do": "open_ticket", "ticket": "²"}}},
        {"commonEventObject": {"parameters": {"do": "find"}, "formInputs": {"number": {"stringInputs": {"value": ["#99999999999999999999"]}}}}},
        {"commonEventObject": {"timeZone": "Europe/Moscow", "userLocale": ["ru"]}, "postdesk": [], "gmail": "x"},
    ],
)  # fmt: skip
def test_the_events_that_answered_500_before_answer_clearly_now(addon, event):
    token = addon.keys.token("anna@example.com")
    for route in ROUTES:
        response = addon.client.post(route, json=event, headers={"Authorization": f"Bearer {token}"})
        _no_server_error(response)
