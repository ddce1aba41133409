"""A signed-in admin sending nonsense to any form of the settings and reports pages gets a page with a
clear problem (4xx) or a correct result, never a 500.

The routes are read from the app itself, so a new POST route under /settings or /reports is fuzzed
the day it is added. Field names come from the pages' own forms (every ``name="…"`` the settings
pages render) plus names no form has; values are text of any shape — YAML and JSON fragments,
date-like values that are not dates, numbers out of range, NUL characters, very long text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from helpers import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_support import csrf_token, sign_in

FUZZ = settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PREFIXES = ("/settings", "/reports")


def _post_routes(app: Any) -> list[str]:
    return sorted(
        {
            rule.rule
            for rule in app.url_map.iter_rules()
            if "POST" in rule.methods and rule.rule.startswith(PREFIXES)
        }
    )


def _page_routes(app: Any) -> list[str]:
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods and rule.rule.startswith(PREFIXES) and "<" not in rule.rule
    )


FRAGMENTS = st.sampled_from(
    [
        "",
        "2026-13-45",
        "closed: [2026-13-45]",
        "policies: [{name: x, calendar: {closed: [2026-02-30]}}]",
        "rules: [",
        "rules:\n  - name: a\n    trigger: ticket_created\n    actions: [{add_tag: 2026-13-45}]",
        '{"a": [}',
        "[" * 3000,
        "- &a [*a]",
        "!!python/object:os.system {}",
        "9" * 40,
        "-1",
        "1e400",
        "²",
        "nan",
        "\x00",
        "<script>alert(1)</script>",
        "{{ 7*7 }}{% for x in range(10**9) %}{% endfor %}",
        "x" * 70_000,
        "support@example.com",
        "http://127.0.0.1:9/",
        "on",
    ]
)
#: Text of any shape, and the fragments above alone or joined as lines of one text.
NONSENSE = st.one_of(
    st.text(max_size=40),
    FRAGMENTS,
    st.lists(FRAGMENTS, min_size=2, max_size=4).map("\n".join),
)


#: Every form field name the settings and reports pages render: read once per test process (the
#: pages are the same for each test's team; reading ~20 pages took most of each test's setup).
_NAMES: list[str] = []


@pytest.fixture
def admin(web, google, team):
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    if not _NAMES:
        names: set[str] = set()
        for path in _page_routes(web):
            page = client.get(path, query_string={"mailbox": team["mailbox"]}).get_data(as_text=True)
            names.update(re.findall(r'name="([^"]+)"', page))
        _NAMES.extend(sorted(names - {"csrf_token"}))
    return client, csrf_token(client), _NAMES


_OWN_NAMES: dict[str, list[str]] = {}


def _form_names(client: Any, route: str, team: dict[str, Any], everywhere: list[str]) -> list[str]:
    """The names of the form the route's own page shows (its GET, with the team's ids), else every
    form's names; once per route and test process."""
    if route not in _OWN_NAMES:
        path = _path(route, team, lambda options: options[0])  # the team's own ids
        page = client.get(path, query_string={"mailbox": team["mailbox"]})
        own = set(re.findall(r'name="([^"]+)"', page.get_data(as_text=True))) - {"csrf_token"}
        _OWN_NAMES[route] = sorted(own) if page.status_code == 200 and own else everywhere
    return _OWN_NAMES[route]


def _path(route: str, team: dict[str, Any], choose: Callable[[list[Any]], Any]) -> str:
    ids = {
        "agent_id": team["admin"],
        "mailbox_id": team["mailbox"],
        "rule_id": team["rule"],
        "token_id": team["token"],
        "hook_id": team["webhook"],
    }

    def fill(match: re.Match[str]) -> str:
        converter, name = match[1] or "", match[2]
        if converter.startswith("any("):
            return str(choose(converter[4:-1].replace(" ", "").split(",")))
        return str(choose([ids.get(name, 1), 0, 2**40, ids.get(name, 1) + 1000]))

    return re.sub(r"<(?:([^:>]+):)?([^>]+)>", fill, route)


def test_every_post_route_of_settings_and_reports_is_fuzzed(web):
    routes = _post_routes(web)
    assert "/settings/sla" in routes and "/settings/rules" in routes and len(routes) >= 20
    assert set(routes) == set(ROUTES), "a POST route was added or removed: list it in ROUTES"


ROUTES = [
    "/settings/agents/<int:agent_id>",
    "/settings/agents/<int:agent_id>/reassign",
    "/settings/agents/invite",
    "/settings/api-tokens",
    "/settings/api-tokens/<int:token_id>/revoke",
    "/settings/articles/delete",
    "/settings/articles/edit",
    "/settings/articles/from-template",
    "/settings/articles/from-ticket",
    "/settings/articles/preview",
    "/settings/customers",
    "/settings/mailboxes/<int:mailbox_id>",
    "/settings/mailboxes/<int:mailbox_id>/pause",
    "/settings/mailboxes/<int:mailbox_id>/resume",
    "/settings/mailboxes/<int:mailbox_id>/test",
    "/settings/mailboxes/add",
    "/settings/profile",
    "/settings/reminders",
    "/settings/rules",
    "/settings/rules/<int:rule_id>/<any(up, down, enable, disable):change>",
    "/settings/rules/builder",
    "/settings/rules/dry-run",
    "/settings/signals",
    "/settings/sla",
    "/settings/templates/edit",
    "/settings/templates/preview",
    "/settings/webhooks",
    "/settings/webhooks/<int:hook_id>",
    "/settings/webhooks/<int:hook_id>/delete",
    "/settings/webhooks/<int:hook_id>/test",
]


@pytest.mark.parametrize("route", ROUTES)
@FUZZ
@given(data=st.data())
def test_nonsense_from_a_signed_in_admin_never_gets_a_server_error(web, team, admin, route, data):
    client, token, everywhere = admin
    path = _path(route, team, lambda options: data.draw(st.sampled_from(options)))
    names = _form_names(client, route, team, everywhere)
    fields = data.draw(
        st.dictionaries(
            st.one_of(st.sampled_from(names), st.text(max_size=12)), NONSENSE, max_size=len(names) + 2
        )
    )
    query = data.draw(
        st.sampled_from([{"mailbox": team["mailbox"]}, {}, {"mailbox": "x"}, {"mailbox": 2**40}])
    )

    answer = client.post(path, query_string=query, data={**fields, "csrf_token": token})

    assert answer.status_code < 500, (path, fields, answer.get_data(as_text=True)[:500])


def test_an_id_past_the_databases_integer_names_nothing(web, admin):
    """PostgreSQL refuses a number past its ``integer`` with an error (a 500 the fuzz found there)."""
    client, token, _names = admin
    for path in ("/settings/agents/1099511627776", "/settings/mailboxes/2147483648/pause"):
        assert client.post(path, data={"csrf_token": token}).status_code == 404
    assert client.get("/settings/agents/2147483647").status_code == 404  # the largest id: no such agent
