"""The weekly report: on Monday at 09:00 in each manager's (and admin's) own time zone, last week's
overview against the week before, with a link to the reports page, by mail through the Outbox.

Exactly once per person and week: the Outbox key is ``weekly-report:<agent>:<Monday>``, decided in the
transaction that queues the mail (a second worker or a rerun finds the key taken). A worker that was
down all morning does not send it in the evening: only within :data:`WINDOW` of 09:00. People who
turned it off in their profile (``weekly_report``) get none; the team's mail goes out through the
first mailbox that is not paused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.models import Agent, Locale, Mailbox, Outbox, OutboxKind, Role
from server.gmail.send import enqueue
from server.services.figures import metrics
from server.services.figures.metrics import Period, Scope
from server.services.figures.tiles import tiles

log = logging.getLogger(__name__)

SEND_AT = time(9, 0)
WINDOW = timedelta(hours=4)


@dataclass(frozen=True)
class Sent:
    mailbox_ids: set[int]
    queued: int


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def key_for(agent: Agent, monday: date) -> str:
    return f"weekly-report:{agent.id}:{monday.isoformat()}"


def queue_weekly_reports(session: Session, *, now: datetime) -> Sent:
    """Queue the weekly report of everyone whose Monday 09:00 has come (and not long ago). Committed."""
    sender = session.scalar(select(Mailbox).where(Mailbox.paused.is_(False)).order_by(Mailbox.id).limit(1))
    readers = session.scalars(
        select(Agent).where(Agent.active.is_(True), Agent.role.in_([Role.ADMIN.value, Role.MANAGER.value]))
    ).all()
    if sender is None:
        return Sent(set(), 0)
    mailbox_ids = tuple(session.scalars(select(Mailbox.id).order_by(Mailbox.id)))
    queued = 0
    # Readers in one zone share a week: its figures are read once.
    figures: dict[tuple[str, date], tuple[metrics.Overview, metrics.Overview]] = {}
    for agent in readers:
        if not agent.wants("weekly_report"):
            continue
        zone = _zone(agent.timezone)
        local = now.astimezone(zone)
        starts = datetime.combine(local.date(), SEND_AT, zone)
        if local.weekday() != 0 or not starts <= local < starts + WINDOW:
            continue
        monday = local.date()
        key = key_for(agent, monday)
        if session.scalar(select(Outbox.id).where(Outbox.idempotency_key == key)) is not None:
            continue
        period = Period(monday - timedelta(days=7), monday - timedelta(days=1), zone)
        if (zone.key, monday) not in figures:
            scope = Scope(mailbox_ids)
            figures[(zone.key, monday)] = (
                metrics.overview(session, scope, period, now),
                metrics.overview(session, scope, period.previous(), now, sets=metrics.PERIOD_SETS),
            )
        subject, text, html = render(agent, period, *figures[(zone.key, monday)])
        enqueue(session, mailbox=sender, kind=OutboxKind.NOTIFICATION, key=key, to=[agent.email], subject=subject,
                text=text, html=html, headers={"internal": True}, now=now)  # fmt: skip
        queued += 1
    session.commit()
    if queued:
        log.info("weekly_reports queued=%d", queued)
    return Sent({sender.id} if queued else set(), queued)


def render(
    agent: Agent, period: Period, current: metrics.Overview, before: metrics.Overview
) -> tuple[str, str, str]:
    """The mail's subject, text and HTML of the week's figures, in the person's language."""
    base = str(current_app.config.get("PUBLIC_URL") or "").rstrip("/")
    link = f"{base}/reports?{urlencode({'from': period.first.isoformat(), 'to': period.last.isoformat()})}"
    locale = agent.locale if agent.locale in {loc.value for loc in Locale} else Locale.EN.value
    with force_locale(locale):
        period_tiles, now_tiles = tiles(current, before)
        context = {"agent": agent, "period": period, "tiles": period_tiles + now_tiles,
                   "link": link if base else None}  # fmt: skip
        subject = _("Postdesk weekly report: %(first)s – %(last)s", first=period.first.strftime("%d.%m"),
                    last=period.last.strftime("%d.%m.%Y"))  # fmt: skip
        text = render_template("reports/weekly.txt", **context)
        html = render_template("reports/weekly.html", **context)
    return str(subject), text, html
