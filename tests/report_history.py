"""Ticket histories for the report tests: played through the real ticket actions (as sync, the add-on
and the rating page call them) and measured again by a slow, obvious oracle that walks the clock in
15-minute steps and knows nothing of the reports' SQL or of the SLA arithmetic.

Every instant of a history is a whole quarter-hour, every calendar's hours start and end on one, and
every UTC offset in use is a multiple of 15 minutes: a step is then wholly open or wholly closed.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holiday_calendars
from sqlalchemy.orm import Session

from server.base.models import AuthKind, Customer, Direction, Message, Priority, TicketStatus
from server.services import csat, tickets
from server.services.accounts import MailboxSpec, add_mailbox, ensure_agent

STEP = timedelta(minutes=15)
DONE = ("solved", "closed")
PAUSING = ("pending", "on_hold")
#: The default SLA targets (business minutes): first response, resolution.
TARGETS = {"urgent": (60, 480), "high": (240, 1080), "normal": (540, 2700), "low": (1080, 5400)}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CALENDARS: dict[str, dict[str, Any]] = {
    "always": {"timezone": "UTC", "hours": "always"},
    "moscow": {
        "timezone": "Europe/Moscow",
        "hours": {day: ["09:00-18:00"] for day in WEEKDAYS[:5]},
        "holidays": {"country": "RU"},
    },
    "new_york": {
        "timezone": "America/New_York",
        "hours": {day: ["09:00-12:00", "13:00-17:30"] for day in WEEKDAYS[:5]} | {"sat": ["10:00-14:00"]},
        "holidays": {"country": "US"},
        "closed": ["2026-11-02"],
        "open": ["2026-11-08"],
    },
}
OPS = (
    "agent_reply", "auto_reply", "customer_reply", "pending", "on_hold", "open", "solve", "close",
    "rate_good", "rate_okay", "rate_bad",
)  # fmt: skip


class OracleCalendar:
    """Open or closed, one quarter-hour at a time, straight from the calendar's words."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.zone = ZoneInfo(config["timezone"])
        self.hours = config["hours"]
        country = (config.get("holidays") or {}).get("country")
        self.public = holiday_calendars.country_holidays(country) if country else {}
        self.closed = {date.fromisoformat(d) for d in config.get("closed", [])}
        self.extra = {date.fromisoformat(d) for d in config.get("open", [])}
        self._cache: dict[datetime, bool] = {}

    def open_at(self, step: datetime) -> bool:
        if step not in self._cache:
            self._cache[step] = self._open_at(step)
        return self._cache[step]

    def _open_at(self, step: datetime) -> bool:
        if self.hours == "always":
            return True
        local = step.astimezone(self.zone)
        day = local.date()
        if day not in self.extra and (day in self.closed or day in self.public):
            return False
        spans = self.hours.get(WEEKDAYS[day.weekday()], [])
        if not spans and day in self.extra:
            spans = self.hours["mon"]
        minute = local.hour * 60 + local.minute
        for span in spans:
            start, end = (int(h) * 60 + int(m) for h, m in (part.split(":") for part in span.split("-")))
            if start <= minute < end:
                return True
        return False

    def minutes(self, start: datetime, end: datetime) -> float:
        steps = 0
        at = start
        while at < end:
            steps += self.open_at(at)
            at += STEP
        return steps * 15.0

    def add(self, start: datetime, minutes: float) -> datetime:
        at, left = start, minutes
        while left > 0:
            if self.open_at(at):
                left -= 15
            at += STEP
        return at


@dataclass
class Played:
    """One ticket's history as the oracle reads it."""

    ticket_id: int
    created: datetime
    priority: str
    agent: int | None
    domain: str
    ops: list[tuple[datetime, str]]
    tags: tuple[str, ...] = ()
    # filled in by :meth:`replay`
    status: str = "open"
    transitions: list[tuple[datetime, str, str]] = field(default_factory=list)
    first_response: datetime | None = None
    replies: int = 0
    messages: list[datetime] = field(default_factory=list)
    rating: tuple[datetime, int] | None = None

    def replay(self) -> None:
        """The statuses, replies and rating that the operations give, by the rules in words:
        a customer's reply reopens a solved, closed or pending ticket (unless it is no later than the
        solve), the first agent reply answers, automatic mail counts for nothing."""
        status, solved_at = "open", None
        self.messages = [self.created]
        scores = {"good": 5, "okay": 3, "bad": 1}
        for at, op in self.ops:
            new = None
            if op == "agent_reply":
                self.replies += 1
                self.messages.append(at)
                self.first_response = self.first_response or at
            elif op == "customer_reply":
                self.messages.append(at)
                if status in (*DONE, "pending") and (solved_at is None or at > solved_at):
                    new = "open"
            elif op in ("pending", "on_hold", "open"):
                new = op
            elif op == "solve":
                new = "solved"
            elif op == "close":
                new = "closed"
            elif op.startswith("rate_"):
                score = scores[op.removeprefix("rate_")]
                if self.rating is None or self.rating[1] != score:
                    self.rating = (at, score)
            if new is not None and new != status:
                self.transitions.append((at, status, new))
                if new in DONE and status not in DONE:
                    solved_at = at
                elif new not in DONE:
                    solved_at = None
                status = new
        self.status = status

    def status_at(self, instant: datetime) -> str | None:
        if instant <= self.created:
            return None
        status = "open"
        for at, _was, became in self.transitions:
            if at < instant:
                status = became
        return status

    @property
    def solved_at(self) -> datetime | None:
        if self.status not in DONE:
            return None
        return next(
            at for at, was, became in reversed(self.transitions) if became in DONE and was not in DONE
        )

    @property
    def reopens(self) -> list[datetime]:
        return [at for at, was, became in self.transitions if was in DONE and became not in DONE]

    def paused(self, calendar: OracleCalendar, until: datetime) -> float:
        """Business minutes spent pending or on hold before ``until``."""
        total, since = 0.0, None
        for at, _was, became in self.transitions:
            if at > until:
                break
            if became in PAUSING and since is None:
                since = at
            elif became not in PAUSING and since is not None:
                total += calendar.minutes(since, at)
                since = None
        return total

    def measures(self, calendar: OracleCalendar) -> dict[str, Any]:
        first_target, resolution_target = TARGETS[self.priority]
        found: dict[str, Any] = {"fr": None, "fr_cal": None, "fr_breached": None,
                                 "res": None, "res_cal": None, "res_breached": None,
                                 "fr_due": None, "res_due": None}  # fmt: skip
        if self.first_response is not None:
            found["fr"] = calendar.minutes(self.created, self.first_response)
            found["fr_cal"] = (self.first_response - self.created).total_seconds() / 60
            found["fr_breached"] = found["fr"] > first_target
        solved = self.solved_at
        if solved is not None:
            found["res"] = max(0.0, calendar.minutes(self.created, solved) - self.paused(calendar, solved))
            found["res_cal"] = (solved - self.created).total_seconds() / 60
            found["res_breached"] = found["res"] > resolution_target
        if self.status not in DONE:
            if self.first_response is None:
                found["fr_due"] = calendar.add(self.created, first_target)
            if self.status not in PAUSING:
                everything = self.created + timedelta(days=3650)  # every pause has ended
                found["res_due"] = calendar.add(
                    self.created, resolution_target + self.paused(calendar, everything)
                )
        return found


_ids = itertools.count()


def new_mailbox(session: Session, name: str, calendar: dict[str, Any]) -> tuple[Any, list[Any]]:
    """A fresh mailbox with this business calendar and two agents (a test's own, so scopes stay apart)."""
    box = add_mailbox(session, MailboxSpec(f"{name}@example.com", AuthKind.SANDBOX, "http://127.0.0.1:9/"))
    box.settings = {"calendar": calendar}
    agents = [ensure_agent(session, f"{name}-{who}@example.com", who, mailbox=box) for who in ("ann", "bob")]
    session.flush()
    return box, agents


def play(session: Session, box: Any, agents: list[Any], played: Played) -> None:
    """Drive one history through the ticket actions, as sync, the add-on and the rating page do."""
    n = next(_ids)
    customer = Customer(mailbox_id=box.id, email=f"customer{n}@{played.domain}")
    session.add(customer)
    thread = f"t{n}"
    ticket = tickets.open_ticket(session, box.id, subject=f"Subject {played.priority}", customer=customer,
                                 gmail_thread_id=thread, created_at=played.created)  # fmt: skip
    _message(session, box, ticket, Direction.INBOUND, played.created)
    tickets.set_priority(session, ticket, Priority(played.priority), at=played.created)
    if played.agent is not None:
        tickets.assign(session, ticket, agents[played.agent].id, at=played.created)
    for tag in played.tags:
        tickets.add_tag(session, ticket, tag, at=played.created)
    statuses = {"pending": TicketStatus.PENDING, "on_hold": TicketStatus.ON_HOLD, "open": TicketStatus.OPEN,
                "solve": TicketStatus.SOLVED, "close": TicketStatus.CLOSED}  # fmt: skip
    for at, op in played.ops:
        if op == "agent_reply":
            _message(session, box, ticket, Direction.OUTBOUND, at)
            tickets.record_agent_reply(session, ticket, at=at)
        elif op == "auto_reply":
            _message(session, box, ticket, Direction.OUTBOUND, at, auto=True)
        elif op == "customer_reply":
            _message(session, box, ticket, Direction.INBOUND, at)
            if ticket.solved_at is None or at > ticket.solved_at:
                tickets.reopen(session, ticket, reason="customer replied", at=at)
        elif op in statuses:
            tickets.set_status(session, ticket, statuses[op], at=at)
        else:
            csat.rate(session, ticket, op.removeprefix("rate_"), at=at)
    session.flush()
    played.ticket_id = ticket.id
    played.replay()


def _message(
    session: Session, box: Any, ticket: Any, direction: Direction, at: datetime, *, auto: bool = False
) -> None:
    n = next(_ids)
    tickets.touch(ticket, at)  # as sync does for every message it files
    session.add(Message(mailbox_id=box.id, ticket_id=ticket.id, gmail_id=f"g{n}", gmail_thread_id=ticket.gmail_thread_id,
                        direction=direction.value, sent_at=at, is_auto=auto,
                        auto_reason="Auto-Submitted: auto-replied" if auto else None))  # fmt: skip


def local_day_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def percentile(values: Iterable[float], p: float) -> float | None:
    """The obvious percentile_cont: sort, find the position p·(n−1), interpolate."""
    ordered = sorted(values)
    if not ordered:
        return None
    if len(ordered) == 1:
        return ordered[0]
    if p == 0.5:
        return statistics.median(ordered)
    return statistics.quantiles(ordered, n=10, method="inclusive")[int(p * 10) - 1]
