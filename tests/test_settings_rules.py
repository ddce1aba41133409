"""The rules page: read by the team, changed by admins, tried before saving (the dry run writes
nothing), problems shown at their paths, reordered and switched, imported and exported."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

from sqlalchemy import func, select
from web_support import csrf_token, sign_in

from server.base.db import get_session
from server.base.models import Event, Outbox, Rule, Ticket
from server.services import tickets

URGENT = """rules:
  - name: Urgent words
    trigger: ticket_created
    conditions:
      any:
        - {field: subject, op: contains, value: срочно}
        - {field: subject, op: contains, value: urgent}
    actions:
      - set_priority: urgent
      - add_tag: urgent
  - name: Thank the customer
    trigger: ticket_created
    actions:
      - add_note: seen
"""


def _tickets(web, team, subjects):
    with web.app_context():
        db = get_session()
        for n, subject in enumerate(subjects):
            tickets.open_ticket(db, team["mailbox"], subject=subject, customer=None, gmail_thread_id=f"r{n}",
                                created_at=datetime.now(UTC))  # fmt: skip
        db.commit()


def _admin(web, google):
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    return client, csrf_token(client)


def _snapshot(web):
    with web.app_context():
        db = get_session()
        return (
            [
                (t.priority, sorted(tag.name for tag in t.tags))
                for t in db.scalars(select(Ticket).order_by(Ticket.id))
            ],
            db.scalar(select(func.count()).select_from(Event)),
            db.scalar(select(func.count()).select_from(Outbox)),
            db.scalar(select(func.count()).select_from(Rule)),
        )


def test_a_dry_run_lists_the_matching_tickets_with_why_and_changes_nothing(web, google, team):
    _tickets(web, team, ["Срочно: не работает вход", "Invoice copy", "URGENT outage"])
    client, token = _admin(web, google)
    before = _snapshot(web)

    page = client.post(f"/settings/rules/dry-run?mailbox={team['mailbox']}",
                       data={"text": URGENT, "last": "200", "csrf_token": token})  # fmt: skip
    html = page.get_data(as_text=True)

    assert page.status_code == 200 and _snapshot(web) == before
    report = html.split('id="dry-run-report"')[1]
    urgent_rows = [
        row for row in re.findall(r'<tr class="match">(.*?)</tr>', report, re.S) if "Urgent words" in row
    ]
    assert len(urgent_rows) == 2
    assert any("Срочно" in row and "urgent" in row for row in urgent_rows)
    assert "Invoice copy" not in "".join(urgent_rows)
    assert "5 matches on 3 tickets" in report  # two urgent ones, and the thanks on all three
    assert "Urgent words" in html and "срочно" in report.lower()  # the explanation names the condition


def test_saving_keeps_the_rules_whole_and_each_problem_at_its_path(web, google, team):
    client, token = _admin(web, google)
    url = f"/settings/rules?mailbox={team['mailbox']}"
    broken = URGENT.replace("op: contains, value: urgent", "op: containz, value: urgent").replace(
        "set_priority: urgent", "set_priority: sky-high"
    )

    refused = client.post(url, data={"text": broken, "csrf_token": token})
    unknown_agent = client.post(url, data={"text": URGENT.replace("add_note: seen", "set_sla_policy: Gold"),
                                           "csrf_token": token})  # fmt: skip
    saved = client.post(url, data={"text": URGENT, "csrf_token": token}, follow_redirects=True)

    problems = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert "rules[0].conditions.any[1].op" in problems and "rules[0].actions[0]" in problems
    assert unknown_agent.status_code == 400 and "rules[1].actions[0]" in unknown_agent.get_data(as_text=True)
    assert "2 rules saved" in saved.get_data(as_text=True)
    with web.app_context():
        db = get_session()
        assert [r.name for r in db.scalars(select(Rule).order_by(Rule.position))] == [
            "Urgent words",
            "Thank the customer",
        ]
        event = db.scalar(select(Event).where(Event.kind == "rules_changed").order_by(Event.id.desc()))
        assert event.actor_agent_id == team["admin"] and "Urgent words" in event.after["rules"]


def test_rules_are_reordered_switched_exported_and_imported(web, google, team):
    client, token = _admin(web, google)
    base = f"?mailbox={team['mailbox']}"
    client.post(f"/settings/rules{base}", data={"text": URGENT, "csrf_token": token})
    with web.app_context():
        first, second = get_session().scalars(select(Rule.id).order_by(Rule.position)).all()

    client.post(f"/settings/rules/{second}/up{base}", data={"csrf_token": token})
    client.post(f"/settings/rules/{first}/disable{base}", data={"csrf_token": token})
    exported = client.get(f"/settings/rules/export{base}")
    client.post(f"/settings/rules{base}", data={"text": "rules: []", "csrf_token": token})
    imported = client.post(f"/settings/rules{base}", data={
        "text": "", "file": (io.BytesIO(exported.data), "rules.yaml"), "csrf_token": token})  # fmt: skip

    assert exported.headers["Content-Disposition"].startswith("attachment;")
    text = exported.get_data(as_text=True)
    assert text.index("Thank the customer") < text.index("Urgent words") and "enabled: false" in text
    assert imported.status_code == 302
    with web.app_context():
        rows = get_session().scalars(select(Rule).order_by(Rule.position)).all()
        assert [(r.name, r.enabled) for r in rows] == [("Thank the customer", True), ("Urgent words", False)]


def test_the_team_reads_the_rules_only_admins_change_them(web, google, team):
    admin, token = _admin(web, google)
    admin.post(f"/settings/rules?mailbox={team['mailbox']}", data={"text": URGENT, "csrf_token": token})
    results = {}
    for role in ("manager", "agent", "boxadmin"):
        client = web.test_client()
        sign_in(client, google, f"{role}@example.com")
        page = client.get("/settings/rules").get_data(as_text=True)
        save = client.post(f"/settings/rules?mailbox={team['mailbox']}",
                           data={"text": "rules: []", "csrf_token": csrf_token(client)})  # fmt: skip
        results[role] = ("Urgent words" in page, 'id="save-rules"' in page, save.status_code)

    assert results == {
        "manager": (True, False, 403),
        "agent": (True, False, 403),
        "boxadmin": (True, True, 302),
    }


def test_the_dry_run_reads_every_ticket_with_a_bounded_number_of_statements(web, google, team):
    from sqlalchemy import event as sa_event

    from server.base.db import get_engine

    _tickets(web, team, [f"Case {n} urgent" for n in range(60)])
    client, token = _admin(web, google)
    counted: list[int] = []
    engine = get_engine(web)

    def count(*_args: object) -> None:
        counted.append(1)

    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        page = client.post(f"/settings/rules/dry-run?mailbox={team['mailbox']}",
                           data={"text": URGENT, "last": "50", "csrf_token": token})  # fmt: skip
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)

    assert "on 50 tickets" in page.get_data(as_text=True)
    assert len(counted) <= 20  # the tickets, their tags and messages in a few queries, not per ticket
