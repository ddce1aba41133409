"""YAML and JSON that a person wrote (rules, SLA policies, calendars, settings files) are read by one
loader: whatever the text, the answer is data or a problem with its line — never a crash.

The story that found it: an admin typed ``closed: [2026-13-45]`` into the SLA policies and got a 500,
because PyYAML's safe loader turns anything shaped like a date into a ``date`` and raises ValueError
(not a YAMLError) when it is not one.
"""

from __future__ import annotations

import html

import pytest
from helpers import MAILBOX
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_support import csrf_token, sign_in

from rules.documents import DocumentError, load_document

NOT_A_DATE_POLICY = """policies:
  - name: Office hours
    default: true
    calendar:
      timezone: Europe/Moscow
      hours: always
      closed: [2026-13-45]
    targets: {normal: {first_response: 60, resolution: 480}}
"""

NOT_A_DATE_RULE = """rules:
  - name: Not a date
    trigger: ticket_created
    conditions: {field: subject, op: contains, value: 2026-13-45}
    actions: [{add_tag: 2026-02-30}]
"""


def test_date_like_values_stay_text_and_real_dates_are_still_read_as_dates_by_the_calendar():
    data = load_document("closed: [2026-13-45, 2026-12-31]\nwhen: 2026-01-01 10:00:00\n")
    assert data == {"closed": ["2026-13-45", "2026-12-31"], "when": "2026-01-01 10:00:00"}

    from server.services.sla import CalendarError, calendar_from_config

    with pytest.raises(CalendarError) as refused:
        calendar_from_config({"timezone": "UTC", "hours": "always", "closed": data["closed"]})
    assert "'2026-13-45' is not a date" in str(refused.value)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("rules: [", 1),
        ("a: 1\nb: [1, 2\nc: 3\n", 3),
        ('{"a": 1,\n "b": }', 2),
        ("a: !!python/object:os.system {}\n", 1),
        ("a: !!binary 'not base64 at all'\n", 1),
        ("[" * 5000, None),
        ("a: &x [1]\nb: *y\n", 2),
        ("? [1, 2]\n: 3\n", 1),
    ],
)
def test_any_broken_text_is_a_problem_with_its_line(text, line):
    with pytest.raises(DocumentError) as refused:
        load_document(text)
    assert refused.value.line == line
    if line is not None:
        assert str(refused.value).startswith(f"line {line}")


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_loader_never_raises_anything_but_a_document_error(text):
    try:
        load_document(text)
    except DocumentError as problem:
        assert str(problem)


def _admin(web, google):
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    return client, csrf_token(client)


def test_an_admin_who_types_a_date_that_is_not_a_date_gets_a_clear_problem_not_a_500(web, google, team):
    client, token = _admin(web, google)
    policies = client.post(
        f"/settings/sla?mailbox={team['mailbox']}", data={"text": NOT_A_DATE_POLICY, "csrf_token": token}
    )
    rules = client.post(
        f"/settings/rules?mailbox={team['mailbox']}", data={"text": NOT_A_DATE_RULE, "csrf_token": token}
    )

    assert policies.status_code == 400
    assert "policies[0].calendar.closed[0]: '2026-13-45' is not a date" in html.unescape(
        policies.get_data(as_text=True)
    )
    # As text, these are a fine condition value and a fine tag: the rules are saved.
    assert rules.status_code == 302


@pytest.fixture
def connected(runner, gmail):
    result = runner.invoke(args=["mailbox", "add", MAILBOX, "--sandbox", gmail.url])
    assert result.exit_code == 0, result.output
    return runner


def test_the_same_text_through_the_cli_gives_the_same_problem(connected, tmp_path):
    policies = tmp_path / "policies.yaml"
    policies.write_text(NOT_A_DATE_POLICY, encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text("rules:\n  - name: x\n    trigger: [\n", encoding="utf-8")

    imported = connected.invoke(args=["sla", "policy-import", str(policies), "--mailbox", MAILBOX])
    rules = connected.invoke(args=["rules", "import", str(broken), "--mailbox", MAILBOX])
    calendar = connected.invoke(
        args=["sla", "due", "--calendar", str(broken), "--start", "2026-12-01T10:00", "--minutes", "5"]
    )

    assert imported.exit_code == 2 and "Traceback" not in imported.output
    assert "policies[0].calendar.closed[0]: '2026-13-45' is not a date" in imported.output
    assert rules.exit_code == 2 and "line 4" in rules.output
    assert calendar.exit_code == 2 and "line 4" in calendar.output
