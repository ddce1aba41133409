"""The weekly report mail: Monday 09:00 in each reader's own zone, once per person and week, through
the Outbox and out of the sandbox's SENT; in the reader's language; not to agents or to people who
turned it off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header

import time_machine
from report_history import Played, play
from sqlalchemy import select

from server.base.models import Agent, Outbox, Role
from server.gmail.send import deliver_due
from server.services.accounts import ensure_agent
from server.services.figures.weekly import queue_weekly_reports

MONDAY_9_MSK = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # Monday 09:00 in Moscow, 01:00 in New York


def _team(session, mailbox):
    lena = ensure_agent(session, "lena@example.com", "Lena", role=Role.MANAGER, locale="ru")
    lena.timezone = "Europe/Moscow"
    olga = ensure_agent(session, "olga@example.com", "Olga", role=Role.ADMIN)
    olga.timezone = "America/New_York"
    quiet = ensure_agent(session, "quiet@example.com", "Quiet", role=Role.MANAGER)
    quiet.notifications = {"weekly_report": False}
    anna = session.scalar(select(Agent).where(Agent.email == "anna@example.com"))
    mailbox.settings = {**(mailbox.settings or {}), "calendar": {"timezone": "UTC", "hours": "always"}}
    h = timedelta(hours=1)
    last_week = MONDAY_9_MSK - timedelta(days=4)
    for n in range(3):  # three tickets last week, one answered in an hour and solved
        ops = [(last_week + h, "agent_reply"), (last_week + 2 * h, "solve")] if n == 0 else []
        play(session, mailbox, [anna, anna], Played(0, last_week + n * h, "normal", 0, "shop.example", ops))
    play(
        session,
        mailbox,
        [anna, anna],
        Played(0, last_week - timedelta(days=7), "normal", 0, "shop.example", []),
    )
    session.commit()


def _queued(session):
    session.expire_all()
    return {
        row.to: row
        for row in session.scalars(select(Outbox).where(Outbox.idempotency_key.like("weekly-report:%")))
    }


def test_each_reader_gets_it_at_nine_on_monday_in_their_zone_once(app, session, mailbox, gmail_client):
    app.config["PUBLIC_URL"] = "https://desk.example"
    _team(session, mailbox)

    with time_machine.travel(MONDAY_9_MSK - timedelta(minutes=1), tick=False):
        assert queue_weekly_reports(session, now=datetime.now(UTC)).queued == 0
    with time_machine.travel(MONDAY_9_MSK, tick=False):
        first = queue_weekly_reports(session, now=datetime.now(UTC))
        again = queue_weekly_reports(session, now=datetime.now(UTC))
    assert (first.queued, again.queued) == (1, 0)
    assert set(_queued(session)) == {"lena@example.com"}

    new_york_nine = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    with time_machine.travel(new_york_nine, tick=False):
        assert queue_weekly_reports(session, now=datetime.now(UTC)).queued == 1
        deliver_due(session, mailbox.id, gmail_client(), now=datetime.now(UTC))
    with time_machine.travel(new_york_nine + timedelta(days=1), tick=False):  # Tuesday: nothing new
        assert queue_weekly_reports(session, now=datetime.now(UTC)).queued == 0

    mail = _queued(session)
    assert set(mail) == {"lena@example.com", "olga@example.com"}  # not the agent, not who turned it off
    lena, olga = mail["lena@example.com"], mail["olga@example.com"]
    assert lena.subject == "Еженедельный отчёт Postdesk: 16.11 – 22.11.2026"
    assert "Новые обращения: 3 (неделей раньше: 1)" in lena.body_text
    assert "Первый ответ (медиана, рабочее время): 1 ч 00 мин" in lena.body_text
    assert "https://desk.example/reports?from=2026-11-16&to=2026-11-22" in lena.body_text
    assert "New tickets: 3 (week before: 1)" in olga.body_text and olga.headers == {"internal": True}
    client = gmail_client()
    subjects = [
        str(make_header(decode_header(next(h["value"] for h in client.get_message(gmail_id, "metadata")["payload"]["headers"]
                                           if h["name"] == "Subject"))))
        for gmail_id in client.iter_message_ids(label_ids=["SENT"])
    ]  # fmt: skip
    assert sorted(s for s in subjects if "Postdesk" in s) == [olga.subject, lena.subject]  # each once
    assert olga.state == lena.state == "sent"


def test_no_mailbox_to_send_from_means_no_report(app, session, mailbox):
    _team(session, mailbox)
    mailbox.paused = True
    session.commit()
    with time_machine.travel(MONDAY_9_MSK, tick=False):
        assert queue_weekly_reports(session, now=datetime.now(UTC)).queued == 0
    assert _queued(session) == {}
