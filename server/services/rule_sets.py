"""A mailbox's rule set as a whole: read it as text, check it, try it (dry run), save it, reorder it.

The CLI (`postdesk rules import|export|dry-run`) and the settings page's rules page are two faces of
these functions: one parser and validator (the ``rules`` package), one check of what a rule names
(``server.services.action_kinds.check``), one dry run, one way to save (with its audit event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, selectinload

import rules as rule_engine
from server.base.models import CsatRating, Direction, Event, Mailbox, Message, Ticket
from server.base.models import Rule as RuleRow
from server.gmail.sync import TicketEvent
from server.services import action_kinds
from server.services.automation import Automation, load_mailbox_rules, parsed_from_row
from server.services.defaults import replace_rules
from server.services.knowledge.readings import stored
from server.services.knowledge.signals import Reading
from server.services.tickets import SYSTEM, Actor, record_event

#: How many recent tickets a dry run looks at unless told otherwise, and at most.
DRY_RUN_DEFAULT = 200
DRY_RUN_MOST = 10_000


class RuleSetError(ValueError):
    """The rule set cannot be used; ``problems`` are the engine's (each with its path)."""

    def __init__(self, problems: list[rule_engine.Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


def parse(session: Session, mailbox: Mailbox, text: str) -> list[rule_engine.Rule]:
    """The rules in ``text`` (YAML or JSON), valid for the engine *and* for this mailbox (the agents,
    templates, SLA policies they name exist); :class:`RuleSetError` lists every problem otherwise."""
    try:
        loaded = rule_engine.loads(text)
    except rule_engine.RuleError as exc:
        raise RuleSetError(list(exc.problems)) from exc
    missing = [
        rule_engine.Problem(f"rules[{index}].actions[{number}]", problem)
        for index, rule in enumerate(loaded)
        for number, action in enumerate(rule.actions)
        for problem in action_kinds.check(session, mailbox, action.kind, action.value)
    ]
    if missing:
        raise RuleSetError(missing)
    return loaded


def export_yaml(session: Session, mailbox: Mailbox) -> str:
    return str(rule_engine.dumps_yaml([rule for _row, rule in load_mailbox_rules(session, mailbox.id)]))


def save(
    session: Session, mailbox: Mailbox, loaded: list[rule_engine.Rule], *, actor: Actor = SYSTEM
) -> None:
    """Replace the mailbox's rules with ``loaded`` (committed, with a ``rules_changed`` event that keeps
    the rule set before and after as YAML)."""
    before = export_yaml(session, mailbox)
    replace_rules(session, mailbox, loaded)
    session.flush()
    after = str(rule_engine.dumps_yaml(loaded))
    if after != before:
        record_event(session, None, "rules_changed", actor=actor, mailbox_id=mailbox.id,
                     before={"mailbox": mailbox.address, "rules": before},
                     after={"mailbox": mailbox.address, "rules": after})  # fmt: skip
    session.commit()


@dataclass
class DryRunLine:
    ticket: int
    subject: str
    trigger: str
    rule: str
    matched: bool
    actions: list[str]
    explanation: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "ticket": self.ticket,
            "subject": self.subject,
            "trigger": self.trigger,
            "rule": self.rule,
            "matched": self.matched,
            "actions": self.actions,
            "explanation": self.explanation,
        }


@dataclass
class DryRun:
    tickets: int = 0
    lines: list[DryRunLine] = field(default_factory=list)

    @property
    def matches(self) -> list[DryRunLine]:
        return [line for line in self.lines if line.matched]


class _DryRow:
    """Stands in for a stored rule during a dry run (nothing is written, so no id is needed)."""

    id = None


def dry_run(
    session: Session,
    mailbox: Mailbox,
    loaded: list[rule_engine.Rule],
    *,
    last: int = DRY_RUN_DEFAULT,
    since: datetime | None = None,
    until: datetime | None = None,
) -> DryRun:
    """What ``loaded`` would have done to the mailbox's last ``last`` tickets (or those created in
    ``since``–``until``): each trigger a ticket went through is replayed, and every rule's match,
    actions and explanation is reported. Nothing is written and nothing is sent, whatever a rule tries:
    the session is rolled back at the end."""
    now = datetime.now(UTC)
    by_ticket: dict[int, list[Message]] = {}

    def ages(_session: Session, ticket: Ticket, at: datetime) -> dict[str, float | None]:
        """The ``hours_since_*`` facts from the messages read once for all chosen tickets."""
        found: dict[str, float | None] = {}
        for direction, name in ((Direction.INBOUND, "hours_since_customer_reply"),
                                (Direction.OUTBOUND, "hours_since_agent_reply")):  # fmt: skip
            times = [m.sent_at for m in by_ticket.get(ticket.id, []) if m.direction == direction.value]
            found[name] = (at - max(times)).total_seconds() / 3600 if times else None
        return found

    ratings: dict[int, CsatRating] = {}
    kept: dict[str, Reading] = {}
    automation = Automation(
        session,
        mailbox,
        now=now,
        dry_run=True,
        rules=[(_DryRow(), r) for r in loaded],
        ages=ages,
        rating=lambda _session, ticket: ratings.get(ticket.id),
        stored_readings=kept,
    )
    query = (
        select(Ticket)
        .where(Ticket.mailbox_id == mailbox.id)
        .options(selectinload(Ticket.tags), joinedload(Ticket.customer), joinedload(Ticket.assignee))
    )
    if since is not None:
        query = query.where(Ticket.created_at >= since)
    if until is not None:
        query = query.where(Ticket.created_at < until)
    query = query.order_by(Ticket.number.desc()).limit(max(1, min(last, DRY_RUN_MOST)))
    report = DryRun()
    try:
        chosen = list(session.scalars(query).unique())
        report.tickets = len(chosen)
        if chosen:
            ids = [t.id for t in chosen]
            for message in session.scalars(
                select(Message).where(Message.ticket_id.in_(ids)).order_by(Message.sent_at)
            ):
                by_ticket.setdefault(message.ticket_id or 0, []).append(message)
                reading = stored(message)
                if reading is not None:
                    kept[message.gmail_id] = reading
            ratings.update(
                (r.ticket_id, r)
                for r in session.scalars(select(CsatRating).where(CsatRating.ticket_id.in_(ids)))
            )
        for ticket in chosen:
            messages = by_ticket.get(ticket.id, [])
            inbound = [m for m in messages if m.direction == Direction.INBOUND.value]
            outbound = [m for m in messages if m.direction == Direction.OUTBOUND.value]
            events = [(rule_engine.Trigger.TICKET_CREATED, inbound[0] if inbound else None)]
            if len(inbound) > 1:
                events.append((rule_engine.Trigger.CUSTOMER_REPLIED, inbound[-1]))
            if outbound:
                events.append((rule_engine.Trigger.AGENT_REPLIED, outbound[-1]))
            events.append((rule_engine.Trigger.TIME, None))
            for trigger, replayed in events:
                event = TicketEvent(trigger, ticket.id, parsed_from_row(replayed) if replayed else None)
                for outcome in automation.handle(event):
                    report.lines.append(
                        DryRunLine(
                            ticket.number,
                            ticket.subject,
                            trigger.value,
                            outcome.rule,
                            outcome.matched,
                            outcome.actions,
                            outcome.explanation,
                        )  # fmt: skip
                    )
    finally:
        session.rollback()  # a dry run never changes anything, whatever a rule tried
    return report


@dataclass(frozen=True)
class RuleStats:
    last_fired: datetime | None
    fired_7_days: int


def stats(session: Session, mailbox: Mailbox, *, now: datetime) -> dict[int, RuleStats]:
    """Per stored rule: when it last changed a ticket, and on how many tickets in the last 7 days."""
    week_ago = now - timedelta(days=7)
    rows = session.execute(
        select(
            Event.actor_rule_id,
            func.max(Event.created_at),
            func.count(func.distinct(Event.ticket_id)).filter(Event.created_at >= week_ago),
        )
        .join(RuleRow, RuleRow.id == Event.actor_rule_id)
        .where(RuleRow.mailbox_id == mailbox.id)
        .group_by(Event.actor_rule_id)
    ).all()
    return {int(rule_id or 0): RuleStats(last, int(count or 0)) for rule_id, last, count in rows}


def move(session: Session, mailbox: Mailbox, rule_id: int, step: int, *, actor: Actor = SYSTEM) -> bool:
    """Move a rule up (-1) or down (+1) in the order; committed with its event. False at an end."""
    rows = list(
        session.scalars(
            select(RuleRow).where(RuleRow.mailbox_id == mailbox.id).order_by(RuleRow.position, RuleRow.id)
        )
    )
    index = next((i for i, row in enumerate(rows) if row.id == rule_id), None)
    if index is None or not 0 <= index + step < len(rows):
        return False
    rows[index], rows[index + step] = rows[index + step], rows[index]
    for position, row in enumerate(rows):
        row.position = position
    record_event(session, None, "rule_moved", actor=actor, mailbox_id=mailbox.id,
                 after={"mailbox": mailbox.address, "rule": rows[index + step].name, "position": index + step})  # fmt: skip
    session.commit()
    return True


def set_enabled(
    session: Session, mailbox: Mailbox, rule_id: int, enabled: bool, *, actor: Actor = SYSTEM
) -> bool:
    """Switch a stored rule on or off; committed with its event. False when there is no such rule."""
    row = session.get(RuleRow, rule_id)
    if row is None or row.mailbox_id != mailbox.id:
        return False
    if row.enabled != enabled:
        row.enabled = enabled
        record_event(session, None, "rule_enabled" if enabled else "rule_disabled", actor=actor,
                     mailbox_id=mailbox.id, after={"mailbox": mailbox.address, "rule": row.name})  # fmt: skip
    session.commit()
    return True
