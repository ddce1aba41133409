"""Running a mailbox's rules on ticket events, and applying their actions through ticket actions.

Sync hands :func:`run_rules_on_events` each page's events (``ticket_created``, ``customer_replied``,
``agent_replied``) inside the page's transaction, so ticket changes, Outbox rows and the Gmail
checkpoint commit together. The actions go through :mod:`server.services.action_kinds` (one handler per kind).
Every change is an Event naming the rule; every auto-reply that is not sent is an
``auto_reply_suppressed`` Event with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import rules as rule_engine
from rules import Evaluation, Rule, RuleError
from rules.model import ACTIVE_STATUSES, DONE_STATUSES, fields_read
from server.base.db import memo_scope
from server.base.models import (
    ActorKind,
    CsatRating,
    Mailbox,
    Ticket,
)
from server.base.models import Rule as RuleRow
from server.gmail.mime import ParsedMessage
from server.gmail.sync import LabelRequest, TicketEvent
from server.services import action_kinds, tickets
from server.services.knowledge import readings
from server.services.knowledge.signals import Reading, lexicon_with
from server.services.mailbox_settings import setting, signal_words
from server.services.responders import assign_to_responder, responders_of
from server.services.tickets import Actor

log = logging.getLogger(__name__)
#: The events that bring a customer's message (its urgency and tone are read).
CUSTOMER_TRIGGERS = frozenset({rule_engine.Trigger.TICKET_CREATED, rule_engine.Trigger.CUSTOMER_REPLIED})


@dataclass
class Outcome:
    """What a rule run did (or, in a dry run, would do)."""

    rule: str
    matched: bool
    explanation: list[str]
    actions: list[str] = field(default_factory=list)


def facts_for(
    ticket: Ticket, message: ParsedMessage | None, mailbox: Mailbox, now: datetime
) -> dict[str, Any]:
    """The plain facts a rule's conditions read (rules.model.FIELDS)."""
    sender = (
        message.sender.email
        if message and message.sender
        else (ticket.customer.email if ticket.customer else "")
    )
    zone = str(setting(mailbox, "timezone"))
    try:
        from zoneinfo import ZoneInfo

        local = now.astimezone(ZoneInfo(zone))
    except (KeyError, ValueError):
        local = now
    return {
        "from": sender,
        "from_domain": sender.rsplit("@", 1)[-1] if "@" in sender else "",
        "to": [a.email for a in message.to] if message else [],
        "cc": [a.email for a in message.cc] if message else [],
        "subject": message.subject if message else ticket.subject,
        "body": message.text if message else "",
        "has_attachment": bool(message.attachments) if message else False,
        "auto_reason": (message.automatic or "") if message else "",
        "labels": list(message.label_ids) if message else [],
        # Business hours arrive with SLA calendars; until then Mon–Fri 09:00–18:00 in the mailbox's zone.
        "within_business_hours": local.weekday() < 5 and 9 <= local.hour < 18,
        "weekday": ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()],
        "priority": ticket.priority,
        "status": ticket.status,
        "tags": [tag.name for tag in ticket.tags],
        "assignee": ticket.assignee.email if ticket.assignee else None,
        "mailbox": mailbox.address,
        "hours_since_created": (now - ticket.created_at).total_seconds() / 3600,
        "hours_since_customer_reply": None,
        "hours_since_agent_reply": None,
        # The customer's rating: filled in by rating_facts (one query, or none in a dry run's batch).
        "csat": "",
        "csat_score": None,
        # The agents @mentioned in the ticket's notes: read by mentioned_facts only when a rule asks.
        "mentioned": [],
    }


def stored_rating(session: Session, ticket: Ticket) -> CsatRating | None:
    return session.get(CsatRating, ticket.id) if ticket.id is not None else None


def rating_facts(rating: CsatRating | None) -> dict[str, Any]:
    """``csat`` and ``csat_score``: the customer's rating of the ticket, empty and none until they rate."""
    return {"csat": rating.value if rating else "", "csat_score": rating.score if rating else None}


def mentioned_facts(session: Session, ticket: Ticket) -> dict[str, Any]:
    """``mentioned``: the addresses of the agents @mentioned in the ticket's notes (one query)."""
    from server.base.models import Agent, NoteMention

    found = select(Agent.email).join(NoteMention, NoteMention.agent_id == Agent.id)
    return {"mentioned": sorted(set(session.scalars(found.where(NoteMention.ticket_id == ticket.id))))}


def reply_ages(session: Session, ticket: Ticket, now: datetime) -> dict[str, float | None]:
    """Hours since the customer's and the agents' latest messages on the ticket (for ``time`` rules)."""
    from server.base.models import Direction, Message

    ages: dict[str, float | None] = {}
    for direction, name in (
        (Direction.INBOUND, "hours_since_customer_reply"),
        (Direction.OUTBOUND, "hours_since_agent_reply"),
    ):
        last = session.scalar(
            select(func.max(Message.sent_at)).where(
                Message.ticket_id == ticket.id, Message.direction == direction.value
            )
        )
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=now.tzinfo)
        ages[name] = (now - last).total_seconds() / 3600 if last is not None else None
    return ages


def load_mailbox_rules(session: Session, mailbox_id: int) -> list[tuple[RuleRow, Rule]]:
    """The mailbox's rules in order; a stored rule that no longer validates is skipped and logged."""
    loaded = []
    for row in session.scalars(
        select(RuleRow).where(RuleRow.mailbox_id == mailbox_id).order_by(RuleRow.position, RuleRow.id)
    ):
        try:
            rule = rule_engine.load_rule(stored_rule_data(row))
        except RuleError as exc:
            log.warning("rule_invalid rule_id=%s problems=%s", row.id, exc)
            continue
        loaded.append((row, rule))
    return loaded


def stored_rule_data(row: RuleRow) -> dict[str, Any]:
    data: dict[str, Any] = {"name": row.name, "trigger": row.trigger, "actions": row.actions}
    if row.conditions:
        data["conditions"] = row.conditions
    data["stop_processing"] = row.stop_processing
    data["enabled"] = row.enabled
    return data


class Automation:
    """Runs the rules of one mailbox within the caller's transaction."""

    def __init__(
        self,
        session: Session,
        mailbox: Mailbox,
        *,
        now: datetime,
        dry_run: bool = False,
        rules: list[tuple[Any, Rule]] | None = None,
        ages: Callable[[Session, Ticket, datetime], dict[str, float | None]] = reply_ages,
        rating: Callable[[Session, Ticket], CsatRating | None] = stored_rating,
        stored_readings: Mapping[str, Reading] | None = None,
        follow_ups: readings.FollowUps | None = None,
    ) -> None:
        self.session = session
        #: Readings already kept on the messages (a dry run passes those it read at once, by Gmail id).
        self.stored_readings = stored_readings
        #: The customers' follow-ups of the tickets at hand, read at once (None: one query each).
        self.follow_ups = follow_ups
        #: How the ticket's rating is found (a dry run passes the ratings it read at once).
        self.rating = rating
        #: How the ``hours_since_*`` facts are found (a dry run over many tickets passes its own).
        self.ages = ages
        self.mailbox = mailbox
        self.now = now
        self.dry_run = dry_run
        self.rules = rules if rules is not None else load_mailbox_rules(session, mailbox.id)
        #: The urgency and tone words: the shipped ones and the mailbox's own.
        self.words = lexicon_with(signal_words(mailbox))
        #: Whether any rule reads ``urgency`` or ``tone`` (a dry run reads messages only then).
        self.reads_signals = any(readings.FIELDS & fields_read(rule.conditions) for _row, rule in self.rules)
        #: Whether any rule reads ``mentioned`` (one query per event then, none otherwise).
        self.reads_mentions = any("mentioned" in fields_read(rule.conditions) for _row, rule in self.rules)
        #: (gmail message id, label name) for sync to apply in Gmail after the commit.
        self.label_requests: list[LabelRequest] = []

    def handle(self, event: TicketEvent) -> list[Outcome]:
        ticket = self.session.get(Ticket, event.ticket_id)
        if ticket is None:
            return []
        outcomes = []
        # A ticket this very message opened has no rating yet: no need to look.
        rating = (
            None if event.trigger is rule_engine.Trigger.TICKET_CREATED else self.rating(self.session, ticket)
        )
        facts = facts_for(ticket, event.message, self.mailbox, self.now) | rating_facts(rating)
        reading = self.reading(ticket, event)
        facts |= {"urgency": reading.urgency if reading else "", "tone": reading.tone if reading else ""}
        if event.message is None:
            facts.update(self.ages(self.session, ticket, self.now))
        if self.reads_mentions:
            facts.update(mentioned_facts(self.session, ticket))
        for row, rule in self.rules:
            if not rule.enabled or rule.trigger is not event.trigger:
                continue
            evaluation: Evaluation = rule_engine.evaluate(rule, facts)
            outcome = Outcome(rule.name, evaluation.matched, evaluation.explanation)
            outcomes.append(outcome)
            if not evaluation.matched:
                continue
            if self.apply_rule(row, rule, ticket, event, outcome) and rule.stop_processing:
                break
        return outcomes

    def reading(self, ticket: Ticket, event: TicketEvent) -> Reading | None:
        """Urgency and tone of the customer's message the event brings (read, and kept on its row),
        or of their latest one for a time rule; a dry run reads only when a rule asks."""
        message = event.message
        if message is not None and event.trigger in CUSTOMER_TRIGGERS:
            if self.dry_run:
                if not self.reads_signals:
                    return None
                kept = (self.stored_readings or {}).get(message.gmail_id)
                return kept or readings.read_and_keep(
                    self.session, ticket.id, message, words=self.words, keep=False
                )
            return readings.read_and_keep(
                self.session, ticket.id, message, words=self.words, row=event.row, counted=self.follow_ups
            )
        if message is None and self.reads_signals:
            row = readings.latest(self.session, ticket.id)
            return readings.stored(row) if row is not None else None
        return None

    def apply_rule(self, row: Any, rule: Rule, ticket: Ticket, event: TicketEvent, outcome: Outcome) -> bool:
        """Each of the rule's actions through the one table of handlers (server.services.action_kinds);
        False when a refusal stopped the rule halfway (then it does not stop the rules after it)."""
        ctx = action_kinds.ActionContext(
            session=self.session,
            mailbox=self.mailbox,
            ticket=ticket,
            actor=Actor(ActorKind.RULE, rule_id=row.id),
            now=self.now,
            dry_run=self.dry_run,
            event=event,
            label_requests=self.label_requests,
        )
        for action in rule.actions:
            try:
                outcome.actions.append(action_kinds.perform(ctx, action.kind, action.value))
            except action_kinds.ActionRefused as exc:
                outcome.actions.append(exc.summary)
                if exc.event is not None and not self.dry_run:
                    kind, details = exc.event
                    tickets.record_event(
                        self.session, ticket, kind, actor=ctx.actor, after=details, at=self.now
                    )
                if exc.stops_rule:
                    return False
        return True


def run_rules_on_events(session: Session, mailbox: Mailbox, events: list[TicketEvent]) -> list[LabelRequest]:
    """Sync's event handler: the mailbox's rules on each event of a page, in the page's transaction.

    What each event's rules read of the database is read for the whole page first where it can be:
    the customers' follow-ups and the tickets' ratings (one query each, not one per event)."""
    customers = [e.ticket_id for e in events if e.trigger in CUSTOMER_TRIGGERS and e.message is not None]
    rated = sorted({e.ticket_id for e in events if e.trigger is not rule_engine.Trigger.TICKET_CREATED})
    ratings = (
        {r.ticket_id: r for r in session.scalars(select(CsatRating).where(CsatRating.ticket_id.in_(rated)))}
        if rated
        else {}
    )
    automation = Automation(
        session,
        mailbox,
        now=datetime.now(UTC),
        follow_ups=readings.FollowUps(session, customers) if len(customers) > 1 else None,
        rating=lambda _session, ticket: ratings.get(ticket.id),
    )
    # The rules' changes are written by one flush at the end, not one per rule: what they read
    # back before that (mail queued, assignments for least_open) is read with that in mind.
    responders = responders_of(session, mailbox, events)
    with memo_scope(session), session.no_autoflush:
        for event in events:
            if responders:
                assign_to_responder(session, event, responders)
            automation.handle(event)
    return automation.label_requests


def parsed_from_row(message: Any) -> ParsedMessage:
    """A stored message seen as the rules see new mail (for dry runs over past tickets)."""
    from server.gmail.mime import Address, Attachment, parse_addresses

    parsed = ParsedMessage(
        gmail_id=message.gmail_id,
        thread_id=message.gmail_thread_id,
        label_ids=list(message.labels or []),
        internal_date=message.sent_at,
        subject=message.subject,
        sender=Address(message.from_name, message.from_email) if message.from_email else None,
        to=parse_addresses(message.to),
        cc=parse_addresses(message.cc),
        text=message.text,
        attachments=[
            Attachment(a.get("filename", ""), a.get("mime_type", ""), 0, None, "")
            for a in message.attachments or []
        ],
        automatic=(message.auto_reason or "automatic mail") if message.is_auto else None,
    )
    return parsed


#: ``time`` rules look at active tickets, and at solved or closed ones this many days after solving.
TIME_RULE_SOLVED_DAYS = 7


def run_time_rules(session: Session, mailbox: Mailbox, *, now: datetime) -> int:
    """Run the mailbox's ``time`` rules; each fires once per ticket per change of its condition."""
    from sqlalchemy import and_, or_

    from server.base.models import RuleFiring

    automation = Automation(session, mailbox, now=now)
    time_rules = [
        (row, rule)
        for row, rule in automation.rules
        if rule.enabled and rule.trigger is rule_engine.Trigger.TIME
    ]
    if not time_rules:
        return 0
    firings = {
        (f.rule_id, f.ticket_id): f
        for f in session.scalars(
            select(RuleFiring).where(RuleFiring.rule_id.in_([row.id for row, _ in time_rules]))
        )
    }
    candidates = session.scalars(
        select(Ticket).where(
            Ticket.mailbox_id == mailbox.id,
            or_(
                Ticket.status.in_(ACTIVE_STATUSES),
                and_(
                    Ticket.status.in_(DONE_STATUSES),
                    Ticket.solved_at >= now - timedelta(days=TIME_RULE_SOLVED_DAYS),
                ),
            ),
        )
    ).all()
    fired = 0
    for ticket in candidates:
        reading = automation.reading(ticket, TicketEvent(rule_engine.Trigger.TIME, ticket.id, None, now))
        facts = (
            facts_for(ticket, None, mailbox, now)
            | reply_ages(session, ticket, now)
            | rating_facts(stored_rating(session, ticket))
            | {"urgency": reading.urgency if reading else "", "tone": reading.tone if reading else ""}
            | (mentioned_facts(session, ticket) if automation.reads_mentions else {})
        )
        for row, rule in time_rules:
            matched = rule_engine.evaluate(rule, facts).matched
            firing = firings.get((row.id, ticket.id))
            if matched and not (firing and firing.matched):
                outcome = Outcome(rule.name, True, [])
                automation.apply_rule(
                    row, rule, ticket, TicketEvent(rule_engine.Trigger.TIME, ticket.id, None, now), outcome
                )
                fired += 1
            if firing is None:
                firing = RuleFiring(rule_id=row.id, ticket_id=ticket.id, matched=matched, changed_at=now)
                session.add(firing)
                firings[(row.id, ticket.id)] = firing
            elif firing.matched != matched:
                firing.matched, firing.changed_at = matched, now
    session.commit()
    return fired
