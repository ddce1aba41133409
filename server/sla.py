"""Business hours and due times (first cut: weekly hours in a time zone; holidays come with the SLA issue).

Pure arithmetic: :func:`add_business_minutes` walks the calendar's open intervals day by day in the
calendar's own zone, so DST changes and midnight are handled by zoneinfo, never by adding hours to UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

#: Mon–Fri 09:00–18:00 unless the mailbox says otherwise.
DEFAULT_HOURS: dict[int, list[tuple[time, time]]] = {day: [(time(9), time(18))] for day in range(5)}
#: First-response and resolution targets per priority, in business minutes (a day is 9 hours = 540).
DEFAULT_TARGETS: dict[str, tuple[int, int]] = {
    "urgent": (60, 480),
    "high": (240, 1080),
    "normal": (540, 2700),
    "low": (1080, 5400),
}
#: A calendar whose intervals never come within this many days is "always closed": an error.
SEARCH_DAYS = 800


class CalendarError(ValueError):
    """A calendar that cannot be used (unknown zone, no open hours)."""


@dataclass(frozen=True)
class Calendar:
    zone: ZoneInfo
    hours: dict[int, list[tuple[time, time]]]

    @classmethod
    def from_settings(cls, settings: dict[str, Any] | None) -> Calendar:
        name = (settings or {}).get("timezone", "UTC")
        try:
            zone = ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise CalendarError(f"unknown time zone {name!r}") from exc
        return cls(zone, DEFAULT_HOURS)

    def intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open intervals of one local day, as aware UTC instants."""
        result = []
        for start, end in self.hours.get(day.weekday(), []):
            opens = datetime.combine(day, start, self.zone).astimezone(UTC)
            closes = datetime.combine(day, end, self.zone).astimezone(UTC)
            if closes > opens:
                result.append((opens, closes))
        return result


def add_business_minutes(calendar: Calendar, start: datetime, minutes: int) -> datetime:
    """The instant ``minutes`` business minutes after ``start``."""
    remaining = timedelta(minutes=minutes)
    day = start.astimezone(calendar.zone).date()
    for _ in range(SEARCH_DAYS):
        for opens, closes in calendar.intervals(day):
            begin = max(opens, start)
            if begin >= closes:
                continue
            if begin + remaining <= closes:
                return begin + remaining
            remaining -= closes - begin
        day += timedelta(days=1)
    raise CalendarError("the calendar has no open hours")


def due_times(calendar: Calendar, created_at: datetime, priority: str) -> tuple[datetime, datetime]:
    first_response, resolution = DEFAULT_TARGETS.get(priority, DEFAULT_TARGETS["normal"])
    return add_business_minutes(calendar, created_at, first_response), add_business_minutes(
        calendar, created_at, resolution
    )
