"""Reminders: a week of a mailbox in travelled time, each reminder once, at its time, to its person."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from helpers import MAILBOX, make_email
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from server.base.db import get_engine
from server.base.models import ActorKind, Agent, Event, Outbox, Priority, ReminderMark, Ticket, TicketStatus
from server.flows.reminders import due_query, plan, run_reminders
from server.services import tickets
from server.services.defaults import replace_rules
from server.services.mailbox_settings import ReminderSettings, SettingsError, reminder_settings, validate
from server.services.sla import calendar_from_config

MSK = ZoneInfo("Europe/Moscow")
CALENDAR = {
    "timezone": "Europe/Moscow",
    "hours": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
}
SETTINGS = {
    "locale": "en",
    "timezone": "Europe/Moscow",
    "calendar": CALENDAR,
    "reminders": {
        "warn_minutes": 30,
        "escalate_minutes": 60,
        "unassigned_minutes": 60,
        "pending_followup_days": 2,
        "pending_autosolve_days": 2,
        "digest_time": "09:00",
    },
}
POLICY = {
    "name": "Fast",
    "calendar": CALENDAR,
    "targets": {"normal": {"first_response": 120, "resolution": 600}},
}


def msk(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant of the week of Monday 23 November 2026, Moscow time."""
    return datetime(2026, 11, day, hour, minute, tzinfo=MSK).astimezone(UTC)


def scan(app, now: datetime) -> None:
    """One worker's scan in its own session (as its own process would)."""
    with Session(get_engine(app)) as session:
        run_reminders(session, now=now)


@pytest.fixture
def team(app, helpdesk, session):
    """support@ with Anna (admin, Russian, Moscow) and Bob (agent, English, New York); SLA 2 h / 10 h."""
    from server.base.models import SlaPolicy

    box = helpdesk.connect(MAILBOX, agents=["anna@example.com", "bob@example.com"])
    anna, bob = (
        session.scalar(select(Agent).where(Agent.email == e)) for e in ("anna@example.com", "bob@example.com")
    )
    anna.locale, anna.timezone = "ru", "Europe/Moscow"
    bob.locale, bob.timezone = "en", "America/New_York"
    box.settings = validate(SETTINGS)
    session.add(
        SlaPolicy(
            mailbox_id=box.id, name="Fast", calendar=CALENDAR, targets=POLICY["targets"], is_default=True
        )
    )
    # Keep only the acknowledgement: the test assigns by hand, as agents do.
    import rules as rule_engine
    from server.services.defaults import DEFAULT_RULES

    replace_rules(
        session,
        box,
        rule_engine.load_rules([r for r in DEFAULT_RULES if r["name"].startswith("Acknowledge")]),
    )
    session.commit()
    return box, anna, bob


def test_a_week_of_reminders_each_once_on_time_to_the_right_person_in_their_language(
    app, helpdesk, team, deliver, session
):
    box, anna, bob = team
    client = helpdesk.clients[MAILBOX]
    from server.gmail.send import deliver_due

    def ticket_by(subject: str) -> Ticket:
        return session.scalar(select(Ticket).where(Ticket.subject == subject))

    # What happens in the week, by Moscow time (the scan runs every 5 minutes, by two workers at once).
    def alice_writes() -> None:
        deliver(make_email("Cannot export", "The export button fails.", sender="alice@customer.test"))
        helpdesk.cycle()

    def bob_takes_it() -> None:
        tickets.assign(
            session,
            ticket_by("Cannot export"),
            bob.id,
            at=now(),
            actor=tickets.Actor(ActorKind.AGENT, bob.id),
        )

    def bob_answers_and_waits() -> None:
        ticket = ticket_by("Cannot export")
        tickets.record_first_response(session, ticket, at=now())

    def bob_asks_alice() -> None:
        tickets.set_status(session, ticket_by("Cannot export"), TicketStatus.PENDING, at=now())

    def ivan_writes() -> None:
        deliver(make_email("Не работает оплата", "Карта не проходит.", sender="ivan@customer.test"))
        helpdesk.cycle()
        ticket = ticket_by("Не работает оплата")
        tickets.assign(session, ticket, anna.id, at=now())

    def anna_answers_and_snoozes() -> None:
        ticket = ticket_by("Не работает оплата")
        tickets.record_first_response(session, ticket, at=now())
        tickets.snooze(session, ticket, msk(25, 9, 30), at=now())

    def anna_solves() -> None:
        tickets.set_status(session, ticket_by("Не работает оплата"), TicketStatus.SOLVED, at=now())

    script = {
        msk(23, 10): alice_writes,
        msk(23, 11, 15): bob_takes_it,
        msk(23, 14): bob_answers_and_waits,
        msk(23, 16): ivan_writes,
        msk(23, 16, 10): anna_answers_and_snoozes,
        msk(24, 10): bob_asks_alice,
        msk(25, 10): anna_solves,
    }

    def now() -> datetime:
        return datetime.now(UTC)

    start, end, step = msk(23, 8), msk(30, 0), timedelta(minutes=5)
    with time_machine.travel(start, tick=False) as clock:
        moment = start
        while moment < end:
            clock.move_to(moment)
            if moment in script:
                script[moment]()
                session.commit()
            workers = [threading.Thread(target=scan, args=(app, moment)) for _ in range(2)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            if moment == msk(25, 12):  # a restart: the same minute scanned again by a fresh worker
                scan(app, moment)
            session.expire_all()
            deliver_due(session, box.id, client, now=moment)
            moment += step

    alice, ivan = ticket_by("Cannot export"), ticket_by("Не работает оплата")
    reminders = session.scalars(
        select(Outbox).where(Outbox.kind == "reminder").order_by(Outbox.created_at, Outbox.to)
    ).all()

    def what(key: str) -> str:
        return "digest" if key.startswith("digest:") else key.split(":")[2]

    got = [
        (r.created_at.astimezone(MSK).strftime("%a %H:%M"), r.to, r.ticket_id, what(r.idempotency_key))
        for r in reminders
    ]
    A, B, digest = alice.id, ivan.id, None
    assert got == [
        ("Mon 11:00", "anna@example.com", A, "unassigned"),
        ("Mon 11:00", "bob@example.com", A, "unassigned"),
        ("Mon 11:30", "bob@example.com", A, "first_response_due_soon"),
        ("Mon 12:00", "bob@example.com", A, "first_response_overdue"),
        ("Mon 13:00", "anna@example.com", A, "first_response_escalated"),
        ("Mon 17:00", "bob@example.com", digest, "digest"),  # 09:00 in New York
        ("Tue 09:00", "anna@example.com", digest, "digest"),
        ("Tue 16:30", "anna@example.com", B, "resolution_due_soon"),
        ("Tue 17:00", "anna@example.com", B, "resolution_overdue"),
        ("Tue 17:00", "bob@example.com", digest, "digest"),
        ("Tue 18:00", "anna@example.com", B, "resolution_escalated"),
        ("Wed 09:00", "anna@example.com", digest, "digest"),
        ("Wed 09:30", "anna@example.com", B, "snooze_ended"),
        ("Wed 17:00", "bob@example.com", digest, "digest"),
        ("Thu 10:00", "alice@customer.test", A, "pending_followup"),
        ("Thu 17:00", "bob@example.com", digest, "digest"),
        ("Fri 17:00", "bob@example.com", digest, "digest"),
    ]
    # Each one reached Gmail once, in its reader's language.
    assert all(r.state == "sent" for r in reminders)
    sent = [m for m in helpdesk.sent_by(MAILBOX) if "Auto-Submitted" in m.raw.decode(errors="replace")]
    for row in reminders:
        copies = [m for m in sent if row.message_id.encode() in m.raw]
        assert len(copies) == 1, row.idempotency_key
        russian = any("\u0400" <= ch <= "\u04ff" for ch in row.subject + row.body_text)
        assert russian == (row.to == "anna@example.com"), row.subject
    followup = next(r for r in reminders if r.to == "alice@customer.test")
    assert (
        followup.subject == "Re: Cannot export"
        and followup.headers["gmail_thread_id"] == alice.gmail_thread_id
    )
    assert (
        "Cannot export"
        in next(r for r in reminders if r.to == "bob@example.com" and "digest" in r.idempotency_key).body_text
    )
    # The dates are written in the reader's zone: Bob's overdue notice says 4:00 AM (New York).
    overdue = next(r for r in reminders if "first_response_overdue" in r.idempotency_key)
    assert "4:00 AM" in overdue.body_text
    # The pending ticket solved itself two days after the follow-up; the snooze ended; breaches recorded.
    assert alice.status == "solved" and alice.solved_at == msk(28, 10)
    assert ivan.snoozed_until is None
    breaches = session.scalars(select(Event.after).where(Event.kind == "sla_breached")).all()
    assert sorted(b["deadline"] for b in breaches) == ["first_response", "resolution"]
    assert session.scalar(select(func.count()).select_from(Ticket).where(Ticket.remind_at.is_not(None))) == 0
    # Reminders name their ticket ([#N]) but are the team's mail: never filed on the ticket.
    from server.base.models import Message

    filed_threads = set(session.scalars(select(Message.gmail_thread_id).where(Message.ticket_id == alice.id)))
    assert filed_threads == {alice.gmail_thread_id}


def fake_ticket(**values) -> Ticket:
    created = msk(23, 10)
    fields = {
        "id": 1,
        "mailbox_id": 1,
        "number": 1,
        "status": "open",
        "priority": "normal",
        "created_at": created,
        "updated_at": created,
        "status_changed_at": created,
        "first_response_due_at": msk(23, 12),
        "resolution_due_at": msk(24, 11),
        "assignee_id": None,
    }
    return Ticket(**(fields | values))


MOSCOW = calendar_from_config(CALENDAR)


def settings_with(**values) -> ReminderSettings:
    from server.base.models import Mailbox

    return reminder_settings(Mailbox(settings={"reminders": values}))


def test_plan_lists_every_reminder_of_a_ticket_in_order():
    kinds = [
        (d.kind, d.at.astimezone(MSK).strftime("%a %H:%M"))
        for d in plan(fake_ticket(), settings_with(), MOSCOW)
    ]
    assert kinds == [
        ("unassigned", "Mon 11:00"),
        ("first_response_due_soon", "Mon 11:30"),
        ("first_response_overdue", "Mon 12:00"),
        ("first_response_escalated", "Mon 13:00"),
        ("resolution_due_soon", "Tue 10:30"),
        ("resolution_overdue", "Tue 11:00"),
        ("resolution_escalated", "Tue 12:00"),
    ]


def test_plan_follows_the_settings_and_the_state():
    # Reminders off: deadlines are still watched (breach Events), snoozes still end; nobody is mailed.
    off = [d.kind for d in plan(fake_ticket(snoozed_until=msk(24, 9)), settings_with(enabled=False), MOSCOW)]
    assert off == ["first_response_overdue", "snooze_ended", "resolution_overdue"]
    quiet = settings_with(warn_minutes=0, escalate_minutes=0, unassigned_minutes=0)
    assert [d.kind for d in plan(fake_ticket(assignee_id=7), quiet, MOSCOW)] == [
        "first_response_overdue",
        "resolution_overdue",
    ]
    answered = fake_ticket(first_responded_at=msk(23, 10, 30), assignee_id=7)
    assert [d.kind for d in plan(answered, quiet, MOSCOW)] == ["resolution_overdue"]
    pending = fake_ticket(
        status="pending", resolution_due_at=None, first_responded_at=msk(23, 11), assignee_id=7
    )
    assert [(d.kind, d.at) for d in plan(pending, settings_with(pending_autosolve_days=3), MOSCOW)] == [
        ("pending_followup", msk(26, 10)),
        ("auto_solve", msk(29, 10)),
    ]
    assert plan(fake_ticket(status="solved"), settings_with(), MOSCOW) == []


def test_a_customer_answer_stops_the_follow_up_and_a_russian_customer_is_followed_up_in_russian(
    app, helpdesk, team, deliver, session
):
    box, anna, _bob = team
    with time_machine.travel(msk(23, 10), tick=False) as clock:
        first = deliver(make_email("Счёт", "Пришлите счёт, пожалуйста.", sender="olga@customer.test"))
        deliver(
            make_email(
                "Invoice",
                "Please send the invoice.",
                sender="tom@customer.test",
                message_id="<tom-1@customer.test>",
            )
        )
        helpdesk.cycle()
        olga, tom = (session.scalar(select(Ticket).where(Ticket.subject == s)) for s in ("Счёт", "Invoice"))
        for ticket in (olga, tom):
            tickets.assign(session, ticket, anna.id, at=msk(23, 10))
            tickets.record_first_response(session, ticket, at=msk(23, 10))
            tickets.set_status(session, ticket, TicketStatus.PENDING, at=msk(23, 10))
        session.commit()
        clock.move_to(msk(24, 10))
        deliver(
            make_email(
                "Re: Invoice",
                "Here is my VAT number.",
                sender="tom@customer.test",
                in_reply_to="<tom-1@customer.test>",
            )
        )
        helpdesk.cycle()
        assert tom.status == "open"  # the customer answered: no longer waiting for them
        clock.move_to(msk(25, 10))
        run_reminders(session, now=msk(25, 10))
    followups = session.scalars(
        select(Outbox).where(Outbox.kind == "reminder", Outbox.to.like("%customer.test"))
    ).all()
    assert [(f.to, f.subject) for f in followups] == [("olga@customer.test", "Re: Счёт")]
    assert "ждём вашего ответа" in followups[0].body_text
    assert followups[0].headers["gmail_thread_id"] == first["threadId"]


def test_mailbox_settings_are_validated_whole_and_shown_with_defaults(runner, team, session, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "locale: de\ntimezone: Mars/Olympus\nreminders: {warn_minutes: -5, digest_time: '25:00', colour: red}\n"
        "calendar: {timezone: UTC, hours: {mon: ['10:00-09:00']}}\nsurprise: 1\n",
        encoding="utf-8",
    )
    result = runner.invoke(args=["mailbox", "settings", MAILBOX, str(bad)])
    assert result.exit_code == 2
    for problem in (
        "locale",
        "Mars/Olympus",
        "reminders.warn_minutes",
        "reminders.digest_time",
        "reminders.colour",
        "calendar:",
        "surprise",
    ):
        assert problem in result.output, problem
    shown = runner.invoke(args=["mailbox", "settings", MAILBOX, "--json"])
    assert '"warn_minutes": 30' in shown.output and '"timezone": "Europe/Moscow"' in shown.output

    good = tmp_path / "good.yaml"
    good.write_text(
        "locale: ru\ntimezone: Europe/Moscow\nreminders: {warn_minutes: 15, digest: false}\n",
        encoding="utf-8",
    )
    assert runner.invoke(args=["mailbox", "settings", MAILBOX, str(good)]).exit_code == 0
    session.expire_all()
    box = team[0]
    assert reminder_settings(box).warn_minutes == 15 and reminder_settings(box).digest is False
    with pytest.raises(SettingsError, match="expected a mapping"):
        validate(["not", "settings"])


def test_bad_stored_settings_templates_and_calendars_never_stop_the_scan(app, team, session):
    from server.base.models import Template

    box, anna, _bob = team
    # Stored by hand, around the validation: the scan falls back to defaults, logs, and goes on.
    box.settings = {**SETTINGS, "reminders": {"warn_minutes": "soon"}, "calendar": {"hours": "never"}}
    stored = session.scalar(
        select(Template).where(Template.name == "Reminder: overdue", Template.locale == "en")
    )
    stored.subject = "{{ nope.nothing }}"
    created = datetime.now(UTC) - timedelta(hours=1)
    broken = tickets.open_ticket(
        session, box.id, subject="s", customer=None, gmail_thread_id=None, created_at=created
    )
    tickets.set_priority(session, broken, Priority.URGENT, at=created)
    broken.assignee_id = _bob.id
    session.commit()
    report = run_reminders(session, now=broken.first_response_due_at + timedelta(minutes=1))
    assert report.breaches == 1
    failed = session.scalars(select(Event).where(Event.kind == "reminder_failed")).all()
    assert failed and "nope" in failed[0].after["reason"]
    assert reminder_settings(box).warn_minutes == 30


def test_reminders_found_very_late_are_not_sent_but_breaches_are_recorded(app, team, session):
    box, anna, _bob = team
    old = msk(2, 10)  # a month of old mail, imported today
    ticket = tickets.open_ticket(
        session, box.id, subject="old", customer=None, gmail_thread_id=None, created_at=old
    )
    ticket.assignee_id = anna.id
    session.commit()
    report = run_reminders(session, now=msk(23, 15))
    assert report.breaches == 2 and report.queued == 0 and report.late >= 2
    assert ticket.remind_at is None


def test_the_scan_reads_the_remind_at_index(app, session, mailbox):
    """EXPLAIN: the reminder scan is an index range read, never a scan of every ticket."""
    rows = [
        {
            "mailbox_id": mailbox.id,
            "number": n,
            "subject": "s",
            "status": "open",
            "priority": "normal",
            "remind_at": msk(23, 10) + timedelta(minutes=n) if n % 10 == 0 else None,
            "created_at": msk(1, 10),
            "updated_at": msk(1, 10),
            "resolution_paused_minutes": 0.0,
        }
        for n in range(1, 5001)
    ]
    session.execute(Ticket.__table__.insert(), rows)
    session.commit()
    engine = get_engine(app)
    statement = due_query(msk(23, 11)).compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            plan_rows = connection.execute(text(f"EXPLAIN QUERY PLAN {statement}")).all()
            described = " ".join(str(row[-1]) for row in plan_rows)
        else:
            connection.execute(text("ANALYZE tickets"))
            described = " ".join(row[0] for row in connection.execute(text(f"EXPLAIN {statement}")))
    assert "ix_tickets_remind_at" in described, described


def test_a_ticket_left_unassigned_later_gets_its_own_unassigned_reminder(
    app, helpdesk, team, deliver, session
):
    """Bob takes a ticket at once; a day later he is taken off it. The team hears of it an hour after
    that (in business time), not never: the clock starts when the ticket became unassigned."""
    box, anna, bob = team
    with time_machine.travel(msk(23, 10), tick=False):
        deliver(make_email("Cannot export", "The export button fails.", sender="alice@customer.test"))
        helpdesk.cycle()
        ticket = session.scalar(select(Ticket).where(Ticket.subject == "Cannot export"))
        tickets.assign(session, ticket, bob.id, at=msk(23, 10, 5))
        session.commit()
    tickets.assign(session, ticket, None, at=msk(24, 10))
    session.commit()
    assert ticket.unassigned_at == msk(24, 10)
    scan(app, msk(24, 10, 59))
    assert session.scalars(select(ReminderMark).where(ReminderMark.kind == "unassigned")).all() == []
    scan(app, msk(24, 11, 1))
    marks = session.scalars(select(ReminderMark).where(ReminderMark.kind == "unassigned")).all()
    assert sorted((m.ticket_id, m.agent_id) for m in marks) == [(ticket.id, anna.id), (ticket.id, bob.id)]
    tickets.assign(session, ticket, anna.id, at=msk(24, 11, 30))
    session.commit()
    assert ticket.unassigned_at is None
    assert plan(ticket, reminder_settings(box), MOSCOW)[0].kind != "unassigned"


def test_each_person_chooses_the_reminders_and_digest_they_get_but_escalations_still_come(
    app, helpdesk, team, deliver, session
):
    """Bob turns the daily digest and his reminders off; Anna keeps hers. Bob's ticket's warning goes
    to nobody, its escalation still reaches Anna (the admin), and only Anna gets a digest."""
    from server.services.accounts import AgentChange, update_agent

    box, anna, bob = team
    update_agent(session, bob.email, AgentChange(notifications={"digest": False, "reminders": False}))
    with time_machine.travel(msk(23, 10), tick=False):
        deliver(make_email("Slow page", "The page is slow.", sender="carl@customer.test"))
        helpdesk.cycle()
        ticket = session.scalar(select(Ticket).where(Ticket.subject == "Slow page"))
        tickets.assign(session, ticket, bob.id, at=msk(23, 10, 1))
        session.commit()
    for moment in (msk(23, 11, 31), msk(23, 13, 1), msk(24, 9, 1)):  # warning, escalation, digest
        scan(app, moment)

    marks = session.scalars(select(ReminderMark)).all()
    by_kind = sorted((m.kind, m.agent_id) for m in marks if m.agent_id is not None)
    assert ("digest", anna.id) in by_kind and ("digest", bob.id) not in by_kind
    assert all(agent != bob.id for _kind, agent in by_kind)
    assert ("first_response_escalated", anna.id) in by_kind
    assert bob.wants("reminders") is False and anna.wants("digest") is True


@pytest.mark.postgres
def test_a_scan_that_keeps_losing_the_race_leaves_the_reminders_to_the_winner_without_failing(
    app, team, session, monkeypatch
):
    """Two scans at once over a long backlog (the soak's moved clock: two thousand tickets) advance in
    step; the one behind loses every batch. It used to raise after five tries; it now leaves the work
    to the scan ahead of it, and nothing is done twice or lost."""
    from server.flows import reminders

    box, anna, _bob = team
    for n in range(reminders.RACE_RETRIES + 3):
        ticket = tickets.open_ticket(
            session, box.id, subject=f"late {n}", customer=None, gmail_thread_id=None, created_at=msk(23, 10)
        )
        ticket.assignee_id = anna.id
    session.commit()
    engine = get_engine(app)
    look_then_write = reminders.Scan.mark
    taken_by_the_other: list[str] = []

    def the_other_scan_writes_first(self, key, kind, **known):
        done = look_then_write(self, key, kind, **known)
        if done:  # between this scan's look and its write, the other scan commits the same mark
            with engine.begin() as other:
                other.execute(
                    ReminderMark.__table__.insert().values(key=key[:300], kind=kind, created_at=self.now)
                )
            taken_by_the_other.append(key[:300])
        return done

    monkeypatch.setattr(reminders.Scan, "mark", the_other_scan_writes_first)
    behind = run_reminders(session, now=msk(23, 12, 30))  # no RuntimeError
    assert behind.queued == 0 and len(taken_by_the_other) == reminders.RACE_RETRIES
    assert session.scalar(select(func.count()).select_from(Outbox)) == 0  # its work was rolled back whole
    monkeypatch.undo()
    rest = run_reminders(session, now=msk(23, 12, 30))  # the next tick does what is left, once
    keys = session.scalars(select(ReminderMark.key)).all()
    assert len(keys) == len(set(keys)) and set(taken_by_the_other) <= set(keys)
    assert rest.queued > 0 and rest.queued + len(taken_by_the_other) >= reminders.RACE_RETRIES + 3
