"""Actions on a ticket as data: one handler per action kind, and one table of them.

Rules, the add-on (and the coming settings page and REST API) do an action through :func:`perform`:
the handler of its kind *prepares* it — checks the value against what the mailbox holds, resolves who
or what it means, or refuses with the reason — and the prepared action *describes* itself (what a dry
run shows) and *applies* itself through :mod:`server.services.tickets` and the Outbox. :data:`ACTIONS` maps
every :class:`rules.ActionKind` to its handler, so a new kind is one handler and one line.

Handlers work inside the caller's transaction and never commit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rules import ActionKind, Trigger
from rules.model import ACTIVE_STATUSES, ASSIGN_STRATEGIES, SETTABLE_STATUSES
from server.base.db import memo
from server.base.models import (
    ActorKind,
    Agent,
    Mailbox,
    Message,
    OutboxKind,
    Priority,
    Role,
    SlaPolicy,
    Template,
    Ticket,
    TicketStatus,
    mailbox_members,
)
from server.base.models import Outbox as OutboxRow
from server.gmail.mime import ParsedMessage
from server.gmail.send import enqueue, queued_here, reply_subject, thread_headers
from server.gmail.sync import LabelRequest, TicketEvent
from server.services import following, tickets
from server.services.composing import (
    available_agents,
    customer_locale,
    find_template,
    mail_context,
    public_base,
    render_template,
    team_addresses,
)
from server.services.knowledge.faq import FaqMatch, best_answer, solved_link, with_faq_answer
from server.services.knowledge.readings import text_of
from server.services.mailbox_settings import setting
from server.services.templating import RenderedMail, TemplateError
from server.services.tickets import Actor
from server.services.tickets.actions import MAX_TAG_LENGTH

#: Longest note an action accepts (the same limit on every face).
MAX_NOTE_LENGTH = 20_000
#: Longest reply an agent writes in their own words (the REST API's ``text`` reply).
MAX_REPLY_LENGTH = 100_000


@dataclass
class ActionContext:
    """Where an action happens: the ticket, who does it, when, and whether only as a dry run."""

    session: Session
    mailbox: Mailbox
    ticket: Ticket
    actor: Actor
    now: datetime
    dry_run: bool = False
    #: The sync event a rule answers (the customer's mail an auto-reply answers), if any.
    event: TicketEvent | None = None
    #: Gmail labels the actions asked for, to apply after the caller's commit.
    label_requests: list[LabelRequest] = field(default_factory=list)

    @property
    def message(self) -> ParsedMessage | None:
        return self.event.message if self.event else None

    @property
    def rule_id(self) -> int | None:
        return self.actor.rule_id


class ActionRefused(Exception):
    """The action cannot be done on this ticket now. ``str(exc)`` says why, to a person.

    ``summary`` is the dry-run line; ``event`` (kind, details) is the audit event a rule's refusal
    leaves (an auto-reply suppressed says why, so nobody wonders where the answer went).
    """

    def __init__(
        self,
        reason: str,
        *,
        summary: str | None = None,
        event: tuple[str, dict[str, Any]] | None = None,
        stops_rule: bool = False,
    ) -> None:
        super().__init__(reason)
        self.summary = summary or reason
        self.event = event
        #: The rule's later actions are skipped too (a split's held-back answer: "answer and solve"
        #: must not solve without the answer).
        self.stops_rule = stops_rule


@dataclass(frozen=True)
class Prepared:
    """An action ready to apply: what it will do, in words, and how."""

    description: str
    apply: Callable[[], object]


def _nothing_to_check(session: Session, mailbox: Mailbox, value: Any) -> list[str]:
    return []


@dataclass(frozen=True)
class Handler:
    """One action kind: ``prepare`` a value on a ticket; ``check`` a stored rule's value (for saving)."""

    prepare: Callable[[ActionContext, Any], Prepared]
    check: Callable[[Session, Mailbox, Any], list[str]] = _nothing_to_check


def perform(ctx: ActionContext, kind: ActionKind, value: Any) -> str:
    """Do one action (or, in a dry run, only say what it would do); raises :class:`ActionRefused`."""
    if ctx.ticket.status == TicketStatus.MERGED.value:  # read-only
        raise ActionRefused(tickets.merged_note(ctx.session, ctx.ticket))
    prepared = ACTIONS[kind].prepare(ctx, value)
    if not ctx.dry_run:
        prepared.apply()
    return prepared.description


def check(session: Session, mailbox: Mailbox, kind: ActionKind, value: Any) -> list[str]:
    """Problems of an action's value against what the mailbox holds (a template named that …)."""
    return ACTIONS[kind].check(session, mailbox, value)


# --- assign --------------------------------------------------------------------------------------------
def _member(
    session: Session, mailbox_id: int, *, agent_id: int | None = None, email: str = ""
) -> Agent | None:
    """An active agent of the mailbox, by id or email."""
    query = (
        select(Agent)
        .join(mailbox_members, mailbox_members.c.agent_id == Agent.id)
        .where(mailbox_members.c.mailbox_id == mailbox_id, Agent.active.is_(True))
    )
    if agent_id is not None:
        query = query.where(Agent.id == agent_id)
    else:
        query = query.where(Agent.email == email.strip().lower())
    return session.scalar(query)


def _round_robin(ctx: ActionContext, agents: list[Agent]) -> tuple[Agent, Callable[[], None]]:
    if not ctx.dry_run:  # PostgreSQL: two workers must not both take the same turn
        # Locked once per memo scope (a page of sync is one transaction: the lock holds to its end).
        memo(
            ctx.session,
            ("round_robin_locked", ctx.mailbox.id),
            lambda: ctx.session.refresh(
                ctx.mailbox, attribute_names=["round_robin_cursor"], with_for_update=True
            ),
        )
    cursor = ctx.mailbox.round_robin_cursor or 0
    chosen = next((a for a in agents if a.id > cursor), agents[0])

    def move_cursor() -> None:
        ctx.mailbox.round_robin_cursor = chosen.id

    return chosen, move_cursor


def _least_open(ctx: ActionContext, agents: list[Agent]) -> Agent:
    ctx.session.flush()  # the assignments made earlier in this page count too
    open_counts: dict[int, int] = {
        agent_id: count
        for agent_id, count in ctx.session.execute(
            select(Ticket.assignee_id, func.count())
            .where(
                Ticket.mailbox_id == ctx.mailbox.id,
                Ticket.status.in_(ACTIVE_STATUSES),
                Ticket.assignee_id.is_not(None),
            )
            .group_by(Ticket.assignee_id)
        )
        if agent_id is not None
    }
    return min(agents, key=lambda a: (open_counts.get(a.id, 0), a.id))


def _prepare_assign(ctx: ActionContext, value: Any) -> Prepared:
    """``value``: an agent's id or email, ``round_robin``, ``least_open``, or None to unassign.

    A strategy picks among the mailbox's available agents (active, not away); a named agent must be an
    active member, and a rule does not give work to someone who is away.
    """
    if value is None:
        return Prepared(
            "unassign", lambda: tickets.assign(ctx.session, ctx.ticket, None, at=ctx.now, actor=ctx.actor)
        )
    after: Callable[[], None] = lambda: None  # noqa: E731 - the default of "nothing else to do"
    if value in ASSIGN_STRATEGIES:
        agents = available_agents(ctx.session, ctx.mailbox.id)
        if not agents:
            raise ActionRefused(
                f"no available agent for {value}", summary=f"assign: no available agent for {value}"
            )
        if value == "round_robin":
            agent, after = _round_robin(ctx, agents)
        else:
            agent = _least_open(ctx, agents)
    else:
        if isinstance(value, int) and not isinstance(value, bool):
            found = _member(ctx.session, ctx.mailbox.id, agent_id=value)
        elif isinstance(value, str):
            found = _member(ctx.session, ctx.mailbox.id, email=value)
        else:
            found = None
        if found is None or (found.away and ctx.actor.kind is ActorKind.RULE):
            raise ActionRefused(
                "that agent does not work in this mailbox", summary=f"assign: no available agent for {value}"
            )
        agent = found

    def apply() -> None:
        after()
        tickets.assign(ctx.session, ctx.ticket, agent.id, at=ctx.now, actor=ctx.actor)

    return Prepared(f"assign to {agent.email}", apply)


# --- plain ticket fields ------------------------------------------------------------------------------
def _prepare_set_priority(ctx: ActionContext, value: Any) -> Prepared:
    try:
        priority = Priority(value)
    except ValueError as exc:
        raise ActionRefused("choose a priority") from exc
    return Prepared(
        f"set priority {priority.value}",
        lambda: tickets.set_priority(ctx.session, ctx.ticket, priority, at=ctx.now, actor=ctx.actor),
    )


def _prepare_set_status(ctx: ActionContext, value: Any) -> Prepared:
    if value not in SETTABLE_STATUSES:  # a ticket becomes merged only by merging it into another
        raise ActionRefused(f"unknown status: one of {', '.join(SETTABLE_STATUSES)}")
    status = TicketStatus(value)
    return Prepared(
        f"set status {status.value}",
        lambda: tickets.set_status(ctx.session, ctx.ticket, status, at=ctx.now, actor=ctx.actor),
    )


def _tag(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_TAG_LENGTH:
        raise ActionRefused(f"a tag is 1 to {MAX_TAG_LENGTH} characters")
    return value.strip()


def _prepare_add_tag(ctx: ActionContext, value: Any) -> Prepared:
    tag = _tag(value)
    return Prepared(
        f"add tag {tag}", lambda: tickets.add_tag(ctx.session, ctx.ticket, tag, at=ctx.now, actor=ctx.actor)
    )


def _prepare_remove_tag(ctx: ActionContext, value: Any) -> Prepared:
    tag = _tag(value)
    return Prepared(
        f"remove tag {tag}",
        lambda: tickets.remove_tag(ctx.session, ctx.ticket, tag, at=ctx.now, actor=ctx.actor),
    )


def _prepare_add_note(ctx: ActionContext, value: Any) -> Prepared:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NOTE_LENGTH:
        raise ActionRefused(f"a note is 1 to {MAX_NOTE_LENGTH:,} characters")
    body = value.strip()
    return Prepared(
        "add a note",
        lambda: tickets.add_note(
            ctx.session, ctx.ticket, body, at=ctx.now, author_id=ctx.actor.agent_id, actor=ctx.actor
        ),
    )


def _policy(session: Session, mailbox: Mailbox, name: Any) -> SlaPolicy | None:
    return session.scalar(
        select(SlaPolicy).where(SlaPolicy.mailbox_id == mailbox.id, SlaPolicy.name == str(name))
    )


def _prepare_set_sla_policy(ctx: ActionContext, value: Any) -> Prepared:
    policy = _policy(ctx.session, ctx.mailbox, value)
    if policy is None:
        raise ActionRefused(
            f"no SLA policy named {value!r}", summary=f"set SLA policy: no policy named {value!r}"
        )
    return Prepared(
        f"set SLA policy {value}",
        lambda: tickets.set_sla_policy(ctx.session, ctx.ticket, policy, at=ctx.now, actor=ctx.actor),
    )


def _policy_named(session: Session, mailbox: Mailbox, value: Any) -> list[str]:
    if _policy(session, mailbox, value) is None:
        return [f"no SLA policy named {value!r} in {mailbox.address}"]
    return []


def _prepare_gmail_label(ctx: ActionContext, value: Any) -> Prepared:
    label, message = str(value), ctx.message

    def apply() -> None:
        if message is None:  # a time rule has no message to label
            return
        ctx.label_requests.append((message.gmail_id, label))
        tickets.record_event(
            ctx.session, ctx.ticket, "gmail_label_added", actor=ctx.actor, after={"label": label}, at=ctx.now
        )

    return Prepared(f"label {label} in Gmail", apply)


# --- mail: auto-replies and notifications -------------------------------------------------------------
def _template_named(session: Session, mailbox: Mailbox, value: Any) -> list[str]:
    name = value.get("template") if isinstance(value, Mapping) else None
    if (
        not isinstance(name, str)
        or find_template(session, mailbox, name, str(setting(mailbox, "locale"))) is None
    ):
        return [f"no template named {name!r} in {mailbox.address}"]
    return []


def _render(ctx: ActionContext, name: str, locale: str, *, faq: FaqMatch | None = None) -> RenderedMail:
    """The mailbox's template ``name`` for this ticket (carrying the ``faq`` answer, when one is given);
    raises ActionRefused (no ``summary`` yet)."""
    template: Template | None = find_template(ctx.session, ctx.mailbox, name, locale)
    if template is None:
        raise ActionRefused(f"no template named {name!r}")
    context = mail_context(
        ctx.ticket, ctx.mailbox, locale=template.locale, zone=str(setting(ctx.mailbox, "timezone"))
    )
    if faq is not None:
        context["faq"] = faq_context(ctx, faq, context)
    try:
        rendered = render_template(template, context)
    except TemplateError as exc:
        raise ActionRefused(f"template {name!r}: {exc}") from exc
    if faq is None or "faq" in template.body_text or "faq" in (template.body_html or ""):
        return rendered  # no answer to add, or the template places it itself
    return with_faq_answer(rendered, context["faq"], template.locale)


def faq_context(ctx: ActionContext, faq: FaqMatch, context: dict[str, Any]) -> dict[str, Any]:
    """``faq.answer`` (the FAQ template's text for this ticket), ``faq.link`` ("this solved it") and
    ``faq.score`` for the acknowledgement."""
    from flask import current_app

    answer = render_template(faq.template, context)  # checked by the caller (faq_answer)
    link = solved_link(
        ctx.ticket.id, faq.template.id, secret=str(current_app.config["SECRET_KEY"]), base_url=public_base()
    )
    from server.services.articles import public_url, published_for_template

    article = published_for_template(ctx.session, faq.template.id)
    return {"answer": answer.text.strip(), "link": link, "score": faq.score,
            "article": public_url(ctx.mailbox, article) if article is not None else None}  # fmt: skip


def faq_answer(ctx: ActionContext, message: ParsedMessage, locale: str) -> FaqMatch | None:
    """The FAQ answer a new ticket's acknowledgement carries, if one matches and renders (an FAQ
    template that fails to render is left out: the acknowledgement goes without it)."""
    found = best_answer(ctx.session, ctx.mailbox, text_of(message.subject, message.text), locale=locale)
    if found is None:
        return None
    context = mail_context(
        ctx.ticket, ctx.mailbox, locale=found.template.locale, zone=str(setting(ctx.mailbox, "timezone"))
    )
    try:
        render_template(found.template, context)
    except TemplateError:
        return None
    return found


def auto_reply_blocked(ctx: ActionContext) -> str | None:
    """Why an automatic answer to this mail must not go out (DESIGN: loop-safe), or None."""
    message = ctx.message
    if message is None or message.sender is None:
        return "no sender to answer"
    if (
        ctx.event is not None
        and ctx.event.split_from is not None
        and not setting(ctx.mailbox, "acknowledge_splits")
    ):
        return f"split from #{ctx.event.split_from}: this mailbox does not acknowledge split tickets"
    if message.automatic:
        return message.automatic
    sender = message.sender.email
    if sender in team_addresses(ctx.session, ctx.mailbox):
        return "the sender is this mailbox or a team member"
    limit = int(setting(ctx.mailbox, "auto_replies_per_sender_per_hour"))
    # Both questions in one statement: it runs for every new ticket.
    recent_to_sender = (
        select(func.count())
        .select_from(OutboxRow)
        .where(
            OutboxRow.mailbox_id == ctx.mailbox.id,
            OutboxRow.kind == OutboxKind.AUTO_REPLY.value,
            OutboxRow.to == sender,
            OutboxRow.created_at >= ctx.now - timedelta(hours=1),
        )
        .scalar_subquery()
    )
    this_thread = (
        select(OutboxRow.id)
        .where(OutboxRow.ticket_id == ctx.ticket.id, OutboxRow.kind == OutboxKind.AUTO_REPLY.value)
        .exists()
    )
    recent, already = ctx.session.execute(select(recent_to_sender, this_thread)).one()
    # What this page's rules queued and the database has not seen yet (they run without autoflush).
    queued = queued_here(ctx.session)
    kind = OutboxKind.AUTO_REPLY
    recent += sum(
        1 for row in queued.unflushed(queued.by_to.get(sender, []), kind) if row.mailbox_id == ctx.mailbox.id
    )
    already = already or bool(queued.unflushed(queued.by_ticket.get(ctx.ticket.id, []), kind))
    if recent is not None and recent >= limit:
        return f"{recent} auto-replies to {sender} in the last hour (limit {limit})"
    if already:
        return "this thread already got an automatic answer"
    return None


def _prepare_auto_reply(ctx: ActionContext, value: Any) -> Prepared:
    name = str(value["template"])
    reason = auto_reply_blocked(ctx)
    if reason:
        raise ActionRefused(
            reason,
            summary=f"auto-reply suppressed: {reason}",
            event=("auto_reply_suppressed", {"reason": reason, "template": name}),
            stops_rule=ctx.event is not None and ctx.event.split_from is not None,
        )
    message = ctx.message
    assert message is not None and message.sender is not None  # auto_reply_blocked said so
    locale = customer_locale(message, ctx.mailbox)
    faq = (
        faq_answer(ctx, message, locale)
        if ctx.event is not None and ctx.event.trigger is Trigger.TICKET_CREATED
        else None
    )
    try:
        rendered = _render(ctx, name, locale, faq=faq)
    except ActionRefused as exc:
        raise ActionRefused(
            str(exc), summary=f"auto-reply not sent: {exc}", event=("auto_reply_failed", {"reason": str(exc)})
        ) from exc
    sender = message.sender.email

    def apply() -> None:
        enqueue(
            ctx.session,
            mailbox=ctx.mailbox,
            kind=OutboxKind.AUTO_REPLY,
            key=f"auto_reply:{ctx.ticket.id}:{ctx.rule_id}:{message.gmail_id}",
            to=[sender],
            # Gmail keeps a reply in its thread only when the subject matches: "Re: " + the customer's subject.
            subject=reply_subject(message.subject or ctx.ticket.subject),
            text=rendered.text,
            html=rendered.html,
            ticket=ctx.ticket,
            headers=thread_headers(ctx.session, ctx.ticket, answering=_opening_row(ctx)),
            now=ctx.now,
        )
        tickets.record_event(
            ctx.session,
            ctx.ticket,
            "auto_reply_queued",
            actor=ctx.actor,
            after={"template": name},
            at=ctx.now,
        )
        if faq is not None:
            tickets.record_event(ctx.session, ctx.ticket, "faq_answered", actor=ctx.actor,
                                 after={"template": faq.template.name, "template_id": faq.template.id,
                                        "score": faq.score, "example": faq.example[:200]}, at=ctx.now)  # fmt: skip

    with_faq = f" with FAQ answer {faq.template.name!r} ({faq.score:.2f})" if faq else ""
    return Prepared(f"auto-reply {name!r} to {sender}{with_faq}", apply)


def _opening_row(ctx: ActionContext) -> Message | None:
    """The stored message that just opened the ticket (sync holds it): an acknowledgement answers it."""
    event = ctx.event
    if event is None or event.trigger is not Trigger.TICKET_CREATED or event.split_from is not None:
        return None
    return event.row if event.row is not None and event.row.ticket_id == ctx.ticket.id else None


def _recipients(ctx: ActionContext, targets: list[str]) -> list[str]:
    ticket, recipients = ctx.ticket, []
    for target in targets:
        if target == "assignee":  # and who follows the ticket
            recipients += following.watchers(ctx.session, ticket)
        elif target in {"admins", "agents"}:
            agents = available_agents(ctx.session, ctx.mailbox.id)
            recipients += [a.email for a in agents if target == "agents" or a.role == Role.ADMIN.value]
        elif target == "customer" and ticket.customer is not None:
            recipients.append(ticket.customer.email)
        elif "@" in target:
            recipients.append(target.lower())
    return list(dict.fromkeys(recipients))


def _prepare_notify(ctx: ActionContext, value: Any) -> Prepared:
    recipients = _recipients(ctx, list(value["to"]))
    if not recipients:
        raise ActionRefused("nobody to tell", summary="notify: nobody to tell")
    try:
        rendered = _render(ctx, str(value["template"]), str(setting(ctx.mailbox, "locale")))
    except ActionRefused as exc:
        raise ActionRefused(
            str(exc), summary=f"notify not sent: {exc}", event=("notify_failed", {"reason": str(exc)})
        ) from exc
    ticket = ctx.ticket
    event = ctx.event
    message_key = (
        event.message.gmail_id
        if event is not None and event.message is not None
        else f"{event.trigger.value if event else 'action'}:{ctx.now.isoformat()}"
    )
    customer = ticket.customer.email if ticket.customer else None

    def apply() -> None:
        for recipient in recipients:
            in_thread = recipient == customer  # the customer hears it in the ticket's own thread
            subject = rendered.subject or f"[#{ticket.number}] {ticket.subject}"
            enqueue(
                ctx.session,
                mailbox=ctx.mailbox,
                kind=OutboxKind.NOTIFICATION,
                key=f"notify:{ticket.id}:{ctx.rule_id}:{message_key}:{recipient}",
                to=[recipient],
                subject=reply_subject(ticket.subject) if in_thread else subject,
                text=rendered.text,
                html=rendered.html,
                ticket=ticket,
                headers=thread_headers(ctx.session, ticket) if in_thread else {"internal": True},
                now=ctx.now,
            )

    return Prepared(f"notify {', '.join(recipients)}", apply)


#: Every action kind and its handler. tests/test_actions.py checks that no kind is missing.
ACTIONS: dict[ActionKind, Handler] = {
    ActionKind.ASSIGN: Handler(_prepare_assign),
    ActionKind.SET_PRIORITY: Handler(_prepare_set_priority),
    ActionKind.ADD_TAG: Handler(_prepare_add_tag),
    ActionKind.REMOVE_TAG: Handler(_prepare_remove_tag),
    ActionKind.SET_STATUS: Handler(_prepare_set_status),
    ActionKind.SET_SLA_POLICY: Handler(_prepare_set_sla_policy, _policy_named),
    ActionKind.AUTO_REPLY: Handler(_prepare_auto_reply, _template_named),
    ActionKind.NOTIFY: Handler(_prepare_notify, _template_named),
    ActionKind.ADD_NOTE: Handler(_prepare_add_note),
    ActionKind.GMAIL_LABEL: Handler(_prepare_gmail_label),
}


def reply_with_template(
    session: Session, ticket: Ticket, template: Template, *, agent: Agent, zone: str, now: datetime
) -> bool:
    """An agent answers the customer with ``template``, in the ticket's thread, through the Outbox.

    The Outbox key names the decision: this template, on the conversation as the agent saw it (its
    latest message, either way). A double click sends once; the same answer after anything new in the
    thread — the customer's mail or the agent's own — is a new decision and goes out. False when it
    was already decided. Raises ``TemplateError`` when the template does not render, and
    :class:`ActionRefused` when the ticket has nobody to answer.
    """
    if ticket.customer is None:
        raise ActionRefused("this ticket has no customer to answer")
    rendered = render_template(
        template, mail_context(ticket, ticket.mailbox, locale=template.locale, zone=zone, agent=agent)
    )
    return _queue_reply(
        session,
        ticket,
        rendered,
        agent=agent,
        now=now,
        decision=str(template.id),
        about={"template": template.name},
    )


def reply_with_text(session: Session, ticket: Ticket, text: str, *, agent: Agent, now: datetime) -> bool:
    """An agent answers the customer with their own words (plain text), as :func:`reply_with_template`
    does: the same text on the same state of the conversation is one decision, sent once."""
    if ticket.customer is None:
        raise ActionRefused("this ticket has no customer to answer")
    body = text.strip()
    if not body or len(body) > MAX_REPLY_LENGTH:
        raise ActionRefused(f"a reply is 1 to {MAX_REPLY_LENGTH:,} characters")
    digest = hashlib.sha256(body.encode("utf-8", "replace")).hexdigest()[:24]
    rendered = RenderedMail(subject=reply_subject(ticket.subject), text=body, html=None)
    return _queue_reply(
        session, ticket, rendered, agent=agent, now=now, decision=f"text:{digest}", about={"text": body[:200]}
    )


def _queue_reply(
    session: Session,
    ticket: Ticket,
    rendered: RenderedMail,
    *,
    agent: Agent,
    now: datetime,
    decision: str,
    about: dict[str, Any],
) -> bool:
    assert ticket.customer is not None  # checked by the callers
    if ticket.status == TicketStatus.MERGED.value:
        raise ActionRefused(tickets.merged_note(session, ticket))
    latest = session.scalar(select(func.max(Message.id)).where(Message.ticket_id == ticket.id))
    headers = thread_headers(session, ticket)  # of a merged ticket's survivor: the latest thread's subject
    row = enqueue(
        session,
        mailbox=ticket.mailbox,
        kind=OutboxKind.REPLY,
        key=f"reply:{ticket.id}:{decision}:{latest}",
        to=[ticket.customer.email],
        subject=reply_subject(headers.pop("subject", None) or ticket.subject),
        text=rendered.text,
        html=rendered.html,
        ticket=ticket,
        headers=headers,
        now=now,
    )
    if row is None:
        return False
    actor = Actor(ActorKind.AGENT, agent_id=agent.id)
    tickets.record_event(session, ticket, "reply_queued", actor=actor, after=about, at=now)
    return True
