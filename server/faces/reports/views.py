"""``/reports``: the figures a team lead opens every Monday, their tickets, and their CSV.

Managers and admins read every mailbox and every agent; an agent reads their own figures (their
tickets in their mailboxes) and nothing else, whatever the query says. The filters are query
parameters (``from``/``to`` local dates or ``days``, ``mailbox``, ``agent``, ``tag``, ``priority``,
``domain``), the same on the page, the drill-down and the export; a value that is not one gets a 400
that says which. Days are the viewer's (their profile's time zone).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, Response, abort, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import aliased

from rules.model import PRIORITIES
from server.base.db import get_session
from server.base.models import Agent, Customer, Mailbox, Role, Ticket, TicketTag
from server.faces.web.access import EVERYONE, READERS, allow, current_agent
from server.services.figures import metrics
from server.services.figures.metrics import Period, Scope
from server.services.figures.tiles import minutes_text, tiles

bp = Blueprint("reports", __name__, url_prefix="/reports")

#: The quick choices of period (days up to today).
PRESETS = (7, 30, 90, 365)
DEFAULT_DAYS = 30
#: Tickets per page of a drill-down.
PAGE = 50
#: Rows fetched at a time while a CSV streams.
STREAM_BATCH = 1_000
_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9-]+(\.[a-z0-9-]+)*$")
#: Cells a spreadsheet would run as a formula (CSV injection) get a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class BadFilter(ValueError):
    pass


@dataclass(frozen=True)
class View:
    """What the viewer asked for, checked: the period and the scope, with the values to echo back."""

    period: Period
    scope: Scope
    mailboxes: list[Mailbox]
    agents: list[Agent]
    own: bool  # an agent's own figures only
    args: dict[str, str]


def _viewer_zone(agent: Agent) -> ZoneInfo:
    try:
        return ZoneInfo(agent.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _date(name: str) -> date | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadFilter(_("%(field)s: not a date (YYYY-MM-DD)", field=name)) from None


def _number(name: str) -> int | None:
    raw = request.args.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdecimal() or len(raw) > 12:
        raise BadFilter(_("%(field)s: not a number", field=name))
    return int(raw)


def read_view(now: datetime) -> View:
    """The filters of this request, checked against what the viewer may read (BadFilter: why not)."""
    me = current_agent()
    assert me is not None  # allow() let the call through
    db = get_session()
    zone = _viewer_zone(me)
    today = now.astimezone(zone).date()
    own = Role(me.role) not in READERS
    query = select(Mailbox).order_by(Mailbox.address)
    if own:
        query = query.where(Mailbox.id.in_([m.id for m in me.mailboxes] or [-1]))
    mailboxes = list(db.scalars(query))
    args: dict[str, str] = {}
    first, last = _date("from"), _date("to")
    days = _number("days")
    if days is None and (first or last):  # chosen dates (a chosen preset wins over dates left in the form)
        last = last or today
        try:
            first = first or last - timedelta(days=DEFAULT_DAYS - 1)
        except OverflowError:  # "to" in the first days of year 1
            raise BadFilter(_("period: %(problem)s", problem="before the calendar starts")) from None
        args |= {"from": first.isoformat(), "to": last.isoformat()}
    else:
        if days is not None and not 1 <= days <= metrics.MAX_PERIOD_DAYS:
            raise BadFilter(_("days: from 1 to %(n)d", n=metrics.MAX_PERIOD_DAYS))
        days = days or DEFAULT_DAYS
        first, last = today - timedelta(days=days - 1), today
        args["days"] = str(days)
    try:
        period = Period(first, last, zone)
    except ValueError as exc:
        raise BadFilter(_("period: %(problem)s", problem=str(exc))) from None
    mailbox_id = _number("mailbox")
    chosen = [m for m in mailboxes if mailbox_id is None or m.id == mailbox_id]
    if mailbox_id is not None:
        if not chosen:
            raise BadFilter(_("mailbox: not one you may read"))
        args["mailbox"] = str(mailbox_id)
    agent_id = _number("agent")
    agents: list[Agent] = []
    if own:
        agent_id = me.id
    else:
        agents = list(db.scalars(select(Agent).order_by(Agent.name, Agent.email)))
        if agent_id is not None:
            if agent_id not in {a.id for a in agents}:
                raise BadFilter(_("agent: no such agent"))
            args["agent"] = str(agent_id)
    tag = request.args.get("tag", "").strip()
    if len(tag) > 100:
        raise BadFilter(_("tag: at most 100 characters"))
    priority = request.args.get("priority", "").strip()
    if priority and priority not in PRIORITIES:
        raise BadFilter(_("priority: one of %(values)s", values=", ".join(PRIORITIES)))
    domain = request.args.get("domain", "").strip().lower().removeprefix("@")
    if domain and not _DOMAIN.match(domain):
        raise BadFilter(_("domain: a domain such as example.com"))
    args |= {key: value for key, value in (("tag", tag), ("priority", priority), ("domain", domain)) if value}
    scope = Scope(tuple(m.id for m in chosen), agent_id, tag or None, priority or None, domain or None)
    return View(period, scope, mailboxes, agents, own, args)


def _bad(problem: BadFilter) -> tuple[str, int]:
    return render_template("web/error.html", status=400, problem=str(problem)), 400


@bp.get("")
@allow(EVERYONE)
def overview() -> Any:
    now = datetime.now(UTC)
    try:
        view = read_view(now)
    except BadFilter as problem:
        return _bad(problem)
    figures = page_figures(get_session(), view.scope, view.period, now, per_agent=not view.own)
    period_tiles, now_tiles = tiles(figures["current"], figures["previous"])
    return render_template(
        "reports/overview.html",
        view=view,
        period_tiles=period_tiles,
        now_tiles=now_tiles,
        agent_names={a.id: a.name or a.email for a in view.agents},
        presets=PRESETS,
        priorities=PRIORITIES,
        section="reports",
        **figures,
    )


def page_figures(db: Any, scope: Scope, period: Period, now: datetime, *, per_agent: bool) -> dict[str, Any]:
    """Everything the overview page shows (``make bench`` times exactly this)."""
    new = metrics.set_conditions("new", scope, period, now)
    solved = metrics.set_conditions("solved", scope, period, now)
    responded = metrics.set_conditions("responded", scope, period, now)
    met = metrics.set_conditions("fr_met", scope, period, now)
    current = metrics.overview(db, scope, period, now)
    return {
        "current": current,
        "previous": metrics.overview(db, scope, period.previous(), now, sets=metrics.PERIOD_SETS),
        "csat": current.csat,
        "charts": {
            "volume": _series(
                period,
                {
                    "new": metrics.per_day(db, Ticket.created_at, new, period),
                    "solved": metrics.per_day(db, Ticket.solved_at, solved, period),
                },
            ),  # fmt: skip
            "sla": _sla_series(
                period,
                metrics.per_day(db, Ticket.first_responded_at, met, period),
                metrics.per_day(db, Ticket.first_responded_at, responded, period),
            ),
            "backlog": metrics.backlog_per_day(db, scope, period, now),
            "distribution": metrics.response_distribution(db, scope, period, now),
            "heatmap": metrics.busiest_hours(db, scope, period, now),
            "csat": metrics.csat_per_day(db, scope, period),
        },
        "by_agent": metrics.breakdown(db, Ticket.assignee_id, scope, period, now) if per_agent else [],
        "by_tag": metrics.breakdown(db, TicketTag.name, scope, period, now),
        "top_subjects": metrics.top(db, Ticket.subject, scope, period, now),
        "ages": metrics.backlog_by_age(db, scope, now),
    }


def _series(period: Period, named: dict[str, dict[date, int]]) -> list[dict[str, Any]]:
    return [{"day": day, **{name: values[day] for name, values in named.items()}} for day in period.days()]


def _sla_series(period: Period, met: dict[date, int], responded: dict[date, int]) -> list[dict[str, Any]]:
    return [
        {"day": day, "share": metrics.share(met[day], responded[day]), "n": responded[day]}
        for day in period.days()
    ]


SET_TITLES = {
    "new": _l("New tickets"),
    "active": _l("Active tickets"),
    "solved": _l("Solved tickets"),
    "reopened": _l("Reopened tickets"),
    "responded": _l("First responses"),
    "fr_met": _l("First responses within target"),
    "fr_missed": _l("First responses that missed the target"),
    "res_met": _l("Resolutions within target"),
    "res_missed": _l("Resolutions that missed the target"),
    "fcr": _l("Solved at first contact"),
    "rated": _l("Rated tickets"),
    "satisfied": _l("Satisfied customers"),
    "faq_answered": _l("Tickets that got an FAQ answer"),
    "faq_deflected": _l("Solved by an FAQ answer, no reply needed"),
    "backlog": _l("Backlog now"),
    "unanswered": _l("Unanswered now"),
    "waiting": _l("Waiting on the customer"),
    "overdue": _l("Overdue now"),
}


def _set_name() -> str:
    name = request.args.get("set", "new")
    if name not in metrics.SETS:
        raise BadFilter(_("set: one of %(values)s", values=", ".join(metrics.SETS)))
    return name


@bp.get("/tickets")
@allow(EVERYONE)
def drill_down() -> Any:
    """The tickets behind one figure, newest first."""
    now = datetime.now(UTC)
    try:
        view = read_view(now)
        name = _set_name()
    except BadFilter as problem:
        return _bad(problem)
    try:
        page = max(1, min(int(request.args.get("page", "1")), 100_000))
    except ValueError:
        page = 1
    db = get_session()
    query = metrics.ticket_set(name, view.scope, view.period, now)
    rows = db.scalars(query.offset((page - 1) * PAGE).limit(PAGE + 1)).all()
    total = metrics.count(db, name, view.scope, view.period, now)
    agent_ids = {t.assignee_id for t in rows if t.assignee_id} or {-1}
    customer_ids = {t.customer_id for t in rows if t.customer_id} or {-1}
    people = {a.id: a.name or a.email for a in db.scalars(select(Agent).where(Agent.id.in_(agent_ids)))}
    customers = {c.id: c.email for c in db.scalars(select(Customer).where(Customer.id.in_(customer_ids)))}
    boxes = {m.id: m.address for m in view.mailboxes}
    return render_template(
        "reports/tickets.html",
        view=view,
        name=name,
        title=SET_TITLES[name],
        tickets=rows[:PAGE],
        more=len(rows) > PAGE,
        page=page,
        total=total,
        people=people,
        customers=customers,
        boxes=boxes,
        presets=PRESETS,
        priorities=PRIORITIES,
        section="reports",
    )


# --- CSV -----------------------------------------------------------------------------------------
TICKET_COLUMNS = (
    "mailbox", "number", "subject", "customer", "status", "priority", "assignee", "tags", "created_at",
    "first_responded_at", "solved_at", "first_response_minutes", "first_response_business_minutes",
    "first_response_breached", "resolution_minutes", "resolution_business_minutes", "resolution_breached",
    "agent_replies", "reopens", "due_at",
)  # fmt: skip
TABLES = ("tickets", "agents", "tags", "days", "subjects", "ages")


def cell(value: Any) -> str:
    """One CSV cell: text as it is, except a leading formula character, which a spreadsheet would run."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_lines(rows: Iterator[list[Any]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        writer.writerow([cell(v) for v in row])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _ticket_rows(view: View, name: str, now: datetime) -> Iterator[list[Any]]:
    db = get_session()
    assignee = aliased(Agent)
    base = metrics.ticket_set(name, view.scope, view.period, now)
    query = (
        base.with_only_columns(
            Mailbox.address,
            Ticket.number,
            Ticket.subject,
            Customer.email,
            Ticket.status,
            Ticket.priority,
            assignee.email,
            Ticket.id,
            Ticket.created_at,
            Ticket.first_responded_at,
            Ticket.solved_at,
            Ticket.first_response_minutes,
            Ticket.first_response_business_minutes,
            Ticket.first_response_breached,
            Ticket.resolution_minutes,
            Ticket.resolution_business_minutes,
            Ticket.resolution_breached,
            Ticket.agent_replies,
            Ticket.reopens,
            Ticket.due_at,
        )  # fmt: skip
        .join(Mailbox, Mailbox.id == Ticket.mailbox_id)
        .outerjoin(Customer, Customer.id == Ticket.customer_id)
        .outerjoin(assignee, assignee.id == Ticket.assignee_id)
        .order_by(None)
        .order_by(Ticket.id)
        .execution_options(yield_per=STREAM_BATCH)
    )
    yield list(TICKET_COLUMNS)
    for chunk in db.execute(query).partitions():
        tags: dict[int, list[str]] = {}
        for ticket_id, tag in db.execute(
            select(TicketTag.ticket_id, TicketTag.name).where(TicketTag.ticket_id.in_([r[7] for r in chunk]))
        ):
            tags.setdefault(ticket_id, []).append(tag)
        for row in chunk:
            values = list(row)
            values[7] = " ".join(sorted(tags.get(row[7], [])))
            yield values


def _breakdown_rows(
    view: View, group: Any, label: str, now: datetime, names: dict[Any, str]
) -> Iterator[list[Any]]:
    yield [label, "new", "solved", "backlog", "first_response_median_business_minutes",
           "first_response_p90_business_minutes", "resolution_median_business_minutes",
           "resolution_p90_business_minutes", "first_response_sla_percent", "resolution_sla_percent",
           "fcr_percent", "csat_percent"]  # fmt: skip
    for row in metrics.breakdown(get_session(), group, view.scope, view.period, now):
        yield [names.get(row.key, row.key) if row.key is not None else "", row.new, row.solved, row.backlog,
               row.first_response.median, row.first_response.p90, row.resolution.median, row.resolution.p90,
               row.first_response_sla, row.resolution_sla, row.fcr, row.csat]  # fmt: skip


def _day_rows(view: View, now: datetime) -> Iterator[list[Any]]:
    db = get_session()
    scope, period = view.scope, view.period
    new = metrics.per_day(db, Ticket.created_at, metrics.set_conditions("new", scope, period, now), period)
    solved = metrics.per_day(
        db, Ticket.solved_at, metrics.set_conditions("solved", scope, period, now), period
    )
    backlog = metrics.backlog_per_day(db, scope, period, now)
    ratings = metrics.csat_per_day(db, scope, period)
    yield ["day", "new", "solved", "open_at_end", "pending_at_end", "on_hold_at_end", "ratings", "satisfied"]
    for day in period.days():
        end = backlog.get(day, {})
        yield [day.isoformat(), new[day], solved[day], end.get("open"), end.get("pending"), end.get("on_hold"),
               *ratings[day]]  # fmt: skip


@bp.get("/export.csv")
@allow(EVERYONE)
def export() -> Any:
    """The tickets with their timings (``table=tickets``, of ``set``), or a table of the page, as CSV."""
    now = datetime.now(UTC)
    try:
        view = read_view(now)
        table = request.args.get("table", "tickets")
        if table not in TABLES:
            raise BadFilter(_("table: one of %(values)s", values=", ".join(TABLES)))
        name = _set_name()
    except BadFilter as problem:
        return _bad(problem)
    if table == "agents" and view.own:
        abort(403)
    if table == "tickets":
        rows = _ticket_rows(view, name, now)
    elif table == "subjects":
        rows = iter([["subject", "new"], *map(list, metrics.top(get_session(), Ticket.subject, view.scope,
                                                                view.period, now))])  # fmt: skip
    elif table == "ages":
        ages = metrics.backlog_by_age(get_session(), view.scope, now)
        buckets = [name for name, _hours in metrics.AGE_BUCKETS]
        rows = iter([["status", *buckets], *([status, *counts.values()] for status, counts in ages.items())])
    elif table == "agents":
        names = {a.id: a.email for a in view.agents}
        rows = _breakdown_rows(view, Ticket.assignee_id, "agent", now, names)
    elif table == "tags":
        rows = _breakdown_rows(view, TicketTag.name, "tag", now, {})
    else:
        rows = _day_rows(view, now)
    filename = f"postdesk-{table}-{view.period.first.isoformat()}-{view.period.last.isoformat()}.csv"
    return Response(
        stream_with_context(_csv_lines(rows)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@bp.app_template_filter("minutes")
def _minutes_filter(value: float | None) -> str:
    return minutes_text(value)


@bp.app_template_filter("percent")
def _percent_filter(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}%"


@bp.app_template_global("report_url")
def report_url(endpoint: str, view: View, **extra: Any) -> str:
    """A link to a reports page with the view's filters and ``extra`` (None drops a filter)."""
    args = {**view.args, **extra}
    return url_for(endpoint, **{k: v for k, v in args.items() if v is not None})
