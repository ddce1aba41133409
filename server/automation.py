"""Running a mailbox's rules on ticket events, and applying their actions through ticket actions.

Sync calls :class:`Automation` for each event it files (``ticket_created``, ``customer_replied``,
``agent_replied``) inside the page's transaction, so ticket changes, Outbox rows and the Gmail
checkpoint commit together. Every change is an Event naming the rule; every auto-reply that is not
sent is an ``auto_reply_suppressed`` Event with the reason.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import rules as rule_engine
from rules import ActionKind, Evaluation, Rule, RuleError
from rules.model import ACTIVE_STATUSES, DONE_STATUSES
from server import tickets
from server.gmail.mime import ParsedMessage
from server.gmail.send import enqueue, reply_subject, thread_headers
from server.gmail.sync import LabelRequest, TicketEvent
from server.mailbox_settings import setting
from server.models import (
    ActorKind,
    Agent,
    Customer,
    Locale,
    Mailbox,
    OutboxKind,
    Priority,
    Role,
    SlaPolicy,
    Template,
    Ticket,
    TicketStatus,
    mailbox_members,
)
from server.models import Outbox as OutboxRow
from server.models import Rule as RuleRow
from server.templating import RenderedMail, TemplateError, format_when, render_mail
from server.tickets import Actor

log = logging.getLogger(__name__)

_CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)


@dataclass
class Outcome:
    """What a rule run did (or, in a dry run, would do)."""

    rule: str
    matched: bool
    explanation: list[str]
    actions: list[str] = field(default_factory=list)


def customer_locale(message: ParsedMessage | None, mailbox: Mailbox) -> str:
    """Russian when the customer wrote in Cyrillic, else the mailbox's language."""
    sample = f"{message.subject} {message.text[:2000]}" if message else ""
    if _CYRILLIC.search(sample):
        return Locale.RU.value
    return str(setting(mailbox, "locale"))


def find_template(session: Session, mailbox: Mailbox, name: str, locale: str) -> Template | None:
    """The mailbox's shared template ``name`` in ``locale``, else in the mailbox's language, else any."""
    candidates = {
        t.locale: t
        for t in session.scalars(
            select(Template).where(
                Template.mailbox_id == mailbox.id, Template.name == name, Template.owner_id.is_(None)
            )
        )
    }
    return (
        candidates.get(locale)
        or candidates.get(str(setting(mailbox, "locale")))
        or next(iter(candidates.values()), None)
    )


def available_agents(session: Session, mailbox_id: int) -> list[Agent]:
    """The mailbox's active members who are not away: who gets work and team reminders."""
    return list(
        session.scalars(
            select(Agent)
            .join(mailbox_members, mailbox_members.c.agent_id == Agent.id)
            .where(
                mailbox_members.c.mailbox_id == mailbox_id,
                Agent.active.is_(True),
                Agent.away.is_(False),
            )
            .order_by(Agent.id)
        )
    )


def team_addresses(session: Session, mailbox: Mailbox) -> set[str]:
    """The mailbox's own address and every agent's: never a customer, never auto-answered."""
    return {mailbox.address.lower()} | {email.lower() for email in session.scalars(select(Agent.email))}


def gmail_link(mailbox: Mailbox, thread_id: str | None) -> str:
    """A link that opens the thread in the shared mailbox's Gmail (for agents, never for customers)."""
    if not thread_id:
        return ""
    return f"https://mail.google.com/mail/u/?authuser={mailbox.address}#all/{thread_id}"


#: The ticket's fields a template sees as they are, and those written as a date for the reader.
_TICKET_FIELDS = ("number", "subject", "status", "priority")
_TICKET_DATES = ("due_at", "first_response_due_at", "resolution_due_at", "created_at")


def mail_context(
    ticket: Ticket | None, mailbox: Mailbox, *, locale: str, zone: str, agent: Agent | None = None
) -> dict[str, Any]:
    """The variables a template sees (server.templating), dates written for this reader.

    Without a ticket (a template inserted into a new email) every ticket and customer variable is
    empty, so the same templates render everywhere.
    """
    customer: Customer | None = ticket.customer if ticket else None
    assignee = ticket.assignee if ticket else None
    fields: dict[str, Any] = {name: getattr(ticket, name) if ticket else "" for name in _TICKET_FIELDS}
    fields |= {
        name: format_when(getattr(ticket, name), locale, zone) if ticket else "" for name in _TICKET_DATES
    }
    fields["assignee"] = (assignee.name or assignee.email) if assignee else ""
    fields["link"] = gmail_link(mailbox, ticket.gmail_thread_id) if ticket else ""
    return {
        "customer": {
            "name": customer.name if customer else "",
            "email": customer.email if customer else "",
        },
        "ticket": fields,
        "agent": {"name": agent.name if agent else "", "email": agent.email if agent else ""},
        "mailbox": {"address": mailbox.address, "name": mailbox.display_name or mailbox.address},
    }


def ticket_locale(session: Session, ticket: Ticket, mailbox: Mailbox) -> str:
    """The customer's language for mail about an existing ticket: Russian when they wrote in Cyrillic."""
    from server.models import Direction, Message

    latest = session.execute(
        select(Message.subject, Message.text)
        .where(Message.ticket_id == ticket.id, Message.direction == Direction.INBOUND.value)
        .order_by(Message.sent_at.desc())
        .limit(1)
    ).first()
    sample = f"{ticket.subject} {latest[0]} {latest[1][:2000]}" if latest else ticket.subject
    if _CYRILLIC.search(sample):
        return Locale.RU.value
    return str(setting(mailbox, "locale"))


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
    }


def reply_ages(session: Session, ticket: Ticket, now: datetime) -> dict[str, float | None]:
    """Hours since the customer's and the agents' latest messages on the ticket (for ``time`` rules)."""
    from server.models import Direction, Message

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
    ) -> None:
        self.session = session
        self.mailbox = mailbox
        self.now = now
        self.dry_run = dry_run
        self.rules = rules if rules is not None else load_mailbox_rules(session, mailbox.id)
        #: (gmail message id, label name) for sync to apply in Gmail after the commit.
        self.label_requests: list[LabelRequest] = []

    def handle(self, event: TicketEvent) -> list[Outcome]:
        ticket = self.session.get(Ticket, event.ticket_id)
        if ticket is None:
            return []
        outcomes = []
        facts = facts_for(ticket, event.message, self.mailbox, self.now)
        if event.message is None:
            facts.update(reply_ages(self.session, ticket, self.now))
        for row, rule in self.rules:
            if not rule.enabled or rule.trigger is not event.trigger:
                continue
            evaluation: Evaluation = rule_engine.evaluate(rule, facts)
            outcome = Outcome(rule.name, evaluation.matched, evaluation.explanation)
            outcomes.append(outcome)
            if not evaluation.matched:
                continue
            self.apply_rule(row, rule, ticket, event, outcome)
            if rule.stop_processing:
                break
        return outcomes

    def apply_rule(self, row: Any, rule: Rule, ticket: Ticket, event: TicketEvent, outcome: Outcome) -> None:
        actor = Actor(ActorKind.RULE, rule_id=row.id)
        for action in rule.actions:
            outcome.actions.append(self._apply(action, ticket, event, actor, row))

    def _record(self, ticket: Ticket, kind: str, actor: Actor, **after: Any) -> None:
        if not self.dry_run:
            tickets.record_event(self.session, ticket, kind, actor=actor, after=after, at=self.now)

    # --- actions --------------------------------------------------------------------------------------
    def _apply(
        self, action: rule_engine.Action, ticket: Ticket, event: TicketEvent, actor: Actor, row: RuleRow
    ) -> str:
        kind, value, at = action.kind, action.value, self.now
        if kind is ActionKind.ASSIGN:
            agent = self._pick_agent(str(value), ticket)
            if agent is None:
                return f"assign: no available agent for {value}"
            if not self.dry_run:
                tickets.assign(self.session, ticket, agent.id, at=at, actor=actor)
            return f"assign to {agent.email}"
        if kind is ActionKind.SET_PRIORITY:
            if not self.dry_run:
                tickets.set_priority(self.session, ticket, Priority(value), at=at, actor=actor)
            return f"set priority {value}"
        if kind is ActionKind.ADD_TAG:
            if not self.dry_run:
                tickets.add_tag(self.session, ticket, str(value), at=at, actor=actor)
            return f"add tag {value}"
        if kind is ActionKind.REMOVE_TAG:
            if not self.dry_run:
                tickets.remove_tag(self.session, ticket, str(value), at=at, actor=actor)
            return f"remove tag {value}"
        if kind is ActionKind.SET_STATUS:
            if not self.dry_run:
                tickets.set_status(self.session, ticket, TicketStatus(value), at=at, actor=actor)
            return f"set status {value}"
        if kind is ActionKind.SET_SLA_POLICY:
            policy = self.session.scalar(
                select(SlaPolicy).where(SlaPolicy.mailbox_id == self.mailbox.id, SlaPolicy.name == value)
            )
            if policy is None:
                return f"set SLA policy: no policy named {value!r}"
            if not self.dry_run:
                tickets.set_sla_policy(self.session, ticket, policy, at=at, actor=actor)
            return f"set SLA policy {value}"
        if kind is ActionKind.ADD_NOTE:
            if not self.dry_run:
                tickets.add_note(self.session, ticket, str(value), at=at, actor=actor)
            return "add a note"
        if kind is ActionKind.AUTO_REPLY:
            return self._auto_reply(str(value["template"]), ticket, event, actor, row)
        if kind is ActionKind.NOTIFY:
            return self._notify(value, ticket, event, actor, row)
        if kind is ActionKind.GMAIL_LABEL:
            if not self.dry_run and event.message is not None:
                self.label_requests.append((event.message.gmail_id, str(value)))
                tickets.record_event(
                    self.session, ticket, "gmail_label_added", actor=actor, after={"label": value}, at=at
                )
            return f"label {value} in Gmail"
        return f"{kind.value}: not supported"

    def _eligible_agents(self) -> list[Agent]:
        return available_agents(self.session, self.mailbox.id)

    def _pick_agent(self, value: str, ticket: Ticket) -> Agent | None:
        agents = self._eligible_agents()
        if not agents:
            return None
        if value == "round_robin":
            if not self.dry_run:  # PostgreSQL: two workers must not both take the same turn
                self.session.refresh(
                    self.mailbox, attribute_names=["round_robin_cursor"], with_for_update=True
                )
            cursor = self.mailbox.round_robin_cursor or 0
            chosen = next((a for a in agents if a.id > cursor), agents[0])
            if not self.dry_run:
                self.mailbox.round_robin_cursor = chosen.id
            return chosen
        if value == "least_open":
            open_counts = dict(
                self.session.execute(
                    select(Ticket.assignee_id, func.count())
                    .where(
                        Ticket.mailbox_id == self.mailbox.id,
                        Ticket.status.in_(ACTIVE_STATUSES),
                        Ticket.assignee_id.is_not(None),
                    )
                    .group_by(Ticket.assignee_id)
                ).all()
            )
            return min(agents, key=lambda a: (open_counts.get(a.id, 0), a.id))
        return next((a for a in agents if a.email == value.lower()), None)

    def _template(self, name: str, locale: str) -> Template | None:
        return find_template(self.session, self.mailbox, name, locale)

    def context(self, ticket: Ticket, locale: str, agent: Agent | None = None) -> dict[str, Any]:
        return mail_context(
            ticket, self.mailbox, locale=locale, zone=str(setting(self.mailbox, "timezone")), agent=agent
        )

    def _render(self, name: str, ticket: Ticket, locale: str) -> RenderedMail | str:
        template = self._template(name, locale)
        if template is None:
            return f"no template named {name!r}"
        try:
            return render_mail(
                template.subject,
                template.body_text,
                template.body_html,
                self.context(ticket, template.locale),
            )
        except TemplateError as exc:
            return f"template {name!r}: {exc}"

    def auto_reply_blocked(self, ticket: Ticket, message: ParsedMessage | None) -> str | None:
        """Why an automatic answer to this mail must not go out (DESIGN: loop-safe), or None."""
        if message is None or message.sender is None:
            return "no sender to answer"
        if message.automatic:
            return message.automatic
        sender = message.sender.email
        team = team_addresses(self.session, self.mailbox)
        if sender in team:
            return "the sender is this mailbox or a team member"
        limit = int(setting(self.mailbox, "auto_replies_per_sender_per_hour"))
        recent = self.session.scalar(
            select(func.count())
            .select_from(OutboxRow)
            .where(
                OutboxRow.mailbox_id == self.mailbox.id,
                OutboxRow.kind == OutboxKind.AUTO_REPLY.value,
                OutboxRow.to == sender,
                OutboxRow.created_at >= self.now - timedelta(hours=1),
            )
        )
        if recent is not None and recent >= limit:
            return f"{recent} auto-replies to {sender} in the last hour (limit {limit})"
        already = self.session.scalar(
            select(OutboxRow.id)
            .where(OutboxRow.ticket_id == ticket.id, OutboxRow.kind == OutboxKind.AUTO_REPLY.value)
            .limit(1)
        )
        if already is not None:
            return "this thread already got an automatic answer"
        return None

    def _auto_reply(self, name: str, ticket: Ticket, event: TicketEvent, actor: Actor, row: RuleRow) -> str:
        reason = self.auto_reply_blocked(ticket, event.message)
        if reason:
            self._record(ticket, "auto_reply_suppressed", actor, reason=reason, template=name)
            return f"auto-reply suppressed: {reason}"
        assert event.message is not None and event.message.sender is not None
        rendered = self._render(name, ticket, customer_locale(event.message, self.mailbox))
        if isinstance(rendered, str):
            self._record(ticket, "auto_reply_failed", actor, reason=rendered)
            return f"auto-reply not sent: {rendered}"
        if self.dry_run:
            return f"auto-reply {name!r} to {event.message.sender.email}"
        headers = thread_headers(self.session, ticket)
        enqueue(
            self.session,
            mailbox=self.mailbox,
            kind=OutboxKind.AUTO_REPLY,
            key=f"auto_reply:{ticket.id}:{row.id}:{event.message.gmail_id}",
            to=[event.message.sender.email],
            # Gmail keeps a reply in its thread only when the subject matches: "Re: " + the customer's subject.
            subject=reply_subject(event.message.subject or ticket.subject),
            text=rendered.text,
            html=rendered.html,
            ticket=ticket,
            headers=headers,
            now=self.now,
        )
        self._record(ticket, "auto_reply_queued", actor, template=name)
        return f"auto-reply {name!r} to {event.message.sender.email}"

    def _notify(
        self, value: Mapping[str, Any], ticket: Ticket, event: TicketEvent, actor: Actor, row: RuleRow
    ) -> str:
        recipients: list[str] = []
        for target in value["to"]:
            if target == "assignee" and ticket.assignee is not None:
                recipients.append(ticket.assignee.email)
            elif target in {"admins", "agents"}:
                agents = self._eligible_agents()
                recipients += [a.email for a in agents if target == "agents" or a.role == Role.ADMIN.value]
            elif target == "customer" and ticket.customer is not None:
                recipients.append(ticket.customer.email)
            elif "@" in target:
                recipients.append(target.lower())
        recipients = list(dict.fromkeys(recipients))
        if not recipients:
            return "notify: nobody to tell"
        rendered = self._render(str(value["template"]), ticket, str(setting(self.mailbox, "locale")))
        if isinstance(rendered, str):
            self._record(ticket, "notify_failed", actor, reason=rendered)
            return f"notify not sent: {rendered}"
        if self.dry_run:
            return f"notify {', '.join(recipients)}"
        message_key = (
            event.message.gmail_id if event.message else f"{event.trigger.value}:{self.now.isoformat()}"
        )
        customer = ticket.customer.email if ticket.customer else None
        for recipient in recipients:
            in_thread = recipient == customer  # the customer hears it in the ticket's own thread
            subject = rendered.subject or f"[#{ticket.number}] {ticket.subject}"
            enqueue(
                self.session,
                mailbox=self.mailbox,
                kind=OutboxKind.NOTIFICATION,
                key=f"notify:{ticket.id}:{row.id}:{message_key}:{recipient}",
                to=[recipient],
                subject=reply_subject(ticket.subject) if in_thread else subject,
                text=rendered.text,
                html=rendered.html,
                ticket=ticket,
                headers=thread_headers(self.session, ticket) if in_thread else {"internal": True},
                now=self.now,
            )
        return f"notify {', '.join(recipients)}"


def run_rules_on_events(session: Session, mailbox: Mailbox, events: list[TicketEvent]) -> list[LabelRequest]:
    """Sync's event handler: the mailbox's rules on each event of a page, in the page's transaction."""
    automation = Automation(session, mailbox, now=datetime.now(UTC))
    for event in events:
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
        automatic="automatic mail (stored)" if message.is_auto else None,
    )
    return parsed


#: ``time`` rules look at active tickets, and at solved or closed ones this many days after solving.
TIME_RULE_SOLVED_DAYS = 7


def run_time_rules(session: Session, mailbox: Mailbox, *, now: datetime) -> int:
    """Run the mailbox's ``time`` rules; each fires once per ticket per change of its condition."""
    from sqlalchemy import and_, or_

    from server.models import RuleFiring

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
        facts = facts_for(ticket, None, mailbox, now) | reply_ages(session, ticket, now)
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
