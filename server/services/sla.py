"""Business hours, holidays and due-time arithmetic.

A :class:`Calendar` is weekly opening intervals (several a day allowed), an IANA time zone, public
holidays of a country (the ``holidays`` package) and custom closed and extra working days. The
arithmetic walks each local day's intervals and converts them to UTC through zoneinfo, so DST
changes, midnight and year ends need no special cases. Everything here is pure: values in, values out.

The calendar format (YAML or JSON; the settings page imports and exports the same)::

    timezone: Europe/Moscow
    hours: {mon: ["09:00-13:00", "14:00-18:00"], tue: [...], ...}   # or: hours: always  (24/7)
    holidays: {country: RU}            # optional; {country: US, subdivision: NY} too
    closed: [2026-12-31]               # extra closed days
    open: [2026-11-01]                 # extra working days (they get the hours of a normal weekday)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_calendars

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
#: Mon–Fri 09:00–18:00 when a mailbox has no calendar of its own.
DEFAULT_CALENDAR: dict[str, Any] = {
    "timezone": "UTC",
    "hours": {day: ["09:00-18:00"] for day in WEEKDAYS[:5]},
}
#: First-response and resolution targets per priority, in business minutes (a day is 9 hours = 540).
DEFAULT_TARGETS: dict[str, tuple[int, int]] = {
    "urgent": (60, 480),
    "high": (240, 1080),
    "normal": (540, 2700),
    "low": (1080, 5400),
}
#: How far ahead the arithmetic looks for an open minute before calling the calendar always closed.
SEARCH_DAYS = 3 * 366
_INTERVAL = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


class CalendarError(ValueError):
    """A calendar that cannot be used; ``problems`` lists every reason (zone, hours, country …)."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else problems
        super().__init__("; ".join(self.problems))


Interval = tuple[int, int]  # minutes since local midnight, end may be 1440


@dataclass(frozen=True)
class Calendar:
    zone: ZoneInfo
    hours: Mapping[int, tuple[Interval, ...]]
    country: str | None = None
    subdivision: str | None = None
    closed: frozenset[date] = field(default_factory=frozenset)
    open: frozenset[date] = field(default_factory=frozenset)

    @cached_property
    def _public_holidays(self) -> holiday_calendars.HolidayBase | None:
        if not self.country:
            return None
        return holiday_calendars.country_holidays(self.country, subdiv=self.subdivision)

    @cached_property
    def _extra_day_hours(self) -> tuple[Interval, ...]:
        """The hours of an extra working day: those of the first weekday that has any."""
        return next((self.hours[d] for d in range(7) if self.hours.get(d)), ())

    def is_closed_day(self, day: date) -> bool:
        if day in self.open:
            return False
        if day in self.closed:
            return True
        public = self._public_holidays
        return public is not None and day in public

    def local_intervals(self, day: date) -> tuple[Interval, ...]:
        if self.is_closed_day(day):
            return ()
        hours = self.hours.get(day.weekday(), ())
        if not hours and day in self.open:
            return self._extra_day_hours
        return hours

    def intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open intervals of one local day, as aware UTC instants (adjacent ones merged)."""
        result: list[tuple[datetime, datetime]] = []
        for start, end in self.local_intervals(day):
            opens = _local(day, start, self.zone)
            closes = _local(day, end, self.zone)
            if closes <= opens:
                continue
            if result and result[-1][1] >= opens:
                result[-1] = (result[-1][0], max(result[-1][1], closes))
            else:
                result.append((opens, closes))
        return result


def _local(day: date, minute: int, zone: ZoneInfo) -> datetime:
    if minute >= MINUTES_PER_DAY:
        day, minute = day + timedelta(days=1), minute - MINUTES_PER_DAY
    return datetime.combine(day, time(minute // 60, minute % 60), zone).astimezone(UTC)


def _days_from(calendar: Calendar, instant: datetime) -> Any:
    # Start a day early: an interval of yesterday (local) can still be open at this instant.
    day = instant.astimezone(calendar.zone).date() - timedelta(days=1)
    for _ in range(SEARCH_DAYS):
        yield day
        day += timedelta(days=1)
    raise CalendarError("the calendar has no open hours in the next three years")


def add_business_minutes(calendar: Calendar, start: datetime, minutes: float) -> datetime:
    """The instant ``minutes`` business minutes after ``start`` (for 0: ``start``, or the next opening)."""
    if minutes < 0:
        raise ValueError("minutes must not be negative")
    start = start.astimezone(UTC)
    remaining = timedelta(minutes=minutes)
    for day in _days_from(calendar, start):
        for opens, closes in calendar.intervals(day):
            if closes <= start:
                continue
            begin = max(opens, start)
            if begin + remaining <= closes:
                return begin + remaining
            remaining -= closes - begin
    raise AssertionError("unreachable")


def subtract_business_minutes(calendar: Calendar, end: datetime, minutes: float) -> datetime:
    """The earliest instant with ``minutes`` business minutes left before ``end`` (a warning time).

    Walks the intervals backwards from ``end``; when the calendar has fewer open minutes between now's
    past and ``end`` than asked (three years back), the earliest instant searched is returned.
    """
    if minutes < 0:
        raise ValueError("minutes must not be negative")
    end = end.astimezone(UTC)
    remaining = timedelta(minutes=minutes)
    if not remaining:
        return end
    day = end.astimezone(calendar.zone).date() + timedelta(days=1)
    for _ in range(SEARCH_DAYS):
        for opens, closes in reversed(calendar.intervals(day)):
            if opens >= end:
                continue
            finish = min(closes, end)
            if finish - remaining >= opens:
                return finish - remaining
            remaining -= finish - opens
        day -= timedelta(days=1)
    raise CalendarError("the calendar has no open hours in the three years before the deadline")


def next_opening(calendar: Calendar, at: datetime) -> datetime:
    """``at`` when the calendar is open then, else the next instant it opens."""
    return add_business_minutes(calendar, at, 0)


def business_minutes_between(calendar: Calendar, start: datetime, end: datetime) -> float:
    """Business minutes from ``start`` to ``end`` (negative when ``end`` is earlier)."""
    if end < start:
        return -business_minutes_between(calendar, end, start)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    total = timedelta()
    day = start.astimezone(calendar.zone).date() - timedelta(days=1)
    last = end.astimezone(calendar.zone).date()
    while day <= last:
        for opens, closes in calendar.intervals(day):
            overlap = min(closes, end) - max(opens, start)
            if overlap > timedelta():
                total += overlap
        day += timedelta(days=1)
    return total.total_seconds() / 60


def is_within_hours(calendar: Calendar, instant: datetime) -> bool:
    """Open at ``instant`` (an interval's closing instant counts: a deadline may fall on it)."""
    day = instant.astimezone(calendar.zone).date()
    return any(
        opens <= instant <= closes
        for d in (day - timedelta(days=1), day)
        for opens, closes in calendar.intervals(d)
    )


# --- building calendars from configuration ----------------------------------------------------------
def _parse_interval(text: Any, where: str, problems: list[str]) -> Interval | None:
    match = _INTERVAL.match(text) if isinstance(text, str) else None
    if match is None:
        problems.append(f"{where}: expected 'HH:MM-HH:MM', got {text!r}")
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > MINUTES_PER_DAY:
        problems.append(f"{where}: {text!r} is not a time of day (00:00 to 24:00)")
        return None
    if end <= start:
        problems.append(f"{where}: {text!r} ends before it starts")
        return None
    return start, end


def _parse_dates(value: Any, where: str, problems: list[str]) -> frozenset[date]:
    if value in (None, []):
        return frozenset()
    if not isinstance(value, list):
        problems.append(f"{where}: expected a list of dates (YYYY-MM-DD)")
        return frozenset()
    result = set()
    for index, item in enumerate(value):
        if isinstance(item, date) and not isinstance(item, datetime):
            result.add(item)
            continue
        try:
            result.add(date.fromisoformat(str(item)))
        except ValueError:
            problems.append(f"{where}[{index}]: {item!r} is not a date (YYYY-MM-DD)")
    return frozenset(result)


def calendar_from_config(data: Any) -> Calendar:
    """A :class:`Calendar` from its configuration, or :class:`CalendarError` listing every problem."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise CalendarError("a calendar is an object with timezone, hours, holidays, closed, open")
    unknown = set(data) - {"timezone", "hours", "holidays", "closed", "open"}
    if unknown:
        problems.append(f"unknown key(s) {sorted(map(str, unknown))}")
    zone_name = data.get("timezone")
    zone = None
    try:
        zone = ZoneInfo(str(zone_name)) if isinstance(zone_name, str) and zone_name else None
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    if zone is None:
        problems.append(f"timezone: unknown time zone {zone_name!r} (an IANA name such as Europe/Moscow)")
    hours: dict[int, tuple[Interval, ...]] = {}
    raw_hours = data.get("hours")
    if raw_hours == "always":
        hours = {d: ((0, MINUTES_PER_DAY),) for d in range(7)}
    elif not isinstance(raw_hours, Mapping):
        problems.append("hours: expected {mon: ['09:00-18:00'], …} or 'always'")
    else:
        for key, intervals in raw_hours.items():
            if key not in WEEKDAYS:
                problems.append(f"hours.{key}: unknown weekday (mon … sun)")
                continue
            if not isinstance(intervals, list):
                problems.append(f"hours.{key}: expected a list of 'HH:MM-HH:MM'")
                continue
            parsed = [_parse_interval(t, f"hours.{key}[{i}]", problems) for i, t in enumerate(intervals)]
            valid = sorted(p for p in parsed if p is not None)
            for (s1, e1), (s2, _e2) in zip(valid, valid[1:], strict=False):
                if s2 < e1:
                    problems.append(
                        f"hours.{key}: intervals overlap ({s1 // 60:02}:{s1 % 60:02}… and {s2 // 60:02}:{s2 % 60:02}…)"
                    )
            hours[WEEKDAYS.index(key)] = tuple(valid)
        if not any(hours.values()) and not [p for p in problems if p.startswith("hours")]:
            problems.append("hours: the calendar is never open (no business hours on any day)")
    country = subdivision = None
    raw_holidays = data.get("holidays")
    if raw_holidays not in (None, {}):
        if not isinstance(raw_holidays, Mapping) or not isinstance(raw_holidays.get("country"), str):
            problems.append("holidays: expected {country: RU} (an ISO 3166 country code)")
        else:
            country = raw_holidays["country"].strip().upper()
            subdivision = raw_holidays.get("subdivision")
            try:
                holiday_calendars.country_holidays(country, subdiv=subdivision)
            except (NotImplementedError, KeyError, ValueError) as exc:
                problems.append(f"holidays: {exc}")
    closed = _parse_dates(data.get("closed"), "closed", problems)
    extra = _parse_dates(data.get("open"), "open", problems)
    if problems or zone is None:
        raise CalendarError(problems)
    return Calendar(zone, hours, country, subdivision, closed, extra)


def calendar_for_mailbox(settings: Mapping[str, Any] | None) -> Calendar:
    """The mailbox's calendar (``settings.calendar``), else Mon–Fri 09–18 in ``settings.timezone``."""
    settings = settings or {}
    config = settings.get("calendar") or {**DEFAULT_CALENDAR, "timezone": settings.get("timezone", "UTC")}
    return calendar_from_config(config)


# --- SLA policies ------------------------------------------------------------------------------------
PRIORITIES = ("low", "normal", "high", "urgent")
PAUSABLE_STATUSES = ("pending", "on_hold")


@dataclass(frozen=True)
class Policy:
    """First-response and resolution targets per priority (business minutes), on a calendar."""

    name: str
    calendar: Calendar
    targets: Mapping[str, tuple[int, int]]
    pausing_statuses: frozenset[str] = frozenset(PAUSABLE_STATUSES)

    def target(self, priority: str) -> tuple[int, int]:
        return self.targets.get(priority) or self.targets.get("normal") or DEFAULT_TARGETS["normal"]


def policy_from_config(data: Any) -> Policy:
    """A :class:`Policy` from ``{name, calendar, targets: {priority: {first_response, resolution}},
    pausing_statuses}``, or :class:`CalendarError` listing every problem."""
    if not isinstance(data, Mapping):
        raise CalendarError("a policy is an object with name, calendar, targets and pausing_statuses")
    problems: list[str] = []
    unknown = set(data) - {"name", "calendar", "targets", "pausing_statuses", "default"}
    if unknown:
        problems.append(f"unknown key(s) {sorted(map(str, unknown))}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("name: a policy needs a name")
    calendar = None
    try:
        calendar = calendar_from_config(data.get("calendar", DEFAULT_CALENDAR))
    except CalendarError as exc:
        problems += [
            f"calendar.{p}" if not p.startswith("a calendar") else f"calendar: {p}" for p in exc.problems
        ]
    targets: dict[str, tuple[int, int]] = {}
    raw_targets = data.get("targets", {})
    if not isinstance(raw_targets, Mapping):
        problems.append("targets: expected {priority: {first_response: minutes, resolution: minutes}}")
        raw_targets = {}
    for priority, target in raw_targets.items():
        where = f"targets.{priority}"
        if priority not in PRIORITIES:
            problems.append(f"{where}: unknown priority (one of {list(PRIORITIES)})")
            continue
        values = [
            target.get(k) if isinstance(target, Mapping) else None for k in ("first_response", "resolution")
        ]
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 10_000_000 for v in values):
            problems.append(f"{where}: first_response and resolution are positive whole minutes")
            continue
        first_response, resolution = values
        assert isinstance(first_response, int) and isinstance(resolution, int)
        if resolution < first_response:
            problems.append(
                f"{where}: resolution ({resolution}) comes before first response ({first_response})"
            )
        targets[priority] = (first_response, resolution)
    pausing = data.get("pausing_statuses", list(PAUSABLE_STATUSES))
    if not isinstance(pausing, list) or not all(s in PAUSABLE_STATUSES for s in pausing):
        problems.append(f"pausing_statuses: a list of {list(PAUSABLE_STATUSES)}")
        pausing = []
    if problems or calendar is None:
        raise CalendarError(problems)
    return Policy(str(name).strip(), calendar, {**DEFAULT_TARGETS, **targets}, frozenset(pausing))


def default_policy(settings: Mapping[str, Any] | None) -> Policy:
    """The built-in policy: the mailbox's calendar and DEFAULT_TARGETS."""
    return Policy("Default", calendar_for_mailbox(settings), DEFAULT_TARGETS)


@dataclass(frozen=True)
class Deadlines:
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None

    @property
    def next(self) -> datetime | None:
        pending = [d for d in (self.first_response_due_at, self.resolution_due_at) if d is not None]
        return min(pending) if pending else None


def deadlines(
    policy: Policy,
    *,
    created_at: datetime,
    priority: str,
    status: str,
    first_responded: bool,
    paused_minutes: float,
) -> Deadlines:
    """When the ticket's promises fall due; a clock that stands still (paused, solved) has none."""
    if status in {"solved", "closed"}:
        return Deadlines(None, None)
    first_target, resolution_target = policy.target(priority)
    first = None if first_responded else add_business_minutes(policy.calendar, created_at, first_target)
    resolution = None
    if status not in policy.pausing_statuses:
        resolution = add_business_minutes(policy.calendar, created_at, resolution_target + paused_minutes)
    return Deadlines(first, resolution)
