"""Reminders: every warning, breach, wake-up, follow-up and digest, each done once, at its time.

Each ticket carries ``remind_at``, the next instant the scan must look at it. Every change to a ticket
sets it to "now" (``tickets.record_event``); the scan reads only ``remind_at <= now`` through its index,
works out the ticket's reminders from its state (:func:`plan`, a pure function), does those that are
due and moves ``remind_at`` to the next one, or clears it. So a scan costs O(due), not O(tickets).

Everything the scan does is marked in ``reminder_marks`` under a unique key (ticket + kind + deadline
[+ recipient]) in the transaction that does it, together with the Outbox row and the Event: a restart
or a second worker finds the mark and does nothing twice. A race between two workers ends in a unique
key violation for the later one, which rolls back and looks again.

Kinds, per ticket (windows in business minutes of the ticket's SLA calendar, follow-ups in days):

- ``first_response_due_soon`` / ``resolution_due_soon``: ``warn_minutes`` before the deadline, to the
  assignee (the team when nobody is assigned); skipped when the deadline has passed already.
- ``first_response_overdue`` / ``resolution_overdue``: at the deadline, to the assignee or the team,
  with an ``sla_breached`` Event (the Event even when reminders are off).
- ``first_response_escalated`` / ``resolution_escalated``: ``escalate_minutes`` after the deadline,
  to the mailbox's admins.
- ``unassigned``: ``unassigned_minutes`` after an open ticket was left with nobody assigned (when it came
  in, or when its agent was taken off it), to the team.
- ``snooze_ended``: at ``snoozed_until`` the ticket wakes (always) and the assignee hears of it.
- ``pending_followup``: a pending ticket the customer has not answered for ``pending_followup_days``
  gets a gentle follow-up in its thread; ``pending_autosolve_days`` later it is solved, if enabled.
- ``digest``: per agent and mailbox, at ``digest_time`` in the agent's zone, on the calendar's working
  days: their overdue, due today and open tickets.

A reminder found more than :data:`LATE_LIMIT` late (the worker was down, or a month of old mail was
just imported) is marked and not sent: late news is noise. Breach Events are still recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date
from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from rules.model import ACTIVE_STATUSES
from server.base.db import lost_to_another_transaction
from server.base.models import (
    Agent,
    Locale,
    Mailbox,
    OutboxKind,
    ReminderMark,
    Role,
    Ticket,
    TicketStatus,
    mailbox_members,
)
from server.gmail.send import enqueue, reply_subject, thread_headers
from server.services import tickets
from server.services.composing import (
    available_agents,
    find_template,
    mail_context,
    team_addresses,
    ticket_link,
    ticket_locale,
)
from server.services.defaults import builtin_template
from server.services.mailbox_settings import ReminderSettings, reminder_settings, setting
from server.services.sla import (
    Calendar,
    CalendarError,
    add_business_minutes,
    calendar_for_mailbox,
    subtract_business_minutes,
)
from server.services.templating import TemplateError, format_when, render_mail

log = logging.getLogger(__name__)

ACTIVE = frozenset(ACTIVE_STATUSES)
#: Tickets per transaction.
BATCH = 200
#: A reminder more than this late is not sent (it is still marked, and breaches still recorded).
LATE_LIMIT = timedelta(hours=12)
#: A digest is sent in the hours after ``digest_time``, not later in the day.
DIGEST_WINDOW = timedelta(hours=4)
#: Tickets listed per section of a digest.
DIGEST_ITEMS = 30
#: Retries of a batch that lost a race with another worker.
RACE_RETRIES = 5
WHAT = {
    "first_response": {"en": "first response", "ru": "первый ответ"},
    "resolution": {"en": "resolution", "ru": "решение"},
}
TEMPLATES = {
    "due_soon": "Reminder: due soon",
    "overdue": "Reminder: overdue",
    "escalated": "Reminder: escalation",
    "unassigned": "Reminder: unassigned",
    "snooze_ended": "Reminder: snooze ended",
    "digest": "Daily digest",
    "pending_followup": "Pending follow-up",
}
#: Templates for the team, never offered to answer a customer with.
TEAM_TEMPLATES = frozenset(name for kind, name in TEMPLATES.items() if kind != "pending_followup")


@dataclass(frozen=True)
class Due:
    """One reminder of a ticket: what, when, and the deadline (or start) it is about."""

    kind: str
    at: datetime
    deadline: datetime

    @property
    def family(self) -> str:
        """``due_soon``, ``overdue``, ``escalated`` … without the deadline's name."""
        for name in WHAT:
            if self.kind.startswith(name + "_"):
                return self.kind.removeprefix(name + "_")
        return self.kind

    @property
    def about(self) -> str | None:
        """``first_response`` or ``resolution`` for deadline reminders."""
        return next((name for name in WHAT if self.kind.startswith(name + "_")), None)


@dataclass
class Report:
    looked_at: int = 0
    queued: int = 0  # emails put in the Outbox
    breaches: int = 0
    woken: int = 0
    solved: int = 0
    digests: int = 0
    late: int = 0  # found too late to send
    mailbox_ids: set[int] = field(default_factory=set)  # whose Outbox got new mail


def plan(ticket: Ticket, settings: ReminderSettings, calendar: Calendar) -> list[Due]:
    """Every reminder of the ticket in its present state, past ones included (pure)."""
    if ticket.status not in ACTIVE:
        return []
    dues: list[Due] = []
    deadlines = [
        ("first_response", ticket.first_response_due_at if ticket.first_responded_at is None else None),
        ("resolution", ticket.resolution_due_at),
    ]
    for name, deadline in deadlines:
        if deadline is None:
            continue
        dues.append(Due(f"{name}_overdue", deadline, deadline))
        if settings.enabled and settings.warn_minutes:
            warn = subtract_business_minutes(calendar, deadline, settings.warn_minutes)
            dues.append(Due(f"{name}_due_soon", warn, deadline))
        if settings.enabled and settings.escalate_minutes:
            escalate = add_business_minutes(calendar, deadline, settings.escalate_minutes)
            dues.append(Due(f"{name}_escalated", escalate, deadline))
    if (
        settings.enabled
        and settings.unassigned_minutes
        and ticket.assignee_id is None
        and ticket.status == TicketStatus.OPEN.value
    ):
        since = ticket.unassigned_at or ticket.created_at
        at = add_business_minutes(calendar, since, settings.unassigned_minutes)
        dues.append(Due("unassigned", at, since))
    if ticket.snoozed_until is not None:
        dues.append(Due("snooze_ended", ticket.snoozed_until, ticket.snoozed_until))
    if settings.enabled and ticket.status == TicketStatus.PENDING.value:
        since = ticket.status_changed_at or ticket.updated_at
        if settings.pending_followup_days:
            dues.append(
                Due("pending_followup", since + timedelta(days=settings.pending_followup_days), since)
            )
        if settings.pending_autosolve_days:
            days = settings.pending_followup_days + settings.pending_autosolve_days
            dues.append(Due("auto_solve", since + timedelta(days=days), since))
    return sorted(dues, key=lambda d: (d.at, d.kind))


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


class Scan:
    """One run of the scan at ``now``, with what it looked up kept for the run."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self.report = Report()
        self._mailboxes: dict[int, Mailbox] = {}
        self._calendars: dict[tuple[int, int | None], Calendar] = {}
        self._teams: dict[int, list[Agent]] = {}
        self._admins: dict[int, list[Agent]] = {}

    # --- what the run looks up once ---------------------------------------------------------------
    def mailbox(self, mailbox_id: int) -> Mailbox:
        if mailbox_id not in self._mailboxes:
            mailbox = self.session.get(Mailbox, mailbox_id)
            assert mailbox is not None
            self._mailboxes[mailbox_id] = mailbox
        return self._mailboxes[mailbox_id]

    def calendar(self, ticket: Ticket) -> Calendar:
        key = (ticket.mailbox_id, ticket.sla_policy_id)
        if key not in self._calendars:
            self._calendars[key] = tickets.policy_for(self.session, ticket).calendar
        return self._calendars[key]

    def team(self, mailbox_id: int) -> list[Agent]:
        """The mailbox's active members who are not away."""
        if mailbox_id not in self._teams:
            self._teams[mailbox_id] = available_agents(self.session, mailbox_id)
        return self._teams[mailbox_id]

    def admins(self, mailbox_id: int) -> list[Agent]:
        """The mailbox's active admins, else every active admin, else its team."""
        if mailbox_id not in self._admins:
            members = list(
                self.session.scalars(
                    select(Agent)
                    .join(mailbox_members, mailbox_members.c.agent_id == Agent.id)
                    .where(mailbox_members.c.mailbox_id == mailbox_id, Agent.active.is_(True))
                    .order_by(Agent.id)
                )
            )
            admins = [a for a in members if a.role == Role.ADMIN.value] or list(
                self.session.scalars(
                    select(Agent)
                    .where(Agent.role == Role.ADMIN.value, Agent.active.is_(True))
                    .order_by(Agent.id)
                )
            )
            self._admins[mailbox_id] = admins or self.team(mailbox_id)
        return self._admins[mailbox_id]

    def recipients(self, ticket: Ticket, due: Due) -> list[Agent]:
        """Who hears of it: escalations always reach the admins; other reminders only those of the
        assignee or team who have not turned reminders off in their profile."""
        if due.family == "escalated":
            return self.admins(ticket.mailbox_id)
        if due.family != "unassigned" and ticket.assignee is not None and ticket.assignee.active:
            return [ticket.assignee] if ticket.assignee.wants("reminders") else []
        return [agent for agent in self.team(ticket.mailbox_id) if agent.wants("reminders")]

    # --- marks ------------------------------------------------------------------------------------
    def mark(self, key: str, kind: str, *, ticket: Ticket | None = None, agent: Agent | None = None) -> bool:
        """Mark ``key`` as done in this transaction; False when it was done before."""
        key = key[:300]
        if self.session.scalar(select(ReminderMark.id).where(ReminderMark.key == key)) is not None:
            return False
        self.session.add(
            ReminderMark(
                key=key,
                kind=kind,
                ticket_id=ticket.id if ticket else None,
                agent_id=agent.id if agent else None,
                created_at=self.now,
            )
        )
        return True

    # --- tickets ----------------------------------------------------------------------------------
    def ticket(self, ticket: Ticket) -> None:
        """Do the ticket's due reminders and move ``remind_at`` to its next one."""
        self.report.looked_at += 1
        mailbox = self.mailbox(ticket.mailbox_id)
        settings = reminder_settings(mailbox)
        try:
            calendar = self.calendar(ticket)
            for due in plan(ticket, settings, calendar):
                if due.at <= self.now:
                    self.do(ticket, mailbox, settings, due)
            upcoming = [d.at for d in plan(ticket, settings, calendar) if d.at > self.now]
        except CalendarError as exc:  # a calendar with no hours left: log it, never stop the worker
            log.warning("reminders_calendar_error ticket=%s problem=%s", ticket.id, exc)
            upcoming = []
        ticket.remind_at = min(upcoming) if upcoming else None

    def do(self, ticket: Ticket, mailbox: Mailbox, settings: ReminderSettings, due: Due) -> None:
        key = f"{ticket.id}:{due.kind}:{due.deadline.isoformat()}"
        late = self.now - due.at > LATE_LIMIT
        if due.family == "overdue" and self.mark(f"breach:{key}", "sla_breached", ticket=ticket):
            tickets.record_event(
                self.session,
                ticket,
                "sla_breached",
                after={"deadline": due.about, "due_at": due.deadline.isoformat()},
                at=due.deadline,
            )
            self.report.breaches += 1
        if due.family == "overdue" and not settings.enabled:
            return
        if due.kind == "snooze_ended":
            if self.mark(f"snooze:{key}", due.kind, ticket=ticket):
                tickets.snooze(self.session, ticket, None, at=due.at)
                self.report.woken += 1
                if settings.enabled and settings.snooze and not late:
                    self.remind_agents(ticket, mailbox, due, key)
            return
        if due.kind == "auto_solve":
            if self.mark(f"solve:{key}", due.kind, ticket=ticket):
                days = settings.pending_followup_days + settings.pending_autosolve_days
                tickets.set_status(
                    self.session,
                    ticket,
                    TicketStatus.SOLVED,
                    at=self.now,
                    reason=f"no answer from the customer for {days} days",
                )
                self.report.solved += 1
            return
        if due.family == "due_soon" and due.deadline <= self.now:
            return  # the overdue reminder says it better
        if late:
            if self.mark(f"late:{key}", due.kind, ticket=ticket):
                self.report.late += 1
            return
        if due.kind == "pending_followup":
            self.follow_up(ticket, mailbox, key)
        else:
            self.remind_agents(ticket, mailbox, due, key)

    def remind_agents(self, ticket: Ticket, mailbox: Mailbox, due: Due, key: str) -> None:
        for agent in self.recipients(ticket, due):
            agent_key = f"reminder:{key}:{agent.id}"
            if not self.mark(agent_key, due.kind, ticket=ticket, agent=agent):
                continue
            locale = agent.locale if agent.locale in WHAT["resolution"] else Locale.EN.value
            context = mail_context(ticket, mailbox, locale=locale, zone=agent.timezone, agent=agent)
            context["reminder"] = {
                "kind": due.kind,
                "what": WHAT[due.about][locale] if due.about else "",
                "due_at": format_when(due.deadline, locale, agent.timezone),
            }
            if self.send(
                mailbox, TEMPLATES[due.family], locale, context, to=agent.email, key=agent_key, ticket=ticket
            ):
                tickets.record_event(
                    self.session,
                    ticket,
                    "reminder_queued",
                    after={"kind": due.kind, "to": agent.email, "deadline": due.deadline.isoformat()},
                    at=self.now,
                )

    def follow_up(self, ticket: Ticket, mailbox: Mailbox, key: str) -> None:
        """The gentle follow-up to a customer who has not answered, in the ticket's thread."""
        customer = ticket.customer
        if customer is None or customer.email.lower() in team_addresses(self.session, mailbox):
            return
        mail_key = f"followup:{key}"
        if not self.mark(mail_key, "pending_followup", ticket=ticket):
            return
        locale = ticket_locale(self.session, ticket, mailbox)
        context = mail_context(ticket, mailbox, locale=locale, zone=str(setting(mailbox, "timezone")))
        if self.send(
            mailbox,
            TEMPLATES["pending_followup"],
            locale,
            context,
            to=customer.email,
            key=mail_key,
            ticket=ticket,
            in_thread=True,
        ):
            tickets.record_event(
                self.session, ticket, "reminder_queued", after={"kind": "pending_followup"}, at=self.now
            )

    def send(
        self,
        mailbox: Mailbox,
        name: str,
        locale: str,
        context: dict[str, Any],
        *,
        to: str,
        key: str,
        ticket: Ticket | None,
        in_thread: bool = False,
    ) -> bool:
        template = find_template(self.session, mailbox, name, locale)
        if template is None or template.locale != locale:
            template = builtin_template(name, locale) or template
        assert template is not None, f"no template {name!r}"
        try:
            rendered = render_mail(template.subject, template.body_text, template.body_html, context)
        except TemplateError as exc:
            log.warning("reminder_template_failed mailbox=%s template=%r problem=%s", mailbox.id, name, exc)
            if ticket is not None:
                tickets.record_event(
                    self.session, ticket, "reminder_failed", after={"template": name, "reason": str(exc)}
                )
            return False
        assert ticket is not None or not in_thread
        enqueue(
            self.session,
            mailbox=mailbox,
            kind=OutboxKind.REMINDER,
            key=key,
            to=[to],
            subject=reply_subject(ticket.subject) if in_thread and ticket else rendered.subject,
            text=rendered.text,
            html=rendered.html,
            ticket=ticket,
            headers=thread_headers(self.session, ticket) if in_thread and ticket else {"internal": True},
            now=self.now,
        )
        self.report.queued += 1
        self.report.mailbox_ids.add(mailbox.id)
        return True

    # --- digests ----------------------------------------------------------------------------------
    def digests(self) -> None:
        for mailbox in self.session.scalars(select(Mailbox).order_by(Mailbox.id)).all():
            settings = reminder_settings(mailbox)
            if not (settings.enabled and settings.digest):
                continue
            try:
                calendar = calendar_for_mailbox(mailbox.settings)
            except CalendarError:
                calendar = None
            for agent in self.team(mailbox.id):
                if not agent.wants("digest"):
                    continue
                local = self.now.astimezone(_zone(agent.timezone))
                starts = datetime.combine(local.date(), settings.digest_time, local.tzinfo)
                if not starts <= local < starts + DIGEST_WINDOW:
                    continue
                if calendar is not None and not calendar.local_intervals(local.date()):
                    continue  # no digest on the team's days off
                key = f"digest:{mailbox.id}:{agent.id}:{local.date().isoformat()}"
                if self.mark(key, "digest", agent=agent):
                    self.digest(mailbox, agent, local.date(), key)

    def digest(self, mailbox: Mailbox, agent: Agent, day: date, key: str) -> None:
        zone = _zone(agent.timezone)
        day_ends = datetime.combine(day + timedelta(days=1), time(0), zone)
        mine = self.session.scalars(
            select(Ticket)
            .where(
                Ticket.mailbox_id == mailbox.id,
                Ticket.assignee_id == agent.id,
                Ticket.status.in_(ACTIVE),
            )
            .order_by(Ticket.due_at.is_(None), Ticket.due_at, Ticket.number)
        ).all()
        if not mine:
            return  # nothing to say: no mail
        locale = agent.locale if agent.locale in WHAT["resolution"] else Locale.EN.value

        def items(selected: Iterable[Ticket]) -> list[dict[str, Any]]:
            return [
                {
                    "number": t.number,
                    "subject": t.subject,
                    "due_at": format_when(t.due_at, locale, agent.timezone),
                    "link": ticket_link(t),
                }
                for t in list(selected)[:DIGEST_ITEMS]
            ]

        context: dict[str, Any] = {
            "agent": {"name": agent.name, "email": agent.email},
            "mailbox": {"address": mailbox.address, "name": mailbox.display_name or mailbox.address},
            "digest": {
                "date": format_date(day, format="long", locale=locale),
                "open": items(mine),
                "overdue": items(t for t in mine if t.due_at is not None and t.due_at <= self.now),
                "due_today": items(
                    t for t in mine if t.due_at is not None and self.now < t.due_at < day_ends
                ),
            },
        }
        if self.send(mailbox, TEMPLATES["digest"], locale, context, to=agent.email, key=key, ticket=None):
            self.report.digests += 1


def due_query(now: datetime, limit: int = BATCH) -> Select[Ticket]:
    """The tickets the scan must look at: an index range read on ``remind_at``."""
    return select(Ticket).where(Ticket.remind_at <= now).order_by(Ticket.remind_at, Ticket.id).limit(limit)


def run_reminders(session: Session, *, now: datetime) -> Report:
    """Do every reminder that is due at ``now`` (ticket reminders, then digests), committing per batch.
    A scan that keeps losing races (another scan marked the same reminders first, batch by batch)
    leaves the rest to that scan and the next tick instead of failing."""
    report = Report()
    lost_to_another = False
    for attempt in range(RACE_RETRIES):
        scan = Scan(session, now)
        try:
            while True:
                batch = session.scalars(due_query(now)).all()
                for ticket in batch:
                    scan.ticket(ticket)
                session.commit()
                _add(report, scan.report)
                scan.report = Report()
                if len(batch) < BATCH:
                    break
            scan.digests()
            session.commit()
            _add(report, scan.report)
            return report
        except (IntegrityError, OperationalError) as exc:
            session.rollback()  # another worker marked the same key first (or held the write lock)
            lost_to_another = isinstance(exc, IntegrityError) or lost_to_another_transaction(exc)
            log.info("reminders_race attempt=%d problem=%s", attempt + 1, type(exc).__name__)
    if not lost_to_another:
        raise RuntimeError("reminders: the database kept refusing the scan's writes")
    log.info("reminders_left_to_another_scan attempts=%d queued=%d", RACE_RETRIES, report.queued)
    return report


def _add(total: Report, part: Report) -> None:
    for name in ("looked_at", "queued", "breaches", "woken", "solved", "digests", "late"):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.mailbox_ids |= part.mailbox_ids
