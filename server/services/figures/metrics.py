"""The reports' figures, each defined once (docs/reports.md says each in words).

A figure is a **set of tickets** (:func:`ticket_set`: the tickets it counts, and the very list a
drill-down shows) and an aggregate over it, which the database computes: counts, means and
percentiles (``percentile_cont``'s interpolation, from window functions that SQLite and PostgreSQL
both run, so the database returns at most two rows per percentile), per day, per agent or per tag.
Business-time figures read the minutes each ticket action wrote on the ticket when the measure
completed (server.services.tickets), so no report walks a calendar.

Every figure is scoped (:class:`Scope`: mailboxes, agent, tag, priority, customer domain) and most are
bounded by a :class:`Period` of local days in the viewer's time zone, read through indexes on its own
columns: a report of thirty days reads thirty days, however long the history. The "now" figures
(backlog, unanswered, waiting, overdue) read the active tickets only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Select, and_, case, cast, false, func, literal, or_, select, true
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from rules.model import ACTIVE_STATUSES, DONE_STATUSES
from server.base.models import CsatRating, Customer, Event, Message, Ticket, TicketStatus, TicketTag

#: A CSAT score (1–5) of at least this is "satisfied" (good, 4 or 5).
SATISFIED_SCORE = 4
#: The percentiles the reports show, as fractions (``percentile_cont``).
PERCENTILES = {"median": Fraction(1, 2), "p90": Fraction(9, 10)}
#: Buckets of the time-of-day grouping: every UTC offset in use is a multiple of 15 minutes.
BUCKET_SECONDS = 15 * 60
#: The longest period a report reads (days).
MAX_PERIOD_DAYS = 3 * 366
#: Age buckets of the backlog (upper bounds in hours; the last has none).
AGE_BUCKETS = (("1d", 24), ("3d", 72), ("7d", 168), ("30d", 720), ("older", None))
#: Buckets of the first-response distribution (upper bounds in business minutes).
RESPONSE_BUCKETS = (("1h", 60), ("4h", 240), ("8h", 480), ("24h", 1440), ("3d", 4320), ("more", None))

#: The named sets of tickets, each a figure's tickets and a drill-down's list.
PERIOD_SETS = (
    "new", "active", "solved", "reopened", "responded", "fr_met", "fr_missed",
    "res_met", "res_missed", "fcr", "rated", "satisfied", "faq_answered", "faq_deflected",
)  # fmt: skip
NOW_SETS = ("backlog", "unanswered", "waiting", "overdue")
SETS = PERIOD_SETS + NOW_SETS


@dataclass(frozen=True)
class Scope:
    """Whose tickets: always some mailboxes (those the viewer may read), optionally narrowed."""

    mailbox_ids: tuple[int, ...]
    agent_id: int | None = None
    tag: str | None = None
    priority: str | None = None
    domain: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        # A merged ticket counts once, as its survivor.
        found: list[ColumnElement[bool]] = [
            Ticket.mailbox_id.in_(self.mailbox_ids or (-1,)),
            Ticket.status != "merged",
        ]
        if self.agent_id is not None:
            found.append(Ticket.assignee_id == self.agent_id)
        if self.priority:
            found.append(Ticket.priority == self.priority)
        if self.tag:
            # Its own alias: a per-tag table joins ticket_tags too, and must not correlate with this one.
            other = aliased(TicketTag)
            tagged = select(other.ticket_id).where(other.ticket_id == Ticket.id, other.name == self.tag)
            found.append(tagged.correlate(Ticket).exists())
        if self.domain:
            customers = select(Customer.id).where(
                Customer.mailbox_id.in_(self.mailbox_ids or (-1,)),
                func.lower(Customer.email).endswith("@" + self.domain.lower(), autoescape=True),
            )
            found.append(Ticket.customer_id.in_(customers))
        return found


@dataclass(frozen=True)
class Period:
    """Whole local days ``first`` … ``last`` in ``zone``: instants ``start`` ≤ t < ``end`` (UTC)."""

    first: date
    last: date
    zone: ZoneInfo

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError("the period ends before it starts")
        if (self.last - self.first).days >= MAX_PERIOD_DAYS:
            raise ValueError(f"a report covers at most {MAX_PERIOD_DAYS} days")

    @classmethod
    def last_days(cls, days: int, today: date, zone: ZoneInfo) -> Period:
        return cls(today - timedelta(days=days - 1), today, zone)

    def local_midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), self.zone).astimezone(UTC)

    @property
    def start(self) -> datetime:
        return self.local_midnight(self.first)

    @property
    def end(self) -> datetime:
        return self.local_midnight(self.last + timedelta(days=1))

    @property
    def length(self) -> int:
        return (self.last - self.first).days + 1

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range(self.length)]

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        return replace(
            self, first=self.first - timedelta(days=self.length), last=self.first - timedelta(days=1)
        )

    def within(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= self.start, column < self.end)


# --- the sets of tickets ------------------------------------------------------------------------------
def _events_in(scope: Scope, period: Period) -> Select[Any]:
    return select(Event.ticket_id).where(
        Event.mailbox_id.in_(scope.mailbox_ids or (-1,)),
        Event.kind == "status_changed",
        period.within(Event.created_at),
        Event.before["status"].as_string().in_(DONE_STATUSES),
        Event.after["status"].as_string().not_in(DONE_STATUSES),
    )


def set_conditions(name: str, scope: Scope, period: Period, now: datetime) -> list[ColumnElement[bool]]:
    """The conditions on ``Ticket`` that make the named set (see docs/reports.md for each in words)."""
    active = Ticket.status.in_(ACTIVE_STATUSES)
    solved = and_(Ticket.status.in_(DONE_STATUSES), period.within(Ticket.solved_at))
    # Anything that happened to a ticket in the period moved its updated_at past the period's start:
    # the index on it keeps the sets found through messages, Events and ratings to the period.
    touched = Ticket.updated_at >= period.start
    responded = period.within(Ticket.first_responded_at)
    passed = min(period.end, now)  # a target "passed in the period" passed before now, too
    found: dict[str, Any] = {
        "new": lambda: period.within(Ticket.created_at),
        "active": lambda: (
            touched
            & Ticket.id.in_(
                select(Message.ticket_id).where(
                    Message.mailbox_id.in_(scope.mailbox_ids or (-1,)),
                    period.within(Message.sent_at),
                    Message.is_auto.is_(false()),
                    Message.ticket_id.is_not(None),
                )
            )
        ),
        "solved": lambda: solved,
        "reopened": lambda: touched & Ticket.id.in_(_events_in(scope, period)),
        "responded": lambda: responded,
        "fr_met": lambda: and_(responded, Ticket.first_response_breached.is_(false())),
        "fr_missed": lambda: or_(
            and_(responded, Ticket.first_response_breached.is_(true())),
            and_(
                active,
                Ticket.first_responded_at.is_(None),
                Ticket.first_response_due_at >= period.start,
                Ticket.first_response_due_at < passed,
            ),
        ),
        "res_met": lambda: and_(solved, Ticket.resolution_breached.is_(false())),
        "res_missed": lambda: or_(
            and_(solved, Ticket.resolution_breached.is_(true())),
            and_(active, Ticket.resolution_due_at >= period.start, Ticket.resolution_due_at < passed),
        ),
        "fcr": lambda: and_(solved, Ticket.agent_replies == 1, Ticket.reopens == 0),
        "rated": lambda: touched & Ticket.id.in_(_rated(scope, period)),
        "satisfied": lambda: (
            touched & Ticket.id.in_(_rated(scope, period).where(CsatRating.score >= SATISFIED_SCORE))
        ),
        # An FAQ answer went out in the acknowledgement (server.services.knowledge.faq) …
        "faq_answered": lambda: touched & Ticket.id.in_(_with_event("faq_answered", scope, period)),
        # … and the customer said it solved their question, with no agent's reply needed.
        "faq_deflected": lambda: (
            touched & Ticket.id.in_(_with_event("faq_solved", scope, period)) & (Ticket.agent_replies == 0)
        ),
        "backlog": lambda: active,
        "unanswered": lambda: and_(active, Ticket.first_responded_at.is_(None)),
        "waiting": lambda: Ticket.status == TicketStatus.PENDING.value,
        "overdue": lambda: and_(active, Ticket.due_at < now),
    }
    if name not in found:
        raise KeyError(name)
    return [*scope.conditions(), found[name]()]


def _with_event(kind: str, scope: Scope, period: Period) -> Select[Any]:
    return select(Event.ticket_id).where(
        Event.mailbox_id.in_(scope.mailbox_ids or (-1,)), Event.kind == kind, period.within(Event.created_at)
    )


def _rated(scope: Scope, period: Period) -> Select[Any]:
    return select(CsatRating.ticket_id).where(
        CsatRating.mailbox_id.in_(scope.mailbox_ids or (-1,)), period.within(CsatRating.rated_at)
    )


def ticket_set(name: str, scope: Scope, period: Period, now: datetime) -> Select[Any]:
    """The tickets of a named set, newest first: what a drill-down lists and the CSV exports."""
    return (
        select(Ticket)
        .where(*set_conditions(name, scope, period, now))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
    )


def count(session: Session, name: str, scope: Scope, period: Period, now: datetime) -> int:
    return int(
        session.scalar(select(func.count(Ticket.id)).where(*set_conditions(name, scope, period, now))) or 0
    )


def count_by(
    session: Session, name: str, group: Any, scope: Scope, period: Period, now: datetime
) -> dict[Any, int]:
    """The set's tickets counted per ``group`` (``Ticket.assignee_id``, ``TicketTag.name`` …)."""
    query = select(group, func.count(Ticket.id)).where(*set_conditions(name, scope, period, now))
    if _is_tag(group):
        query = query.join(TicketTag, TicketTag.ticket_id == Ticket.id)
    return {key: int(n) for key, n in session.execute(query.group_by(group)).all()}


def _is_tag(group: Any) -> bool:
    return getattr(group, "table", None) is TicketTag.__table__


# --- summaries: count, mean, median, p90 ----------------------------------------------------------------
@dataclass(frozen=True)
class Summary:
    count: int = 0
    mean: float | None = None
    median: float | None = None
    p90: float | None = None


def summaries(
    session: Session,
    value: Any,
    conditions: Sequence[ColumnElement[bool]],
    group: Any = None,
) -> dict[Any, Summary]:
    """Count, mean and percentiles of ``value`` over the tickets matching ``conditions``, per ``group``
    (one entry, key None, without a group). The database ranks the values; only the rows each
    percentile interpolates between come back."""
    key = group if group is not None else literal(None)
    ranked_query = select(
        key.label("g"),
        value.label("v"),
        func.row_number().over(partition_by=key, order_by=value).label("rn"),
        func.count().over(partition_by=key).label("n"),
        func.avg(value).over(partition_by=key).label("mean"),
    ).where(*conditions, value.is_not(None))
    if group is not None and _is_tag(group):
        ranked_query = ranked_query.join(TicketTag, TicketTag.ticket_id == Ticket.id)
    ranked = ranked_query.subquery()
    wanted = [
        ranked.c.rn.between(_lower_rank(ranked.c.n, p), _lower_rank(ranked.c.n, p) + 1)
        for p in PERCENTILES.values()
    ]
    rows = session.execute(
        select(ranked.c.g, ranked.c.v, ranked.c.rn, ranked.c.n, ranked.c.mean).where(or_(*wanted))
    )
    values: dict[Any, dict[int, float]] = defaultdict(dict)
    sizes: dict[Any, tuple[int, float]] = {}
    for row in rows:
        values[row.g][int(row.rn)] = float(row.v)
        sizes[row.g] = (int(row.n), float(row.mean))
    result = {}
    for g, (n, mean) in sizes.items():
        ranks = values[g]
        result[g] = Summary(n, mean, *(interpolate(ranks, n, p) for p in PERCENTILES.values()))
    return result


def _lower_rank(n: Any, p: Fraction) -> Any:
    """The 1-based rank just below the percentile's position ``p·(n−1)`` (integer division in SQL)."""
    return (literal(p.numerator) * (n - 1)) // literal(p.denominator) + 1


def interpolate(ranks: dict[int, float], n: int, p: Fraction) -> float:
    """``percentile_cont``: between the values at ranks ⌊p·(n−1)⌋+1 and the next, linearly."""
    position = p * (n - 1)
    low = int(position)  # floor: position is not negative
    below = ranks[low + 1]
    if position == low:
        return below
    return below + (ranks[low + 2] - below) * float(position - low)


def summary(session: Session, value: Any, conditions: Sequence[ColumnElement[bool]]) -> Summary:
    return summaries(session, value, conditions).get(None, Summary())


# --- over time ------------------------------------------------------------------------------------
def _bucket(session: Session, column: Any) -> Any:
    """The 15-minute bucket of an instant (seconds since the epoch // 900), in the database's own terms."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.floor(func.extract("epoch", column) / BUCKET_SECONDS), Integer)
    return cast(func.strftime("%s", column), Integer) // BUCKET_SECONDS


def _local(bucket: int, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(int(bucket) * BUCKET_SECONDS, UTC).astimezone(zone)


def bucketed(
    session: Session, column: Any, conditions: Sequence[ColumnElement[bool]], *extra: Any
) -> Iterator[tuple[int, int, tuple[Any, ...]]]:
    """(bucket, count, extra values) of the matching rows, grouped in the database."""
    bucket = _bucket(session, column).label("bucket")
    query = select(bucket, func.count(), *extra).where(*conditions).group_by(bucket, *extra)
    for row in session.execute(query):
        yield int(row[0]), int(row[1]), tuple(row[2:])


def per_day(
    session: Session, column: Any, conditions: Sequence[ColumnElement[bool]], period: Period
) -> dict[date, int]:
    """The rows counted per local day of ``column`` (every day of the period, zeros included)."""
    days = dict.fromkeys(period.days(), 0)
    for bucket, n, _extra in bucketed(session, column, conditions):
        day = _local(bucket, period.zone).date()
        if day in days:
            days[day] += n
    return days


def busiest_hours(session: Session, scope: Scope, period: Period, now: datetime) -> list[list[int]]:
    """New tickets per local weekday (Monday first) and hour: 7 rows of 24 counts."""
    grid = [[0] * 24 for _ in range(7)]
    for bucket, n, _extra in bucketed(session, Ticket.created_at, set_conditions("new", scope, period, now)):
        local = _local(bucket, period.zone)
        grid[local.weekday()][local.hour] += n
    return grid


def backlog_per_day(
    session: Session, scope: Scope, period: Period, now: datetime
) -> dict[date, dict[str, int]]:
    """Active tickets per status at the end of each day of the period that has ended (or now, for today).

    Counted back from now: today's counts, less each change since the day's end (a status change moves
    one ticket from its old status to its new one; a new ticket came in ``open``). Reads the changes
    since the period's start, never the history before it."""
    if (now.astimezone(period.zone).date() - period.first).days >= MAX_PERIOD_DAYS:
        return {}  # counted back from now: never further back than a report's longest period
    current = dict.fromkeys(ACTIVE_STATUSES, 0)
    query = select(Ticket.status, func.count(Ticket.id)).where(*set_conditions("backlog", scope, period, now))
    for status, n in session.execute(query.group_by(Ticket.status)):
        current[status] = int(n)
    since = replace(period, last=max(period.last, now.astimezone(period.zone).date()))
    changes: list[tuple[datetime, str | None, str | None, int]] = []
    came_in = Ticket.created_at
    for bucket, n, _extra in bucketed(session, came_in, [*scope.conditions(), since.within(came_in)]):
        changes.append((_local(bucket, UTC), None, TicketStatus.OPEN.value, n))
    before, after = Event.before["status"].as_string(), Event.after["status"].as_string()
    moved = [
        *scope.conditions(),
        Event.ticket_id == Ticket.id,
        Ticket.updated_at >= since.start,
        Event.mailbox_id.in_(scope.mailbox_ids or (-1,)),
        Event.kind == "status_changed",
        since.within(Event.created_at),
    ]
    for bucket, n, (was, became) in bucketed(session, Event.created_at, moved, before, after):
        changes.append((_local(bucket, UTC), was, became, n))
    result: dict[date, dict[str, int]] = {}
    for day in period.days():
        end = min(period.local_midnight(day + timedelta(days=1)), now)
        if period.local_midnight(day) > now:
            break
        counts = dict(current)
        for at, was, became, n in changes:
            if at >= end:
                if became in counts:
                    counts[became] -= n
                if was in counts:
                    counts[was] += n
        result[day] = counts
    return result


def backlog_by_age(session: Session, scope: Scope, now: datetime) -> dict[str, dict[str, int]]:
    """Active tickets now, per status and age bucket (since the ticket came in)."""
    whens = [(Ticket.created_at > now - timedelta(hours=hours), name) for name, hours in AGE_BUCKETS if hours]
    age = case(*whens, else_=literal(AGE_BUCKETS[-1][0])).label("age")
    query = select(Ticket.status, age, func.count(Ticket.id)).where(
        *scope.conditions(), Ticket.status.in_(ACTIVE_STATUSES)
    )
    result = {status: dict.fromkeys((name for name, _h in AGE_BUCKETS), 0) for status in ACTIVE_STATUSES}
    for status, bucket, n in session.execute(query.group_by(Ticket.status, age)):
        result[status][bucket] = int(n)
    return result


def response_distribution(session: Session, scope: Scope, period: Period, now: datetime) -> dict[str, int]:
    """First responses of the period per bucket of business time."""
    value = Ticket.first_response_business_minutes
    whens = [(value <= minutes, name) for name, minutes in RESPONSE_BUCKETS if minutes]
    bucket = case(*whens, else_=literal(RESPONSE_BUCKETS[-1][0])).label("bucket")
    query = select(bucket, func.count(Ticket.id)).where(
        *set_conditions("responded", scope, period, now), value.is_not(None)
    )
    result = dict.fromkeys((name for name, _m in RESPONSE_BUCKETS), 0)
    for name, n in session.execute(query.group_by(bucket)):
        result[name] = int(n)
    return result


def csat_per_day(session: Session, scope: Scope, period: Period) -> dict[date, tuple[int, int]]:
    """(ratings, satisfied) per local day of the rating."""
    days = dict.fromkeys(period.days(), (0, 0))
    satisfied = func.sum(case((CsatRating.score >= SATISFIED_SCORE, 1), else_=0))
    conditions = [*scope.conditions(), CsatRating.ticket_id == Ticket.id, Ticket.updated_at >= period.start,
                  period.within(CsatRating.rated_at)]  # fmt: skip
    for bucket, n, (good,) in _bucketed_sum(session, CsatRating.rated_at, conditions, satisfied):
        day = _local(bucket, period.zone).date()
        if day in days:
            days[day] = (days[day][0] + n, days[day][1] + int(good or 0))
    return days


def _bucketed_sum(
    session: Session, column: Any, conditions: Sequence[ColumnElement[bool]], total: Any
) -> Iterator[tuple[int, int, tuple[Any, ...]]]:
    bucket = _bucket(session, column).label("bucket")
    for row in session.execute(select(bucket, func.count(), total).where(*conditions).group_by(bucket)):
        yield int(row[0]), int(row[1]), (row[2],)


def csat_summary(session: Session, scope: Scope, period: Period) -> tuple[int, int, float | None]:
    """(ratings, satisfied, mean score 1–5) of the ratings given in the period."""
    satisfied = func.sum(case((CsatRating.score >= SATISFIED_SCORE, 1), else_=0))
    row = session.execute(
        select(func.count(), satisfied, func.avg(CsatRating.score)).where(
            *scope.conditions(),
            CsatRating.ticket_id == Ticket.id,
            Ticket.updated_at >= period.start,
            period.within(CsatRating.rated_at),
        )
    ).one()
    return int(row[0]), int(row[1] or 0), float(row[2]) if row[2] is not None else None


def nps_summary(session: Session, scope: Scope, period: Period) -> tuple[int, int, int]:
    """(answers, promoters 9–10, detractors 0–6) of the NPS answers of ratings given in the period."""
    promoters = func.sum(case((CsatRating.nps >= 9, 1), else_=0))
    detractors = func.sum(case((CsatRating.nps <= 6, 1), else_=0))
    row = session.execute(
        select(func.count(CsatRating.nps), promoters, detractors).where(
            *scope.conditions(),
            CsatRating.ticket_id == Ticket.id,
            Ticket.updated_at >= period.start,
            period.within(CsatRating.rated_at),
            CsatRating.nps.is_not(None),
        )
    ).one()
    return int(row[0]), int(row[1] or 0), int(row[2] or 0)


def top(
    session: Session, key: Any, scope: Scope, period: Period, now: datetime, limit: int = 10
) -> list[tuple[str, int]]:
    """The most frequent values of ``key`` (a tag, a subject) among the period's new tickets."""
    query = select(key, func.count(Ticket.id).label("n")).where(*set_conditions("new", scope, period, now))
    if _is_tag(key):
        query = query.join(TicketTag, TicketTag.ticket_id == Ticket.id)
    query = query.group_by(key).order_by(func.count(Ticket.id).desc(), key).limit(limit)
    return [(str(value), int(n)) for value, n in session.execute(query)]


def share(part: int, whole: int) -> float | None:
    """``part`` of ``whole`` as a percentage, None when there is nothing to share."""
    return None if whole <= 0 else 100.0 * part / whole


# --- the overview: what the page's tiles show ----------------------------------------------------------
@dataclass(frozen=True)
class Overview:
    counts: dict[str, int]
    first_response: Summary
    first_response_calendar: Summary
    resolution: Summary
    resolution_calendar: Summary
    replies_per_ticket: float | None
    csat: tuple[int, int, float | None]
    nps: tuple[int, int, int] = (0, 0, 0)

    @property
    def first_response_sla(self) -> float | None:
        met = self.counts["fr_met"]
        return share(met, met + self.counts["fr_missed"])

    @property
    def resolution_sla(self) -> float | None:
        met = self.counts["res_met"]
        return share(met, met + self.counts["res_missed"])

    @property
    def fcr(self) -> float | None:
        return share(self.counts["fcr"], self.counts["solved"])

    @property
    def faq_deflection(self) -> float | None:
        """Of the tickets that got an FAQ answer, the share the customer said it solved, unanswered."""
        return share(self.counts.get("faq_deflected", 0), self.counts.get("faq_answered", 0))

    @property
    def csat_score(self) -> float | None:
        return share(self.csat[1], self.csat[0])

    @property
    def nps_score(self) -> float | None:
        """% promoters − % detractors (−100 … 100), None without answers."""
        answers, promoters, detractors = self.nps
        return None if not answers else 100.0 * (promoters - detractors) / answers


def overview(
    session: Session, scope: Scope, period: Period, now: datetime, *, sets: Iterable[str] = SETS
) -> Overview:
    counts = {name: count(session, name, scope, period, now) for name in sets}
    responded = set_conditions("responded", scope, period, now)
    solved = set_conditions("solved", scope, period, now)
    replies = session.scalar(select(func.avg(Ticket.agent_replies)).where(*solved))
    return Overview(
        counts=counts,
        first_response=summary(session, Ticket.first_response_business_minutes, responded),
        first_response_calendar=summary(session, Ticket.first_response_minutes, responded),
        resolution=summary(session, Ticket.resolution_business_minutes, solved),
        resolution_calendar=summary(session, Ticket.resolution_minutes, solved),
        replies_per_ticket=float(replies) if replies is not None else None,
        csat=csat_summary(session, scope, period),
        nps=nps_summary(session, scope, period),
    )


# --- per agent and per tag -------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One line of the per-agent or per-tag table."""

    key: Any
    new: int
    solved: int
    backlog: int
    first_response: Summary
    resolution: Summary
    first_response_sla: float | None
    resolution_sla: float | None
    fcr: float | None
    csat: float | None


def breakdown(session: Session, group: Any, scope: Scope, period: Period, now: datetime) -> list[Row]:
    """The table per ``group`` (``Ticket.assignee_id`` or ``TicketTag.name``), busiest first."""
    counted = {name: count_by(session, name, group, scope, period, now)
               for name in ("new", "solved", "backlog", "fr_met", "fr_missed", "res_met", "res_missed", "fcr",
                            "rated", "satisfied")}  # fmt: skip
    first = summaries(
        session,
        Ticket.first_response_business_minutes,
        set_conditions("responded", scope, period, now),
        group,
    )
    resolution = summaries(
        session, Ticket.resolution_business_minutes, set_conditions("solved", scope, period, now), group
    )
    keys = {*first, *resolution}.union(*counted.values())
    rows = []
    for key in keys:
        n = {name: table.get(key, 0) for name, table in counted.items()}
        rows.append(
            Row(
                key=key,
                new=n["new"],
                solved=n["solved"],
                backlog=n["backlog"],
                first_response=first.get(key, Summary()),
                resolution=resolution.get(key, Summary()),
                first_response_sla=share(n["fr_met"], n["fr_met"] + n["fr_missed"]),
                resolution_sla=share(n["res_met"], n["res_met"] + n["res_missed"]),
                fcr=share(n["fcr"], n["solved"]),
                csat=share(n["satisfied"], n["rated"]),
            )
        )
    return sorted(rows, key=lambda row: (-(row.new + row.solved + row.backlog), str(row.key)))
