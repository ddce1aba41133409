"""Business-time arithmetic: properties with hypothesis, DST and holidays in named cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.services.sla import (
    CalendarError,
    add_business_minutes,
    business_minutes_between,
    calendar_from_config,
    is_within_hours,
    next_opening,
    subtract_business_minutes,
)

WEEK = ("mon", "tue", "wed", "thu", "fri")
MOSCOW = calendar_from_config(
    {
        "timezone": "Europe/Moscow",
        "hours": {day: ["09:00-13:00", "14:00-18:00"] for day in WEEK},
        "holidays": {"country": "RU"},
    }
)
NEW_YORK = calendar_from_config(
    {
        "timezone": "America/New_York",
        "hours": {day: ["08:00-17:00"] for day in WEEK},
        "holidays": {"country": "US"},
    }
)
KOLKATA = calendar_from_config(
    {
        "timezone": "Asia/Kolkata",
        "hours": {**{day: ["09:30-18:30"] for day in WEEK}, "sat": ["10:00-14:00"]},
        "holidays": {"country": "IN"},
        "closed": ["2026-12-24"],
    }
)
ALWAYS_NY = calendar_from_config({"timezone": "America/New_York", "hours": "always"})
NIGHT_SHIFT = calendar_from_config(
    {"timezone": "Europe/Berlin", "hours": {day: ["22:00-24:00", "00:00-06:00"] for day in WEEK}}
)
CALENDARS = {
    "moscow": MOSCOW,
    "new_york": NEW_YORK,
    "kolkata": KOLKATA,
    "always": ALWAYS_NY,
    "night": NIGHT_SHIFT,
}

INSTANTS = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=0))


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(CALENDARS)), start=INSTANTS, minutes=st.integers(0, 20_000))
def test_adding_then_measuring_gives_back_n_and_lands_inside_hours(name, start, minutes):
    calendar = CALENDARS[name]
    due = add_business_minutes(calendar, start, minutes)
    assert due >= start
    assert business_minutes_between(calendar, start, due) == pytest.approx(minutes, abs=1e-6)
    assert is_within_hours(calendar, due)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(CALENDARS)), end=INSTANTS, minutes=st.integers(0, 20_000))
def test_subtracting_then_measuring_gives_back_n_and_warnings_fall_inside_hours(name, end, minutes):
    calendar = CALENDARS[name]
    warn = subtract_business_minutes(calendar, end, minutes)
    assert warn <= end
    assert business_minutes_between(calendar, warn, end) == pytest.approx(minutes, abs=1e-6)
    if minutes:
        assert is_within_hours(calendar, warn)
        # the latest such instant: a minute later leaves less than N business minutes
        assert business_minutes_between(calendar, warn + timedelta(minutes=1), end) < minutes


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(CALENDARS)), a=INSTANTS, b=INSTANTS)
def test_measuring_is_antisymmetric_and_never_more_than_wall_time(name, a, b):
    calendar = CALENDARS[name]
    forward = business_minutes_between(calendar, a, b)
    assert forward == pytest.approx(-business_minutes_between(calendar, b, a))
    assert abs(forward) <= abs((b - a).total_seconds()) / 60 + 1e-6


def at(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))


def test_moscow_lunch_break_and_evening():
    friday_noon = at("Europe/Moscow", 2026, 11, 20, 12, 30)
    assert add_business_minutes(MOSCOW, friday_noon, 60) == at("Europe/Moscow", 2026, 11, 20, 14, 30)
    assert add_business_minutes(MOSCOW, friday_noon, 60 * 5) == at(
        "Europe/Moscow", 2026, 11, 23, 9, 30
    )  # Monday


def test_moscow_new_year_holidays():
    # Russia rests from January 1 to 8; a request on December 30 at 17:00 waits for the 11th.
    start = at("Europe/Moscow", 2026, 12, 30, 17, 0)
    assert next_opening(MOSCOW, at("Europe/Moscow", 2027, 1, 4, 10, 0)) == at(
        "Europe/Moscow", 2027, 1, 11, 9, 0
    )
    assert add_business_minutes(MOSCOW, start, 120) > at("Europe/Moscow", 2027, 1, 8, 23, 59)


def test_new_york_spring_forward_keeps_business_hours_in_local_time():
    # DST starts Sunday 2026-03-08: Friday 16:00 EST + 2 business hours = Monday 09:00 EDT.
    friday = at("America/New_York", 2026, 3, 6, 16, 0)
    due = add_business_minutes(NEW_YORK, friday, 120)
    assert due == at("America/New_York", 2026, 3, 9, 9, 0)
    assert due.astimezone(ZoneInfo("America/New_York")).utcoffset() == timedelta(hours=-4)


def test_new_york_24_7_across_both_dst_changes():
    # A 24/7 calendar counts real minutes: the spring day has 23 hours, the autumn day 25.
    spring = at("America/New_York", 2026, 3, 8, 0, 0)
    autumn = at("America/New_York", 2026, 11, 1, 0, 0)
    assert (
        business_minutes_between(ALWAYS_NY, spring, spring.astimezone(UTC) + timedelta(hours=24)) == 24 * 60
    )
    assert business_minutes_between(ALWAYS_NY, spring, at("America/New_York", 2026, 3, 9, 0, 0)) == 23 * 60
    assert business_minutes_between(ALWAYS_NY, autumn, at("America/New_York", 2026, 11, 2, 0, 0)) == 25 * 60


def test_new_york_thanksgiving_is_closed():
    wednesday = at("America/New_York", 2026, 11, 25, 16, 30)
    assert add_business_minutes(NEW_YORK, wednesday, 60) == at("America/New_York", 2026, 11, 27, 8, 30)


def test_kolkata_half_hour_offset_saturday_and_republic_day():
    friday = at("Asia/Kolkata", 2026, 1, 23, 18, 0)
    assert add_business_minutes(KOLKATA, friday, 60) == at(
        "Asia/Kolkata", 2026, 1, 24, 10, 30
    )  # Saturday hours
    sunday = at("Asia/Kolkata", 2026, 1, 25, 12, 0)
    assert next_opening(KOLKATA, sunday) == at("Asia/Kolkata", 2026, 1, 27, 9, 30)  # the 26th is Republic Day
    christmas_eve = next_opening(KOLKATA, at("Asia/Kolkata", 2026, 12, 24, 8, 0))  # a custom closed day
    assert christmas_eve.astimezone(KOLKATA.zone).date() > date(2026, 12, 24)


def test_custom_closed_and_open_days():
    calendar = calendar_from_config(
        {
            "timezone": "UTC",
            "hours": {day: ["09:00-17:00"] for day in WEEK},
            "closed": ["2026-11-24"],
            "open": ["2026-11-28"],
        }
    )
    assert next_opening(calendar, datetime(2026, 11, 24, 10, tzinfo=UTC)) == datetime(
        2026, 11, 25, 9, tzinfo=UTC
    )
    assert next_opening(calendar, datetime(2026, 11, 28, 8, tzinfo=UTC)) == datetime(
        2026, 11, 28, 9, tzinfo=UTC
    )  # a working Saturday


def test_year_end_and_midnight_spanning_shifts():
    assert add_business_minutes(NIGHT_SHIFT, at("Europe/Berlin", 2026, 12, 31, 23, 0), 120) == at(
        "Europe/Berlin", 2027, 1, 1, 1, 0
    )
    assert (
        business_minutes_between(
            NIGHT_SHIFT, at("Europe/Berlin", 2026, 11, 23, 21, 0), at("Europe/Berlin", 2026, 11, 24, 7, 0)
        )
        == 8 * 60
    )


def test_moscow_warning_before_a_monday_morning_deadline_falls_on_friday_evening():
    deadline = at("Europe/Moscow", 2026, 11, 23, 9, 20)  # Monday 09:20
    warn = subtract_business_minutes(MOSCOW, deadline, 30)
    assert warn == at("Europe/Moscow", 2026, 11, 20, 17, 50)  # Friday: 10 min Monday + 20 min Friday
    lunch = subtract_business_minutes(MOSCOW, at("Europe/Moscow", 2026, 11, 24, 14, 10), 30)
    assert lunch == at("Europe/Moscow", 2026, 11, 24, 12, 40)  # the lunch hour does not count


def test_zero_minutes_is_the_next_opening_and_negative_is_refused():
    evening = at("Europe/Moscow", 2026, 11, 23, 19, 0)
    assert add_business_minutes(MOSCOW, evening, 0) == at("Europe/Moscow", 2026, 11, 24, 9, 0)
    with pytest.raises(ValueError):
        add_business_minutes(MOSCOW, evening, -1)


def test_an_always_closed_calendar_is_an_error_not_a_hang():
    every_day = [str(date(2026, 1, 1) + timedelta(days=i)) for i in range(4 * 366)]
    shut = calendar_from_config({"timezone": "UTC", "hours": {"mon": ["09:00-10:00"]}, "closed": every_day})
    with pytest.raises(CalendarError, match="no open hours"):
        add_business_minutes(shut, datetime(2026, 1, 1, tzinfo=UTC), 10)
    with pytest.raises(CalendarError, match="no open hours"):
        subtract_business_minutes(shut, datetime(2029, 12, 1, tzinfo=UTC), 10)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"timezone": "UTC", "hours": {}}, "hours: the calendar is never open"),
        ({"timezone": "UTC", "hours": {"mon": []}}, "hours: the calendar is never open"),
        ({"timezone": "Mars/Olympus", "hours": "always"}, "timezone: unknown time zone 'Mars/Olympus'"),
        (
            {"timezone": "UTC", "hours": {"mon": ["09:00-13:00", "12:00-18:00"]}},
            "hours.mon: intervals overlap",
        ),
        ({"timezone": "UTC", "hours": {"mon": ["18:00-09:00"]}}, "ends before it starts"),
        ({"timezone": "UTC", "hours": {"mon": ["25:00-26:00"]}}, "is not a time of day"),
        ({"timezone": "UTC", "hours": {"funday": ["09:00-10:00"]}}, "hours.funday: unknown weekday"),
        (
            {"timezone": "UTC", "hours": "always", "holidays": {"country": "XX"}},
            "holidays: Country XX not available",
        ),
        (
            {"timezone": "UTC", "hours": "always", "closed": ["2026-02-30"]},
            "closed[0]: '2026-02-30' is not a date",
        ),
        ("nonsense", "a calendar is an object"),
    ],
)
def test_misconfigured_calendars_are_clear_errors(config, problem):
    with pytest.raises(CalendarError) as caught:
        calendar_from_config(config)
    assert any(problem in p for p in caught.value.problems), caught.value.problems


CALENDAR_YAML = """
timezone: Europe/Moscow
hours:
  mon: ["09:00-13:00", "14:00-18:00"]
  tue: ["09:00-13:00", "14:00-18:00"]
  wed: ["09:00-13:00", "14:00-18:00"]
  thu: ["09:00-13:00", "14:00-18:00"]
  fri: ["09:00-13:00", "14:00-18:00"]
holidays: {country: RU}
closed: [2026-12-31]
"""


def test_sla_commands_print_due_instants_and_minutes(runner, tmp_path):
    path = tmp_path / "calendar.yaml"
    path.write_text(CALENDAR_YAML, encoding="utf-8")
    due = runner.invoke(
        args=[
            "sla",
            "due",
            "--calendar",
            str(path),
            "--start",
            "2026-11-20T12:30:00+03:00",
            "--minutes",
            "300",
        ]
    )
    naive = runner.invoke(
        args=["sla", "due", "--calendar", str(path), "--start", "2026-11-20T12:30", "--minutes", "60"]
    )
    between = runner.invoke(
        args=[
            "sla",
            "between",
            "--calendar",
            str(path),
            "--start",
            "2026-11-20T12:30:00+03:00",
            "--end",
            "2026-11-23T09:30:00Z",
        ]
    )
    assert (due.exit_code, due.output.strip()) == (0, "2026-11-23T09:30:00+03:00")
    assert naive.output.strip() == "2026-11-20T14:30:00+03:00"  # a time without offset is the calendar's
    assert (between.exit_code, between.output.strip()) == (0, "480")  # Fri 30 + 240, Mon 210


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timezone: Nowhere/City\nhours: always\n", "timezone: unknown time zone 'Nowhere/City'"),
        ("timezone: UTC\nhours: {mon: ['09:00-13:00', '12:00-14:00']}\n", "hours.mon: intervals overlap"),
        ("timezone: UTC\nhours: {}\n", "never open"),
        ("timezone: UTC\nhours: always\nholidays: {country: ZZ}\n", "Country ZZ not available"),
        ("timezone: [\n", "not valid YAML"),
    ],
)
def test_sla_commands_explain_a_bad_calendar(runner, tmp_path, text, message):
    path = tmp_path / "calendar.yaml"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(
        args=["sla", "due", "--calendar", str(path), "--start", "2026-11-20T12:30:00Z", "--minutes", "5"]
    )
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_sla_due_rejects_a_bad_start(runner, tmp_path):
    path = tmp_path / "calendar.yaml"
    path.write_text(CALENDAR_YAML, encoding="utf-8")
    result = runner.invoke(
        args=["sla", "due", "--calendar", str(path), "--start", "yesterday", "--minutes", "5"]
    )
    assert result.exit_code == 2 and "--start: 'yesterday' is not an ISO 8601 date-time" in result.output


def test_policies_validate_every_part():
    from server.services.sla import policy_from_config

    policy = policy_from_config(
        {
            "name": "Gold",
            "calendar": {"timezone": "UTC", "hours": "always"},
            "targets": {"urgent": {"first_response": 15, "resolution": 120}},
        }
    )
    assert policy.target("urgent") == (15, 120) and policy.target("low") == (1080, 5400)
    with pytest.raises(CalendarError) as caught:
        policy_from_config(
            {
                "name": "",
                "calendar": {"timezone": "Nowhere", "hours": {}},
                "targets": {"urgent": {"first_response": 60, "resolution": 30}, "critical": {}},
                "pausing_statuses": ["open"],
            }
        )
    problems = caught.value.problems
    assert "name: a policy needs a name" in problems
    assert any(p.startswith("calendar.timezone: unknown time zone") for p in problems)
    assert "targets.urgent: resolution (30) comes before first response (60)" in problems
    assert any(p.startswith("targets.critical: unknown priority") for p in problems)
    assert any(p.startswith("pausing_statuses:") for p in problems)


def test_due_times_follow_priority_policy_and_the_paused_clock(session, mailbox):
    from server.base.models import Priority, SlaPolicy, TicketStatus
    from server.services import tickets

    created = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 09:00 UTC, default Mon–Fri 09–18
    ticket = tickets.open_ticket(
        session, mailbox.id, subject="s", customer=None, gmail_thread_id="t", created_at=created
    )
    assert ticket.first_response_due_at == datetime(2026, 11, 23, 18, 0, tzinfo=UTC)  # normal: 540 minutes
    assert ticket.resolution_due_at == datetime(2026, 11, 27, 18, 0, tzinfo=UTC)  # 2700 minutes: five days
    assert ticket.due_at == ticket.first_response_due_at

    tickets.set_priority(session, ticket, Priority.URGENT, at=created)
    assert ticket.first_response_due_at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

    gold = SlaPolicy(mailbox_id=mailbox.id, name="Gold", calendar={"timezone": "UTC", "hours": "always"},
                     targets={"urgent": {"first_response": 15, "resolution": 120}})  # fmt: skip
    session.add(gold)
    session.flush()
    tickets.set_sla_policy(session, ticket, gold, at=created)
    assert ticket.first_response_due_at == datetime(2026, 11, 23, 9, 15, tzinfo=UTC)
    assert ticket.resolution_due_at == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)

    tickets.record_first_response(session, ticket, at=datetime(2026, 11, 23, 9, 10, tzinfo=UTC))
    assert ticket.due_at == ticket.resolution_due_at  # the next promise is the resolution

    tickets.set_status(session, ticket, TicketStatus.PENDING, at=datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    assert (
        ticket.resolution_due_at is None and ticket.due_at is None
    )  # waiting for the customer: the clock stands
    tickets.set_status(session, ticket, TicketStatus.OPEN, at=datetime(2026, 11, 23, 13, 0, tzinfo=UTC))
    assert ticket.resolution_paused_minutes == 180
    assert ticket.resolution_due_at == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 11:00 + the 3 paused hours

    tickets.set_status(session, ticket, TicketStatus.SOLVED, at=datetime(2026, 11, 23, 13, 30, tzinfo=UTC))
    assert ticket.due_at is None and ticket.resolution_due_at is None
    session.commit()


def test_policies_are_imported_and_a_bad_file_changes_nothing(runner, gmail, session, tmp_path):
    from sqlalchemy import select

    from server.base.models import SlaPolicy

    runner.invoke(
        args=["mailbox", "add", "support@example.com", "--sandbox", gmail.url, "--no-default-rules"]
    )
    good = tmp_path / "policies.yaml"
    good.write_text(
        "policies:\n  - name: Standard\n    default: true\n    calendar: {timezone: Europe/Moscow, hours: always}\n"
        "    targets: {urgent: {first_response: 30, resolution: 240}}\n",
        encoding="utf-8",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "policies:\n  - name: Broken\n    calendar: {timezone: UTC, hours: {}}\n", encoding="utf-8"
    )
    imported = runner.invoke(args=["sla", "policy-import", str(good), "--mailbox", "support@example.com"])
    refused = runner.invoke(args=["sla", "policy-import", str(bad), "--mailbox", "support@example.com"])
    session.expire_all()
    rows = session.scalars(select(SlaPolicy)).all()
    assert imported.exit_code == 0 and "1 SLA policies imported" in imported.output
    assert (
        refused.exit_code == 2 and "policies[0].calendar.hours: the calendar is never open" in refused.output
    )
    assert [(r.name, r.is_default) for r in rows] == [("Standard", True)]
