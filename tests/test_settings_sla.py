"""The SLA page: policies as text saved whole (open tickets re-timed), and the "what if" box answered
by the real deadline code — a holiday moves the due time to the next working day."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select
from web_support import csrf_token, sign_in

from server.base.db import get_session
from server.base.models import Event, SlaPolicy, Ticket
from server.services import tickets

MOSCOW = """policies:
  - name: Office hours
    default: true
    calendar:
      timezone: Europe/Moscow
      hours: {mon: ["09:00-18:00"], tue: ["09:00-18:00"], wed: ["09:00-18:00"], thu: ["09:00-18:00"], fri: ["09:00-18:00"]}
    targets: {normal: {first_response: 60, resolution: 480}}
"""


def _admin(web, google):
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    return client, csrf_token(client)


def _what_if(client, team, at: str) -> str:
    page = client.get(f"/settings/sla?mailbox={team['mailbox']}&priority=normal&at={at}").get_data(
        as_text=True
    )
    return re.search(r'<p id="what-if-answer">(.*?)</p>', page, re.S)[1]


def test_policies_are_saved_whole_the_tickets_re_timed_and_a_holiday_moves_the_what_if(web, google, team):
    with web.app_context():
        db = get_session()
        tickets.open_ticket(db, team["mailbox"], subject="Waiting", customer=None, gmail_thread_id="s1",
                            created_at=datetime(2026, 12, 30, 9, 0, tzinfo=UTC))  # fmt: skip
        db.commit()
    client, token = _admin(web, google)
    url = f"/settings/sla?mailbox={team['mailbox']}"

    broken = client.post(url, data={"text": MOSCOW.replace("09:00-18:00\"], tue", "18:00-09:00\"], tue"),
                                    "csrf_token": token})  # fmt: skip
    saved = client.post(url, data={"text": MOSCOW, "csrf_token": token}, follow_redirects=True)
    before_holiday = _what_if(client, team, "2027-01-01T17:30")  # a Friday, 17:30 in Moscow
    with_holiday = MOSCOW.replace("    targets:", "      holidays: {country: RU}\n    targets:")
    assert client.post(url, data={"text": with_holiday, "csrf_token": token}).status_code == 302
    after_holiday = _what_if(client, team, "2027-01-01T17:30")

    assert broken.status_code == 400 and "policies[0].calendar.hours.mon[0]" in broken.get_data(as_text=True)
    assert "1 policies saved; 1 open tickets got new due times" in saved.get_data(as_text=True)
    assert "first response by Mon 4 Jan 2027, 09:30" in before_holiday  # 30 minutes on Friday, 30 on Monday
    assert "(Europe/Moscow)" in before_holiday
    assert (
        "first response by Mon 11 Jan 2027, 10:00" in after_holiday
    )  # New Year holidays to 8 Jan, a weekend
    with web.app_context():
        db = get_session()
        assert db.scalar(select(SlaPolicy.name)) == "Office hours"
        assert db.scalar(select(Ticket.first_response_due_at)) is not None
        assert len(db.scalars(select(Event).where(Event.kind == "sla_policies_changed")).all()) == 2


def test_a_manager_reads_the_policies_and_can_ask_what_if_but_not_save(web, google, team):
    admin, token = _admin(web, google)
    admin.post(f"/settings/sla?mailbox={team['mailbox']}", data={"text": MOSCOW, "csrf_token": token})
    manager = web.test_client()
    sign_in(manager, google, "manager@example.com")

    page = manager.get(f"/settings/sla?mailbox={team['mailbox']}&priority=urgent&at=2026-11-23T10:00")
    refused = manager.post(f"/settings/sla?mailbox={team['mailbox']}",
                           data={"text": MOSCOW, "csrf_token": csrf_token(manager)})  # fmt: skip
    bad = manager.get(f"/settings/sla?mailbox={team['mailbox']}&priority=urgent&at=yesterday")

    html = page.get_data(as_text=True)
    assert "Office hours" in html and 'id="what-if-answer"' in html and 'id="save-policies"' not in html
    assert refused.status_code == 403
    assert bad.status_code == 200 and "date and time" in bad.get_data(as_text=True)
