"""``postdesk rules|templates|outbox``: a bad file is a clear error and changes nothing."""

from __future__ import annotations

import json

import pytest
from helpers import MAILBOX, make_email

GOOD_RULES = """
rules:
  - name: Billing questions go to Anna
    trigger: ticket_created
    conditions:
      any:
        - {field: subject, op: contains, value: invoice}
        - {field: subject, op: contains, value: счёт}
    actions:
      - assign: anna@example.com
      - add_tag: billing
"""


@pytest.fixture
def connected(runner, gmail):
    result = runner.invoke(args=["mailbox", "add", MAILBOX, "--sandbox", gmail.url])
    assert result.exit_code == 0, result.output
    return runner


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_new_mailbox_starts_with_the_default_rules_unless_asked_not_to(runner, gmail):
    runner.invoke(args=["mailbox", "add", MAILBOX, "--sandbox", gmail.url])
    runner.invoke(args=["mailbox", "add", "empty@example.com", "--sandbox", gmail.url, "--no-default-rules"])
    defaults = runner.invoke(args=["rules", "export", "--mailbox", MAILBOX, "--format", "json"])
    empty = runner.invoke(args=["rules", "export", "--mailbox", "empty@example.com", "--format", "json"])
    names = [r["name"] for r in json.loads(defaults.output)["rules"]]
    assert names == [
        "Password reset: answer and solve",
        "High urgency makes a ticket urgent",
        "Spread new tickets round-robin",
        "Acknowledge every new ticket",
        "FAQ answer solved it: solve the ticket",
        "Tell the customer when the ticket is solved",
    ]
    assert json.loads(empty.output) == {"rules": []}


def test_import_then_export_round_trips(connected, tmp_path):
    imported = connected.invoke(
        args=["rules", "import", write(tmp_path, "r.yaml", GOOD_RULES), "--mailbox", MAILBOX]
    )
    exported = connected.invoke(args=["rules", "export", "--mailbox", MAILBOX])
    again = connected.invoke(
        args=["rules", "import", write(tmp_path, "again.yaml", exported.output), "--mailbox", MAILBOX]
    )
    assert imported.exit_code == 0 and "1 rules imported" in imported.output
    assert again.exit_code == 0
    assert connected.invoke(args=["rules", "export", "--mailbox", MAILBOX]).output == exported.output
    assert "Billing questions go to Anna" in exported.output and "счёт" in exported.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [", "not valid YAML"),
        ("rules:\n  - name: x\n    trigger: ticket_created\n    conditions: {field: subject, op: containz, value: a}\n    actions: [{add_tag: a}]\n",
         "rules[0].conditions.op: unknown operator 'containz'"),
        ("rules:\n  - name: x\n    trigger: ticket_created\n    conditions: {field: body, op: matches, value: '(unclosed'}\n    actions: [{add_tag: a}]\n",
         "rules[0].conditions.value: invalid regex"),
        ("rules:\n  - name: x\n    trigger: ticket_created\n    actions: [{auto_reply: {template: No such template}}]\n",
         "rules[0].actions[0]: no template named 'No such template'"),
    ],
)  # fmt: skip
def test_a_bad_rule_file_is_a_clear_error_and_changes_nothing(connected, tmp_path, text, message):
    before = connected.invoke(args=["rules", "export", "--mailbox", MAILBOX]).output
    result = connected.invoke(
        args=["rules", "import", write(tmp_path, "bad.yaml", text), "--mailbox", MAILBOX]
    )
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert connected.invoke(args=["rules", "export", "--mailbox", MAILBOX]).output == before


def test_missing_file_and_unknown_mailbox(connected, tmp_path):
    missing = connected.invoke(args=["rules", "import", str(tmp_path / "nope.yaml"), "--mailbox", MAILBOX])
    unknown = connected.invoke(args=["rules", "export", "--mailbox", "nobody@example.com"])
    assert missing.exit_code == 2 and "file not found" in missing.output
    assert unknown.exit_code == 2 and "no mailbox nobody@example.com" in unknown.output


def test_dry_run_shows_what_would_happen_and_changes_nothing(connected, deliver, tmp_path, session):
    from sqlalchemy import func, select

    from server.base.models import Event, Outbox

    for subject in ("Invoice 12 is wrong", "Где мой счёт?", "Hello"):
        deliver(make_email(subject, sender="x@example.org"))
    connected.invoke(args=["sync", "--once", "--no-send"])
    session.expire_all()
    counts = (
        session.scalar(select(func.count()).select_from(Event)),
        session.scalar(select(func.count()).select_from(Outbox)),
    )
    text = GOOD_RULES.replace("anna@example.com", "round_robin")
    result = connected.invoke(
        args=["rules", "dry-run", write(tmp_path, "try.yaml", text), "--mailbox", MAILBOX, "--last", "10"]
    )
    as_json = connected.invoke(
        args=["rules", "dry-run", write(tmp_path, "try.yaml", text), "--mailbox", MAILBOX, "--json"]
    )
    session.expire_all()

    assert result.exit_code == 0, result.output
    assert "2 matches in the last 10 tickets; nothing was changed" in result.output
    matched = [r for r in json.loads(as_json.output) if r["matched"]]
    assert sorted(r["subject"] for r in matched) == ["Invoice 12 is wrong", "Где мой счёт?"]
    assert all("add tag billing" in r["actions"] for r in matched)
    assert (
        session.scalar(select(func.count()).select_from(Event)),
        session.scalar(select(func.count()).select_from(Outbox)),
    ) == counts


def test_templates_import_export_and_a_broken_template(connected, tmp_path):
    good = "templates:\n  - name: Shipping delay\n    locale: ru\n    subject: 'Задержка'\n    text: 'Здравствуйте, {{ customer.name }}!'\n"
    bad = "templates:\n  - name: Broken\n    subject: ok\n    text: 'Hello {% if customer.name %}'\n"
    imported = connected.invoke(
        args=["templates", "import", write(tmp_path, "t.yaml", good), "--mailbox", MAILBOX]
    )
    broken = connected.invoke(
        args=["templates", "import", write(tmp_path, "b.yaml", bad), "--mailbox", MAILBOX]
    )
    exported = connected.invoke(args=["templates", "export", "--mailbox", MAILBOX])
    assert imported.exit_code == 0 and "1 templates imported" in imported.output
    assert broken.exit_code == 2 and "templates[0] (Broken): text, line 1" in broken.output
    assert "Shipping delay" in exported.output and "Broken" not in exported.output


def test_every_default_template_round_trips_and_a_misspelt_variable_is_refused(connected, tmp_path):
    exported = connected.invoke(args=["templates", "export", "--mailbox", MAILBOX])
    again = connected.invoke(
        args=["templates", "import", write(tmp_path, "all.yaml", exported.output), "--mailbox", MAILBOX]
    )
    misspelt = (
        "templates:\n  - name: Typo\n    subject: 'Hi'\n    text: \"Line one\\nTicket {{ ticket.numbr }}\"\n"
    )
    refused = connected.invoke(
        args=["templates", "import", write(tmp_path, "typo.yaml", misspelt), "--mailbox", MAILBOX]
    )

    assert again.exit_code == 0, again.output
    assert refused.exit_code == 2 and "templates[0] (Typo): text, line 2" in refused.output
    assert "numbr" in refused.output
