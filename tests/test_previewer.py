"""The card previewer (/dev/addon): demo mode and this machine only, demo tokens trusted only by the
demo, cards rendered with nothing but Gmail's card formatting, any JSON answered without a crash."""

from __future__ import annotations

import json
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from addon_support import GoogleKeys
from flask import Flask
from google.auth import jwt
from helpers import MAILBOX, make_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from server import create_app
from server.base.db import get_engine
from server.base.models import Agent
from server.faces.addon.preview import DEMO_CLIENT_ID


@pytest.fixture
def demo_app(database_url: str, tmp_path) -> Iterator[Flask]:
    """A demo-mode app on the same database as ``app`` (its own instance folder, so its own key)."""
    app = create_app(
        {"TESTING": True, "DEMO": True, "DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "demo")}
    )
    yield app
    get_engine(app).dispose()


@pytest.fixture
def team(app, helpdesk, deliver, session):
    helpdesk.connect(MAILBOX, agents=["anna@example.com", "bob@example.com"])
    deliver(make_email("Cannot log in", "Help!", sender="alice@customer.test", message_id="<alice-1@x.test>"))
    helpdesk.cycle(MAILBOX)
    return helpdesk


def test_the_previewer_exists_only_in_demo_mode_and_only_for_this_machine(client, demo_app, team):
    assert client.get("/dev/addon").status_code == 404  # not demo mode: no previewer at all
    assert client.post("/dev/addon/token", json={"agent": "anna@example.com"}).status_code == 404
    demo = demo_app.test_client()
    page = demo.get("/dev/addon")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "anna@example.com" in text and "#1 Cannot log in" in text
    refused = [
        demo.get("/dev/addon", environ_base={"REMOTE_ADDR": "10.1.2.3"}),  # another machine
        demo.get("/dev/addon", headers={"Host": "postdesk.example.com"}),  # through a proxy
        demo.get("/dev/addon", environ_overrides={"SERVER_NAME": "0.0.0.0"}),  # bound to every interface
        demo.post(
            "/dev/addon/token", json={"agent": "anna@example.com"}, environ_base={"REMOTE_ADDR": "192.0.2.7"}
        ),
    ]
    assert [r.status_code for r in refused] == [404, 404, 404, 404]
    assert demo.get("/dev/addon", headers={"Host": "[::1]:5000"}).status_code == 200


def test_a_demo_token_wants_json_and_an_active_agent(demo_app, team, session):
    demo = demo_app.test_client()
    assert demo.post("/dev/addon/token", data={"agent": "anna@example.com"}).status_code == 400
    assert demo.post("/dev/addon/token", json=["anna@example.com"]).status_code == 400
    assert demo.post("/dev/addon/token", json={"agent": "mallory@example.com"}).status_code == 404
    session.scalar(select(Agent).where(Agent.email == "bob@example.com")).active = False
    session.commit()
    assert demo.post("/dev/addon/token", json={"agent": "bob@example.com"}).status_code == 404
    issued = demo.post("/dev/addon/token", json={"agent": " Anna@Example.com "})
    claims = jwt.decode(issued.get_json()["token"], verify=False)
    assert (claims["aud"], claims["email"], claims["email_verified"]) == (
        DEMO_CLIENT_ID,  # the demo stands in for the add-on's client id
        "anna@example.com",
        True,
    )


def test_demo_tokens_open_the_add_on_only_where_the_demo_key_is_trusted(app, demo_app, team, tmp_path):
    demo = demo_app.test_client()
    token = demo.post("/dev/addon/token", json={"agent": "anna@example.com"}).get_json()["token"]
    event = {"commonEventObject": {"userLocale": "en"}, "postdesk": {"rfc822MessageId": "<alice-1@x.test>"}}
    headers = {"Authorization": f"Bearer {token}"}
    shown = demo.post("/addon/v1/message", json=event, headers=headers)
    assert shown.status_code == 200
    assert shown.get_json()["action"]["navigations"][0]["pushCard"]["header"]["title"] == "#1 Cannot log in"
    # Another demo process on the same instance folder shares the key (gunicorn's workers do).
    twin = create_app(
        {
            "TESTING": True,
            "DEMO": True,
            "DATABASE_URL": demo_app.config["DATABASE_URL"],
            "INSTANCE_PATH": demo_app.instance_path,
        }
    )
    assert twin.test_client().post("/addon/v1/message", json=event, headers=headers).status_code == 200
    get_engine(twin).dispose()
    # Outside demo mode the same token is refused, even with the demo's client id and certs URL.
    keys = GoogleKeys()
    try:
        app.config.update(ADDON_CLIENT_ID=demo_app.config["ADDON_CLIENT_ID"], ADDON_CERTS_URL=keys.url)
        refused = [app.test_client().post("/addon/v1/message", json=event, headers=headers)]
        app.config["ADDON_CERTS_URL"] = demo_app.config["ADDON_CERTS_URL"]  # the .invalid URL
        refused.append(app.test_client().post("/addon/v1/message", json=event, headers=headers))
    finally:
        keys.close()
    assert [r.status_code for r in refused] == [401, 401]
    assert all("Cannot log in" not in r.get_data(as_text=True) for r in refused)


class _Parsed(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _render(demo_app: Flask, card: Any):
    return demo_app.test_client().post("/dev/addon/render", json={"card": card})


def test_cards_render_with_only_the_card_formatting(demo_app):
    hostile = (
        "<b>bold</b> <script>alert(1)</script><img src=x onerror=alert(2)><a href='javascript:alert(3)'>x</a>"
    )
    action = {"function": "onPostdeskAction", "parameters": [{"key": "do", "value": "x'</script><b>"}]}
    card = {
        "header": {"title": "<i>#1</i> <style>*{}</style>", "subtitle": "a & b"},
        "sections": [
            {
                "header": "Status",
                "widgets": [
                    {"textParagraph": {"text": hostile}},
                    {
                        "decoratedText": {
                            "text": '<font color="#d93025">Overdue</font>',
                            "onClick": {"action": action},
                        }
                    },
                    {
                        "buttonList": {
                            "buttons": [{"text": "Solve", "type": "FILLED", "onClick": {"action": action}}]
                        }
                    },
                    {
                        "selectionInput": {
                            "name": "p",
                            "label": "P",
                            "type": "DROPDOWN",
                            "items": [{"text": "<b>Hi</b>", "value": 'a"b', "selected": True}],
                        }
                    },
                    {"textInput": {"name": "note", "label": "Note", "type": "MULTIPLE_LINE"}},
                    {
                        "dateTimePicker": {
                            "name": "when",
                            "label": "When",
                            "type": "DATE_AND_TIME",
                            "timezoneOffsetDate": 180,
                        }
                    },
                    {"somethingNew": {"x": "<script>"}},
                ],
            }
        ],
    }
    response = _render(demo_app, card)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<b>bold</b>" in html and "<i>#1</i>" in html and '<font color="#d93025">Overdue</font>' in html
    for bad in ("<script", "onerror", "javascript:", "<style", "<img"):
        assert bad not in html, bad
    parsed = _Parsed()
    parsed.feed(html)
    clickable = [attrs for tag, attrs in parsed.tags if "data-action" in attrs]
    assert len(clickable) == 2 and all(json.loads(a["data-action"] or "") == action for a in clickable)
    inputs = {attrs["data-input"]: attrs for tag, attrs in parsed.tags if "data-input" in attrs}
    assert set(inputs) == {"p", "note", "when"} and inputs["when"]["data-offset-minutes"] == "180"
    assert ("option", {"value": 'a"b', "selected": None}) in parsed.tags


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
_keys = st.sampled_from(
    ["header", "sections", "widgets", "buttonList", "buttons", "items", "text", "onClick"]
)
_cardish = st.recursive(
    _json,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(card=_cardish)
def test_any_json_gets_a_card_or_a_clear_400(demo_app, card):
    response = _render(demo_app, card)
    assert response.status_code in (200, 400), response.get_data(as_text=True)[:300]
    if response.status_code == 400:
        assert response.get_json()["error"]["message"]
