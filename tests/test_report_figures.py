"""The reports' figures against a slow, obvious oracle (tests/report_history.py) over random histories,
and the edge cases by name: reopened tickets, pauses, tickets open at the period's end, DST, holidays.
Runs on SQLite and on PostgreSQL (tests/matrix.py)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from helpers import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from report_history import (
    CALENDARS,
    DONE,
    OPS,
    PAUSING,
    STEP,
    TARGETS,
    OracleCalendar,
    Played,
    new_mailbox,
    percentile,
    play,
)

from server.base.models import Ticket
from server.services.figures import metrics
from server.services.figures.metrics import Period, Scope

WINDOW_START = datetime(
    2026, 10, 28, 0, 0, tzinfo=UTC
)  # across the US DST end (Nov 1) and RU Unity Day (Nov 4)
WINDOW_STEPS = 12 * 96
NOW = WINDOW_START + WINDOW_STEPS * STEP + timedelta(hours=1)
ZONES = ("UTC", "Europe/Moscow", "America/New_York", "Asia/Kolkata")
_names = itertools.count()
#: Replies, solves and reopenings are what most figures measure: drawn more often than the rest.
WEIGHTED_OPS = OPS + ("agent_reply",) * 4 + ("customer_reply", "solve", "solve", "close", "pending", "open")

history = st.tuples(
    st.integers(0, WINDOW_STEPS - 1),
    st.sampled_from(tuple(TARGETS)),
    st.sampled_from((None, 0, 1)),
    st.sampled_from(("a.example", "b.example")),
    st.lists(
        st.tuples(st.one_of(st.integers(0, 16), st.integers(0, 3 * 96)), st.sampled_from(WEIGHTED_OPS)),
        max_size=12,
    ),
    st.sampled_from(((), ("billing",), ("billing", "bug"))),
)


def _played(created_step: int, priority: str, agent: int | None, domain: str, steps: list[tuple[int, str]],
            tags: tuple[str, ...]) -> Played:  # fmt: skip
    created = WINDOW_START + created_step * STEP
    ops, at = [], created
    for gap, op in steps:
        at += gap * STEP
        if at < NOW:
            ops.append((at, op))
    return Played(0, created, priority, agent, domain, ops, tags)


def _oracle(played: list[Played], calendar: OracleCalendar, scope_agent: int | None, domain: str | None,
            period: Period) -> dict[str, Any]:  # fmt: skip
    start, end = period.start, period.end
    passed = min(end, NOW)

    def within(at: datetime | None) -> bool:
        return at is not None and start <= at < end

    chosen = [
        p
        for p in played
        if (scope_agent is None or p.agent == scope_agent) and (domain is None or p.domain == domain)
    ]
    sets: dict[str, set[int]] = {name: set() for name in metrics.SETS}
    fr, fr_cal, res, res_cal = [], [], [], []
    replies = []
    for p in chosen:
        m = p.measures(calendar)
        active = p.status not in DONE
        due = [d for d in (m["fr_due"], m["res_due"]) if d is not None]
        checks = {
            "new": within(p.created),
            "active": any(within(at) for at in p.messages),
            "solved": within(p.solved_at),
            "reopened": any(within(at) for at in p.reopens),
            "responded": within(p.first_response),
            "fr_met": within(p.first_response) and m["fr_breached"] is False,
            "fr_missed": (within(p.first_response) and m["fr_breached"] is True)
            or (
                active
                and p.first_response is None
                and m["fr_due"] is not None
                and start <= m["fr_due"] < passed
            ),
            "res_met": within(p.solved_at) and m["res_breached"] is False,
            "res_missed": (within(p.solved_at) and m["res_breached"] is True)
            or (active and m["res_due"] is not None and start <= m["res_due"] < passed),
            "fcr": within(p.solved_at) and p.replies == 1 and not p.reopens,
            "rated": p.rating is not None and within(p.rating[0]),
            "satisfied": p.rating is not None and within(p.rating[0]) and p.rating[1] >= 4,
            "backlog": active,
            "unanswered": active and p.first_response is None,
            "waiting": p.status == "pending",
            "overdue": active and bool(due) and min(due) < NOW,
        }
        for name, hit in checks.items():
            if hit:
                sets[name].add(p.ticket_id)
        if checks["responded"]:
            fr.append(m["fr"])
            fr_cal.append(m["fr_cal"])
        if checks["solved"]:
            res.append(m["res"])
            res_cal.append(m["res_cal"])
            replies.append(p.replies)
    new_per_day = {day: 0 for day in period.days()}
    heat = [[0] * 24 for _ in range(7)]
    for p in chosen:
        if within(p.created):
            local = p.created.astimezone(period.zone)
            new_per_day[local.date()] += 1
            heat[local.weekday()][local.hour] += 1
    backlog = {}
    for day in period.days():
        day_start = period.local_midnight(day)
        if day_start > NOW:
            break
        day_end = min(period.local_midnight(day + timedelta(days=1)), NOW)
        counts = {"open": 0, "pending": 0, "on_hold": 0}
        for p in chosen:
            status = p.status_at(day_end)
            if status in counts:
                counts[status] += 1
        backlog[day] = counts
    return {"sets": sets, "fr": fr, "fr_cal": fr_cal, "res": res, "res_cal": res_cal, "replies": replies,
            "new_per_day": new_per_day, "heat": heat, "backlog": backlog}  # fmt: skip


def _close(found: metrics.Summary, values: list[float]) -> None:
    assert found.count == len(values)
    if not values:
        assert found.median is None and found.mean is None
        return
    assert found.mean == pytest.approx(sum(values) / len(values))
    assert found.median == pytest.approx(percentile(values, 0.5))
    assert found.p90 == pytest.approx(percentile(values, 0.9))


@settings(
    max_examples=examples(120),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    histories=st.lists(history, min_size=1, max_size=8),
    calendar_name=st.sampled_from(tuple(CALENDARS)),
    zone=st.sampled_from(ZONES),
    first=st.integers(0, 11),
    length=st.one_of(st.just(12), st.integers(1, 12)),
    scope_agent=st.sampled_from((None, 0, 1)),
    domain=st.sampled_from((None, "a.example")),
)
def test_the_figures_equal_the_oracle_over_random_histories(
    session, histories, calendar_name, zone, first, length, scope_agent, domain
):
    box, agents = new_mailbox(session, f"box{next(_names)}", CALENDARS[calendar_name])
    played = [_played(*h) for h in histories]
    for p in played:
        play(session, box, agents, p)
    session.commit()
    period = Period(
        date(2026, 10, 28) + timedelta(days=first),
        date(2026, 10, 28) + timedelta(days=first + length - 1),
        ZoneInfo(zone),
    )
    scope = Scope((box.id,), agents[scope_agent].id if scope_agent is not None else None, None, None, domain)
    expected = _oracle(played, OracleCalendar(CALENDARS[calendar_name]), scope_agent, domain, period)

    for name in metrics.SETS:
        ids = set(session.scalars(metrics.ticket_set(name, scope, period, NOW).with_only_columns(Ticket.id)))
        assert ids == expected["sets"][name], name
        assert metrics.count(session, name, scope, period, NOW) == len(expected["sets"][name]), name
    found = metrics.overview(session, scope, period, NOW)
    _close(found.first_response, expected["fr"])
    _close(found.first_response_calendar, expected["fr_cal"])
    _close(found.resolution, expected["res"])
    _close(found.resolution_calendar, expected["res_cal"])
    replies = expected["replies"]
    assert found.replies_per_ticket == (pytest.approx(sum(replies) / len(replies)) if replies else None)
    new = metrics.set_conditions("new", scope, period, NOW)
    assert metrics.per_day(session, Ticket.created_at, new, period) == expected["new_per_day"]
    assert metrics.busiest_hours(session, scope, period, NOW) == expected["heat"]
    assert metrics.backlog_per_day(session, scope, period, NOW) == expected["backlog"]
    if scope_agent is None and domain is None:
        rows = {row.key: row for row in metrics.breakdown(session, Ticket.assignee_id, scope, period, NOW)}
        for index in (None, 0, 1):
            key = agents[index].id if index is not None else None
            mine = [p for p in played if p.agent == index]
            solved = {p.ticket_id for p in mine} & expected["sets"]["solved"]
            assert (rows[key].solved if key in rows else 0) == len(solved)


# --- the edge cases by name ----------------------------------------------------------------------------
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 24/7 UTC calendar unless a test says otherwise
UTC_ZONE = ZoneInfo("UTC")


def _one(
    session, calendar: str, created: datetime, ops: list[tuple[datetime, str]], priority: str = "normal"
) -> tuple[Any, Played]:
    box, agents = new_mailbox(session, f"edge{next(_names)}", CALENDARS[calendar])
    played = Played(0, created, priority, 0, "a.example", ops)
    play(session, box, agents, played)
    session.commit()
    return box, played


def test_a_reopened_ticket_counts_its_last_solve_and_is_no_first_contact_resolution(session):
    h = timedelta(hours=1)
    box, played = _one(session, "always", MONDAY, [(MONDAY + h, "agent_reply"), (MONDAY + 2 * h, "solve"),
                                                   (MONDAY + 5 * h, "customer_reply"), (MONDAY + 6 * h, "agent_reply"),
                                                   (MONDAY + 8 * h, "solve")])  # fmt: skip
    ticket = session.get(Ticket, played.ticket_id)
    assert (ticket.reopens, ticket.agent_replies) == (1, 2)
    assert ticket.resolution_minutes == 8 * 60 and ticket.first_response_minutes == 60
    period = Period(date(2026, 11, 23), date(2026, 11, 23), UTC_ZONE)
    scope = Scope((box.id,))
    found = metrics.overview(session, scope, period, MONDAY + 24 * h)
    assert found.counts["solved"] == 1 and found.counts["reopened"] == 1 and found.counts["fcr"] == 0
    assert found.fcr == 0.0 and found.resolution.median == 480.0


def test_closing_a_solved_ticket_is_no_reopening_and_keeps_its_solve(session):
    h = timedelta(hours=1)
    box, played = _one(session, "always", MONDAY, [(MONDAY + h, "agent_reply"), (MONDAY + 2 * h, "solve"),
                                                   (MONDAY + 4 * h, "close")])  # fmt: skip
    found = metrics.overview(session, Scope((box.id,)), Period(date(2026, 11, 23), date(2026, 11, 23), UTC_ZONE),
                             MONDAY + 24 * h)  # fmt: skip
    assert found.counts["reopened"] == 0 and found.counts["solved"] == 1 and found.counts["fcr"] == 1
    assert found.resolution.median == 120.0 and found.fcr == 100.0


def test_a_pause_leaves_the_resolution_time_in_business_minutes_but_not_the_calendar_time(session):
    h = timedelta(hours=1)
    _box, played = _one(session, "always", MONDAY, [(MONDAY + h, "agent_reply"), (MONDAY + 2 * h, "pending"),
                                                    (MONDAY + 10 * h, "open"), (MONDAY + 11 * h, "solve")])  # fmt: skip
    ticket = session.get(Ticket, played.ticket_id)
    assert ticket.resolution_minutes == 11 * 60
    assert ticket.resolution_business_minutes == 3 * 60  # 11 hours less the 8 the customer had it
    assert ticket.resolution_breached is False


def test_a_ticket_open_at_the_periods_end_misses_its_target_only_once_it_passed(session):
    # Urgent: 60 minutes to the first response; nobody answers.
    box, _played_ = _one(session, "always", MONDAY + timedelta(hours=12), [], priority="urgent")  # 21:00
    period = Period(date(2026, 11, 23), date(2026, 11, 23), UTC_ZONE)
    scope = Scope((box.id,))
    before_due = metrics.overview(session, scope, period, MONDAY + timedelta(hours=12, minutes=30))
    after_due = metrics.overview(session, scope, period, MONDAY + timedelta(hours=13, minutes=30))
    assert before_due.counts["fr_missed"] == 0 and before_due.first_response_sla is None
    assert after_due.counts["fr_missed"] == 1 and after_due.first_response_sla == 0.0
    assert after_due.counts["unanswered"] == 1 and after_due.counts["overdue"] == 1
    backlog = metrics.backlog_per_day(session, scope, period, MONDAY + timedelta(hours=13, minutes=30))
    assert backlog == {date(2026, 11, 23): {"open": 1, "pending": 0, "on_hold": 0}}


def test_business_time_across_the_dst_change_counts_the_hours_the_office_was_open(session):
    # New York: Fri Oct 30 16:00 EDT in, Mon Nov 2 is closed, answered Tue Nov 3 10:00 EST.
    created = datetime(2026, 10, 30, 20, 0, tzinfo=UTC)  # 16:00 EDT
    answered = datetime(2026, 11, 3, 15, 0, tzinfo=UTC)  # 10:00 EST
    _box, played = _one(session, "new_york", created, [(answered, "agent_reply")])
    ticket = session.get(Ticket, played.ticket_id)
    # Fri 16:00–17:30 (90) + Sat 10:00–14:00 (240) + Tue 09:00–10:00 (60); Sunday and the closed Monday count nothing
    assert ticket.first_response_business_minutes == 390
    assert ticket.first_response_minutes == (answered - created).total_seconds() / 60


def test_a_public_holiday_counts_no_business_time(session):
    # Moscow, Nov 4 is Unity Day: in Tue Nov 3 17:00 MSK, answered Thu Nov 5 10:00 MSK.
    created = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)
    answered = datetime(2026, 11, 5, 7, 0, tzinfo=UTC)
    _box, played = _one(session, "moscow", created, [(answered, "agent_reply")], priority="high")
    ticket = session.get(Ticket, played.ticket_id)
    assert ticket.first_response_business_minutes == 60 + 60
    assert ticket.first_response_breached is False  # high: 240 business minutes


def test_automatic_mail_never_counts_as_a_response(session):
    h = timedelta(hours=1)
    _box, played = _one(
        session, "always", MONDAY, [(MONDAY + h, "auto_reply"), (MONDAY + 3 * h, "agent_reply")]
    )
    ticket = session.get(Ticket, played.ticket_id)
    assert ticket.first_response_minutes == 180 and ticket.agent_replies == 1


def test_the_viewers_time_zone_decides_the_day_a_ticket_came_in(session):
    late = datetime(2026, 11, 23, 22, 30, tzinfo=UTC)  # Monday in London, Tuesday in Moscow
    box, _p = _one(session, "always", late, [])
    scope = Scope((box.id,))
    utc = metrics.per_day(session, Ticket.created_at, [Ticket.mailbox_id == box.id],
                          Period(date(2026, 11, 23), date(2026, 11, 24), UTC_ZONE))  # fmt: skip
    moscow = metrics.per_day(session, Ticket.created_at, [Ticket.mailbox_id == box.id],
                             Period(date(2026, 11, 23), date(2026, 11, 24), ZoneInfo("Europe/Moscow")))  # fmt: skip
    assert utc == {date(2026, 11, 23): 1, date(2026, 11, 24): 0}
    assert moscow == {date(2026, 11, 23): 0, date(2026, 11, 24): 1}
    grid = metrics.busiest_hours(
        session, scope, Period(date(2026, 11, 24), date(2026, 11, 24), ZoneInfo("Europe/Moscow")), late
    )
    assert grid[1][1] == 1  # Tuesday, 01:00


def test_the_previous_period_has_the_same_length_just_before():
    period = Period(date(2026, 11, 1), date(2026, 11, 30), UTC_ZONE)
    assert period.previous() == Period(date(2026, 10, 2), date(2026, 10, 31), UTC_ZONE)
    with pytest.raises(ValueError):
        Period(date(2026, 11, 2), date(2026, 11, 1), UTC_ZONE)
    assert all(s in metrics.SETS for s in ("new", "overdue"))
    assert not set(DONE) & set(PAUSING)


def test_the_migration_measures_the_tickets_already_there(empty_database_url):
    """Tickets from before the measures existed get them from their messages and events."""
    from alembic import command
    from sqlalchemy import text

    from server.base.db import make_engine
    from server.base.migrations import alembic_config

    engine = make_engine(empty_database_url)
    config = alembic_config(engine)

    def upgrade(to: str) -> None:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, to)

    upgrade("0018")
    created, answered, solved = MONDAY, MONDAY + timedelta(hours=2), MONDAY + timedelta(hours=30)
    with engine.begin() as db:
        db.execute(text("INSERT INTO mailboxes (id, address, display_name, auth_kind, sync_state, next_ticket_number,"
                        " paused, settings, retime_generation, created_at) VALUES (1, 'old@example.com', '', 'sandbox',"
                        " 'new', 2, false, :settings, 0, :at)"),
                   {"settings": '{"calendar": {"timezone": "UTC", "hours": "always"}}', "at": created})  # fmt: skip
        db.execute(text("INSERT INTO tickets (id, mailbox_id, number, subject, status, priority, first_responded_at,"
                        " solved_at, resolution_paused_minutes, created_at, updated_at) VALUES (1, 1, 1, 's', 'solved',"
                        " 'urgent', :answered, :solved, 60, :created, :solved)"),
                   {"answered": answered, "solved": solved, "created": created})  # fmt: skip
        for n, (direction, auto, at) in enumerate([("inbound", False, created), ("outbound", True, created),
                                                   ("outbound", False, answered), ("outbound", False, solved)]):  # fmt: skip
            db.execute(text("INSERT INTO messages (mailbox_id, ticket_id, gmail_id, gmail_thread_id, direction, from_email,"
                            " from_name, \"to\", cc, subject, sent_at, text, attachments, labels, is_auto, parse_problems,"
                            " trashed, gmail_deleted, created_at) VALUES (1, 1, :g, 't', :d, '', '', '', '', '', :at, '',"
                            " '[]', '[]', :auto, '[]', false, false, :at)"),
                       {"g": f"g{n}", "d": direction, "auto": auto, "at": at})  # fmt: skip
        for before, after in (("solved", "open"), ("open", "solved")):
            db.execute(text("INSERT INTO events (mailbox_id, ticket_id, actor_kind, kind, before, after, created_at)"
                            " VALUES (1, 1, 'system', 'status_changed', :b, :a, :at)"),
                       {"b": f'{{"status": "{before}"}}', "a": f'{{"status": "{after}"}}', "at": solved})  # fmt: skip
    upgrade("head")
    with engine.connect() as db:
        row = db.execute(text("SELECT first_response_minutes, first_response_business_minutes, first_response_breached,"
                              " resolution_minutes, resolution_business_minutes, resolution_breached, agent_replies,"
                              " reopens FROM tickets WHERE id = 1")).one()  # fmt: skip
    engine.dispose()
    assert tuple(row) == (120.0, 120.0, True, 1800.0, 1740.0, True, 2, 1)


def test_the_net_promoter_score_counts_promoters_less_detractors(session):
    from server.services import csat

    box, agents = new_mailbox(session, f"nps{next(_names)}", CALENDARS["always"])
    box.settings = {**box.settings, "csat": {"nps": True}}
    for answer in (10, 9, 3, None):
        played = Played(0, MONDAY, "normal", 0, "a.example", [(MONDAY + timedelta(hours=1), "solve")])
        play(session, box, agents, played)
        csat.rate(
            session, session.get(Ticket, played.ticket_id), "good", at=MONDAY + timedelta(hours=2), nps=answer
        )
    session.commit()
    found = metrics.overview(session, Scope((box.id,)), Period(date(2026, 11, 23), date(2026, 11, 23), UTC_ZONE),
                             MONDAY + timedelta(days=1))  # fmt: skip
    assert found.nps == (3, 2, 1) and found.nps_score == pytest.approx(100 / 3)
    assert found.csat[:2] == (4, 4)
