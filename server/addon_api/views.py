"""``/addon/v1/*``: the add-on's triggers and button clicks, answered with cards.

Every request proves who sends it (:mod:`server.addon_api.auth`): a bad token is 401 on every route.
A verified agent sees only tickets of mailboxes they are a member of; anything else is a "no access"
card with status 403 and nothing of the ticket in it. Actions go through the ticket actions with the
agent as the actor, so each change is an Event naming them, exactly as everywhere else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from rules.model import ACTIVE_STATUSES
from server import tickets
from server.addon_api import cards
from server.addon_api.auth import (
    CachingRequest,
    Unauthorized,
    Verifier,
    agent_for,
    bearer_token,
    client_ids,
    verify_identity,
)
from server.addon_api.preview import certs_transport
from server.addon_api.text import locale_of, say
from server.automation import find_template, mail_context, team_addresses, ticket_locale
from server.db import get_session, upsert
from server.errors import error_response
from server.gmail.send import enqueue, reply_subject, thread_headers
from server.mailbox_settings import reminder_settings
from server.models import (
    ActorKind,
    Agent,
    Customer,
    Direction,
    Event,
    Mailbox,
    Message,
    OutboxKind,
    Priority,
    Template,
    Ticket,
    TicketStatus,
    TicketView,
    mailbox_members,
)
from server.reminders import TEAM_TEMPLATES
from server.sla import CalendarError, subtract_business_minutes
from server.templating import TemplateError, format_when, render_mail

log = logging.getLogger(__name__)
bp = Blueprint("addon", __name__, url_prefix="/addon/v1")
#: The Apps Script shim's global function that every card button calls (addon/Code.js).
APPS_SCRIPT_FUNCTION = "onPostdeskAction"
ACTIVE = ACTIVE_STATUSES
#: Other agents' views shown on the ticket card, if this recent.
VIEWS_SHOWN_FOR = timedelta(hours=2)
MAX_SNOOZE = timedelta(days=366)
_certs_request = CachingRequest()


@dataclass
class Call:
    """One verified add-on request."""

    session: Session
    agent: Agent
    mailbox_ids: list[int]
    locale: str
    zone: str
    caller: cards.Caller
    event: dict[str, Any]
    now: datetime

    @property
    def actor(self) -> tickets.Actor:
        return tickets.Actor(ActorKind.AGENT, agent_id=self.agent.id)

    def say(self, key: str, **values: object) -> str:
        return say(self.locale, key, **values)

    def when(self, value: datetime | None) -> str:
        return format_when(value, self.locale, self.zone)

    def parameter(self, name: str) -> str | None:
        common = self.event.get("commonEventObject") or {}
        for source in (common.get("parameters"), self.event.get("parameters")):
            if isinstance(source, dict) and isinstance(source.get(name), str):
                return str(source[name])
        return None

    def form(self, name: str) -> Any:
        """A form input: its first string, or a dateTimeInput's milliseconds; None when absent."""
        inputs = (self.event.get("commonEventObject") or {}).get("formInputs") or {}
        value = inputs.get(name) if isinstance(inputs, dict) else None
        if not isinstance(value, dict):
            return None
        strings = (value.get("stringInputs") or {}).get("value")
        if isinstance(strings, list) and strings and isinstance(strings[0], str):
            return strings[0]
        moment = (value.get("dateTimeInput") or {}).get("msSinceEpoch")
        if isinstance(moment, (int, float, str)) and str(moment).lstrip("-").isdigit():
            return int(moment)
        return None


class NoAccess(Exception):
    """The agent may not see this ticket or mailbox (403, a card with nothing of it)."""


class BadInput(ValueError):
    """A button's input cannot be used; the message is shown to the agent."""


def _zone_name(value: object, fallback: str) -> str:
    candidate = value if isinstance(value, str) and value else fallback
    try:
        ZoneInfo(candidate)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return candidate


def _public_url(path: str) -> str:
    """This route's address as Google calls it (``ADDON_PUBLIC_URL``), else as this request reached us."""
    base = current_app.config["ADDON_PUBLIC_URL"] or request.url_root
    return base.rstrip("/") + path


def _begin() -> Call:
    token = bearer_token(request.headers.get("Authorization"))
    config = current_app.config
    event = request.get_json(silent=True)
    if not isinstance(event, dict):
        event = {}
    verifier = Verifier(
        client_ids=client_ids(config["ADDON_CLIENT_ID"]),
        certs_url=config["ADDON_CERTS_URL"],
        request=certs_transport(_certs_request),
        service_account=config["ADDON_SERVICE_ACCOUNT"],
        endpoint_url=_public_url(request.path) if config["ADDON_PUBLIC_URL"] else "",
    )
    email = verify_identity(token, event, verifier)
    session = get_session()
    agent = agent_for(session, email)
    mailbox_ids = list(
        session.scalars(select(mailbox_members.c.mailbox_id).where(mailbox_members.c.agent_id == agent.id))
    )
    common = event.get("commonEventObject") if isinstance(event.get("commonEventObject"), dict) else {}
    zone = (common.get("timeZone") or {}).get("id") if isinstance(common.get("timeZone"), dict) else None
    if isinstance(event.get("postdesk"), dict):  # the Apps Script shim: buttons call its function
        function = APPS_SCRIPT_FUNCTION
    else:  # the HTTP runtime: buttons call this backend's URL
        function = _public_url(f"{bp.url_prefix}/action")
    return Call(
        session=session,
        agent=agent,
        mailbox_ids=mailbox_ids,
        locale=locale_of(common.get("userLocale") or agent.locale),
        zone=_zone_name(zone, agent.timezone),
        caller=cards.Caller(function),
        event=event,
        now=datetime.now(UTC),
    )


def _answer(handler: Any) -> Response | tuple[Response, int]:
    try:
        call = _begin()
    except Unauthorized as exc:
        log.info("addon_unauthorized reason=%s", exc)
        return error_response(401, "unauthorized", "a valid Google ID token of an active agent is required")
    try:
        return jsonify(handler(call))
    except NoAccess:
        call.session.rollback()
        card = cards.card(
            call.say("no_access_title"), [cards.section([cards.paragraph(call.say("no_access_text"))])]
        )
        return jsonify(cards.push(card)), 403


@bp.post("/homepage")
def homepage() -> Response | tuple[Response, int]:
    return _answer(lambda call: cards.push(home_card(call)))


@bp.post("/message")
def message() -> Response | tuple[Response, int]:
    return _answer(message_card)


@bp.post("/compose")
def compose() -> Response | tuple[Response, int]:
    return _answer(lambda call: cards.push(compose_card(call)))


@bp.post("/action")
def action() -> Response | tuple[Response, int]:
    return _answer(run_action)


# --- finding what the agent is looking at ---------------------------------------------------------------
def reply_templates(session: Session, mailbox_id: int) -> list[str]:
    """The names of the mailbox's shared templates an agent may answer a customer with."""
    return list(
        session.scalars(
            select(Template.name)
            .where(
                Template.mailbox_id == mailbox_id,
                Template.owner_id.is_(None),
                Template.name.not_in(TEAM_TEMPLATES),
            )
            .group_by(Template.name)
            .order_by(Template.name)
        )
    )


def _ticket_query() -> Any:
    return select(Ticket).options(
        joinedload(Ticket.mailbox),
        joinedload(Ticket.customer),
        joinedload(Ticket.assignee),
        joinedload(Ticket.sla_policy),
        selectinload(Ticket.tags),
    )


def ticket_by_id(call: Call, raw: str | None) -> Ticket:
    if raw is None or not raw.isdigit():
        raise BadInput("no ticket")
    ticket = call.session.scalar(_ticket_query().where(Ticket.id == int(raw)))
    if ticket is None or ticket.mailbox_id not in call.mailbox_ids:
        raise NoAccess
    return ticket


def message_card(call: Call) -> dict[str, Any]:
    """The contextual trigger: the ticket of the open email, or what it is instead."""
    postdesk = call.event.get("postdesk") if isinstance(call.event.get("postdesk"), dict) else {}
    gmail = call.event.get("gmail") if isinstance(call.event.get("gmail"), dict) else {}
    rfc822 = postdesk.get("rfc822MessageId")
    thread = gmail.get("threadId")
    found = None
    if isinstance(rfc822, str) and rfc822.strip():
        found = call.session.execute(
            select(Message.mailbox_id, Message.ticket_id, Message.gmail_thread_id)
            .where(Message.rfc822_message_id == rfc822.strip())
            .order_by(Message.mailbox_id.in_(call.mailbox_ids or [-1]).desc())
            .limit(1)
        ).first()
    if found is None and isinstance(thread, str) and thread:
        found = call.session.execute(
            select(Message.mailbox_id, Message.ticket_id, Message.gmail_thread_id)
            .where(Message.gmail_thread_id == thread, Message.mailbox_id.in_(call.mailbox_ids or [-1]))
            .limit(1)
        ).first()
    if found is None:
        text = [cards.paragraph(call.say("not_postdesk_text"))]
        return cards.push(cards.card(call.say("not_postdesk_title"), [cards.section(text)]))
    mailbox_id, ticket_id, thread_id = found
    if mailbox_id not in call.mailbox_ids:
        raise NoAccess
    if ticket_id is None:
        return cards.push(not_a_ticket_card(call, mailbox_id, thread_id))
    ticket = call.session.scalar(_ticket_query().where(Ticket.id == ticket_id))
    assert ticket is not None
    card = ticket_card(call, ticket)
    call.session.commit()  # the view just recorded
    return cards.push(card)


# --- the cards ---------------------------------------------------------------------------------------
def _ago(call: Call, moment: datetime) -> str:
    minutes = int((call.now - moment).total_seconds() // 60)
    if minutes < 1:
        return call.say("just_now")
    if minutes < 120:
        return call.say("minutes_ago", n=minutes)
    return call.say("hours_ago", n=minutes // 60)


def due_badge(call: Call, ticket: Ticket) -> tuple[str, str]:
    """("Overdue" | "Due soon" | "On time", colour) for the ticket's next deadline."""
    due = ticket.due_at
    if due is None:
        return call.say("no_deadline"), "#5f6368"
    if due <= call.now:
        return call.say("overdue"), "#d93025"
    warn = reminder_settings(ticket.mailbox).warn_minutes
    try:
        soon = call.now >= subtract_business_minutes(
            tickets.policy_for(call.session, ticket).calendar, due, warn
        )
    except CalendarError:
        soon = due - call.now <= timedelta(minutes=warn)
    return (call.say("due_soon"), "#e37400") if soon else (call.say("on_time"), "#188038")


def _record_view(call: Call, ticket: Ticket) -> list[tuple[str, datetime]]:
    """Note that the agent looked; return the others who looked lately (name, when)."""
    rows = call.session.execute(
        select(TicketView, Agent.name, Agent.email)
        .join(Agent, Agent.id == TicketView.agent_id)
        .where(TicketView.ticket_id == ticket.id, TicketView.viewed_at >= call.now - VIEWS_SHOWN_FOR)
        .order_by(TicketView.viewed_at.desc())
    ).all()
    others = [(name or email, view.viewed_at) for view, name, email in rows if view.agent_id != call.agent.id]
    # One statement, so two cards opened at once by the same agent cannot collide on the key.
    upsert(
        call.session,
        TicketView,
        {"ticket_id": ticket.id, "agent_id": call.agent.id},
        {"viewed_at": call.now},
    )
    return others


def ticket_card(call: Call, ticket: Ticket) -> dict[str, Any]:
    """Everything about the ticket, and what an agent can do with it, in one card."""
    c = call.caller
    badge, colour = due_badge(call, ticket)
    status = call.say(f"status_{ticket.status}")
    overview = [
        cards.decorated(f"<b>{status}</b>", top=call.say("status")),
        cards.decorated(call.say(f"priority_{ticket.priority}"), top=call.say("priority")),
        cards.decorated(
            cards.text(ticket.assignee.name or ticket.assignee.email)
            if ticket.assignee
            else call.say("nobody"),
            top=call.say("assignee"),
        ),
        cards.decorated(
            cards.text(", ".join(t.name for t in ticket.tags)) if ticket.tags else call.say("no_tags"),
            top=call.say("tags"),
        ),
        cards.decorated(
            f'<font color="{colour}"><b>{badge}</b></font>'
            + (f" · {call.when(ticket.due_at)}" if ticket.due_at else ""),
            top=call.say("due"),
        ),
    ]
    if ticket.snoozed_until is not None and ticket.snoozed_until > call.now:
        overview.append(cards.decorated(call.say("snoozed_until", when=call.when(ticket.snoozed_until))))
    others = _record_view(call, ticket)
    if others:
        name, moment = others[0]
        overview.append(
            cards.paragraph(f"<i>{call.say('looked_at', agent=cards.text(name), ago=_ago(call, moment))}</i>")
        )

    customer_widgets: list[dict[str, Any]] = []
    if ticket.customer is not None:
        customer: Customer = ticket.customer
        customer_widgets.append(
            cards.decorated(
                cards.text(customer.name or customer.email),
                top=call.say("customer"),
                bottom=cards.text(customer.email) if customer.name else None,
            )
        )
        earlier = call.session.execute(
            select(Ticket.id, Ticket.number, Ticket.subject, Ticket.status)
            .where(Ticket.customer_id == customer.id, Ticket.id != ticket.id)
            .order_by(Ticket.created_at.desc())
            .limit(5)
        ).all()
        for other_id, number, subject, other_status in earlier:
            customer_widgets.append(
                cards.decorated(
                    f"#{number} {cards.text(subject, 80)}",
                    bottom=call.say(f"status_{other_status}"),
                    on_click=cards.action(c, "open_ticket", ticket=other_id),
                )
            )

    team = call.session.execute(
        select(Agent.id, Agent.name, Agent.email)
        .join(mailbox_members, mailbox_members.c.agent_id == Agent.id)
        .where(mailbox_members.c.mailbox_id == ticket.mailbox_id, Agent.active.is_(True))
        .order_by(Agent.name, Agent.email)
    ).all()
    status_buttons = []
    if ticket.assignee_id != call.agent.id:
        status_buttons.append(
            cards.button(call.say("assign_me"), cards.action(c, "assign_me", ticket=ticket.id), filled=True)
        )
    if ticket.status in ACTIVE:
        status_buttons.append(
            cards.button(call.say("solve"), cards.action(c, "set_status", ticket=ticket.id, status="solved"))
        )
        for value in ("pending", "on_hold"):
            if ticket.status != value:
                status_buttons.append(
                    cards.button(
                        call.say(value), cards.action(c, "set_status", ticket=ticket.id, status=value)
                    )
                )
    else:
        status_buttons.append(
            cards.button(call.say("reopen"), cards.action(c, "set_status", ticket=ticket.id, status="open"))
        )
    zone = ZoneInfo(call.zone)
    offset = int((call.now.astimezone(zone).utcoffset() or timedelta()).total_seconds() // 60)
    actions = [
        cards.buttons(*status_buttons),
        cards.dropdown(
            "assignee",
            call.say("assign_to"),
            [(str(agent_id), name or email) for agent_id, name, email in team],
            str(ticket.assignee_id) if ticket.assignee_id else None,
        ),
        cards.buttons(cards.button(call.say("assign"), cards.action(c, "assign", ticket=ticket.id))),
        cards.dropdown(
            "priority",
            call.say("priority"),
            [(p.value, call.say(f"priority_{p.value}")) for p in Priority],
            ticket.priority,
        ),
        cards.buttons(
            cards.button(call.say("set_priority"), cards.action(c, "set_priority", ticket=ticket.id))
        ),
        cards.date_time_picker("snooze_until", call.say("snooze_until"), offset_minutes=offset),
        cards.buttons(
            cards.button(call.say("snooze"), cards.action(c, "snooze", ticket=ticket.id)),
            *(
                [cards.button(call.say("unsnooze"), cards.action(c, "unsnooze", ticket=ticket.id))]
                if ticket.snoozed_until
                else []
            ),
        ),
    ]
    tag_widgets = [
        cards.text_input("tag", call.say("tag")),
        cards.buttons(
            cards.button(call.say("add_tag"), cards.action(c, "add_tag", ticket=ticket.id)),
            *[
                cards.button(
                    call.say("remove_tag", tag=cards.text(t.name, 30)),
                    cards.action(c, "remove_tag", ticket=ticket.id, tag=t.name),
                )
                for t in ticket.tags[:8]
            ],
        ),
        cards.text_input("note", call.say("note"), multiline=True),
        cards.buttons(cards.button(call.say("add_note"), cards.action(c, "add_note", ticket=ticket.id))),
    ]
    names = reply_templates(call.session, ticket.mailbox_id)
    reply = (
        [
            cards.dropdown("template", call.say("template"), [(n, n) for n in names]),
            cards.buttons(cards.button(call.say("send_reply"), cards.action(c, "reply", ticket=ticket.id))),
        ]
        if names
        else [cards.paragraph(call.say("no_templates"))]
    )
    events = call.session.execute(
        select(Event.kind, Event.created_at, Agent.name, Agent.email)
        .outerjoin(Agent, Agent.id == Event.actor_agent_id)
        .where(Event.ticket_id == ticket.id)
        .order_by(Event.id.desc())
        .limit(5)
    ).all()
    history = [
        cards.decorated(
            cards.text(kind.replace("_", " ")),
            bottom=f"{cards.text(name or email) + ' · ' if (name or email) else ''}{_ago(call, created)}",
        )
        for kind, created, name, email in events
    ]
    return cards.card(
        f"#{ticket.number} {cards.text(ticket.subject, 120)}",
        [
            cards.section(overview),
            cards.section(
                customer_widgets, call.say("customer"), collapsible=len(customer_widgets) > 2, keep=2
            ),
            cards.section(actions, call.say("actions")),
            cards.section(tag_widgets, call.say("tags"), collapsible=True, keep=2),
            cards.section(reply, call.say("send_reply")),
            cards.section(history, call.say("last_events"), collapsible=True, keep=2),
        ],
        subtitle=cards.text(ticket.mailbox.display_name or ticket.mailbox.address),
        name=f"ticket-{ticket.id}",
    )


def not_a_ticket_card(call: Call, mailbox_id: int, thread_id: str) -> dict[str, Any]:
    mailbox = call.session.get(Mailbox, mailbox_id)
    assert mailbox is not None
    name = cards.text(mailbox.display_name or mailbox.address)
    return cards.card(
        call.say("not_ticket_title"),
        [
            cards.section(
                [
                    cards.paragraph(call.say("not_ticket_text", mailbox=name)),
                    cards.buttons(
                        cards.button(
                            call.say("create_ticket", mailbox=name),
                            cards.action(call.caller, "create_ticket", mailbox=mailbox_id, thread=thread_id),
                            filled=True,
                        )
                    ),
                ]
            )
        ],
    )


def home_card(call: Call) -> dict[str, Any]:
    """My open tickets by due time, the team's unassigned and overdue counts, find by number."""
    c = call.caller
    mine = call.session.execute(
        select(Ticket.id, Ticket.number, Ticket.subject, Ticket.due_at)
        .where(
            Ticket.assignee_id == call.agent.id,
            Ticket.status.in_(ACTIVE),
            Ticket.mailbox_id.in_(call.mailbox_ids or [-1]),
        )
        .order_by(Ticket.due_at.is_(None), Ticket.due_at, Ticket.number)
        .limit(25)
    ).all()
    scope = (Ticket.mailbox_id.in_(call.mailbox_ids or [-1]), Ticket.status.in_(ACTIVE))
    unassigned = call.session.scalar(
        select(func.count()).select_from(Ticket).where(*scope, Ticket.assignee_id.is_(None))
    )
    overdue = call.session.scalar(
        select(func.count()).select_from(Ticket).where(*scope, Ticket.due_at <= call.now)
    )
    queue = [
        cards.decorated(
            f"#{number} {cards.text(subject, 80)}",
            bottom=(
                f'<font color="#d93025">{call.say("overdue")}</font> · {call.when(due)}'
                if due is not None and due <= call.now
                else call.when(due) or call.say("no_deadline")
            ),
            on_click=cards.action(c, "open_ticket", ticket=ticket_id),
        )
        for ticket_id, number, subject, due in mine
    ] or [cards.paragraph(call.say("nothing"))]
    counts = [
        cards.decorated(f"<b>{unassigned or 0}</b>", top=call.say("unassigned")),
        cards.decorated(f"<b>{overdue or 0}</b>", top=call.say("overdue_count")),
    ]
    find = [
        cards.text_input("number", call.say("number")),
        cards.buttons(cards.button(call.say("open"), cards.action(c, "find"))),
    ]
    return cards.card(
        call.say("home_title"),
        [
            cards.section(counts),
            cards.section(queue, call.say("my_open")),
            cards.section(find, call.say("find")),
        ],
        subtitle=cards.text(call.agent.email),
        name="home",
    )


def _compose_ticket(call: Call) -> Ticket | None:
    gmail = call.event.get("gmail") if isinstance(call.event.get("gmail"), dict) else {}
    thread = gmail.get("threadId")
    if not isinstance(thread, str) or not thread:
        return None
    ticket_id = call.session.scalar(
        select(Message.ticket_id)
        .where(
            Message.gmail_thread_id == thread,
            Message.mailbox_id.in_(call.mailbox_ids or [-1]),
            Message.ticket_id.is_not(None),
        )
        .limit(1)
    )
    return ticket_by_id(call, str(ticket_id)) if ticket_id is not None else None


def compose_card(call: Call) -> dict[str, Any]:
    ticket = _compose_ticket(call)
    mailbox_id = ticket.mailbox_id if ticket else (call.mailbox_ids[0] if call.mailbox_ids else None)
    names = reply_templates(call.session, mailbox_id) if mailbox_id is not None else []
    widgets: list[dict[str, Any]] = []
    if ticket is None:
        widgets.append(cards.paragraph(call.say("compose_no_ticket")))
    if names:
        widgets.append(cards.dropdown("template", call.say("template"), [(n, n) for n in names]))
        params = {"ticket": ticket.id} if ticket else {"mailbox": mailbox_id}
        widgets.append(
            cards.buttons(
                cards.button(
                    call.say("insert"), cards.action(call.caller, "insert_template", **params), filled=True
                )
            )
        )
    else:
        widgets.append(cards.paragraph(call.say("no_templates")))
    title = f"#{ticket.number} {cards.text(ticket.subject, 80)}" if ticket else call.say("compose_title")
    return cards.card(call.say("compose_title"), [cards.section(widgets, title)], name="compose")


# --- button clicks -----------------------------------------------------------------------------------
def run_action(call: Call) -> dict[str, Any]:
    name = call.parameter("do") or ""
    handler = ACTIONS.get(name)
    if handler is None:
        return cards.notify(call.say("bad_input", problem=f"unknown action {name[:40]!r}"))
    try:
        return handler(call)
    except BadInput as exc:
        call.session.rollback()
        return cards.notify(call.say("bad_input", problem=str(exc)))


def _changed(call: Call, ticket: Ticket) -> dict[str, Any]:
    call.session.commit()
    fresh = call.session.scalar(
        _ticket_query().where(Ticket.id == ticket.id).execution_options(populate_existing=True)
    )
    assert fresh is not None
    card = ticket_card(call, fresh)
    call.session.commit()
    return cards.update(card, call.say("done"))


def _assign_me(call: Call) -> dict[str, Any]:
    ticket = ticket_by_id(call, call.parameter("ticket"))
    tickets.assign(call.session, ticket, call.agent.id, at=call.now, actor=call.actor)
    return _changed(call, ticket)


def _assign(call: Call) -> dict[str, Any]:
    ticket = ticket_by_id(call, call.parameter("ticket"))
    raw = call.form("assignee")
    if not isinstance(raw, str) or not raw.isdigit():
        raise BadInput("choose an agent")
    member = call.session.scalar(
        select(Agent.id)
        .join(mailbox_members, mailbox_members.c.agent_id == Agent.id)
        .where(
            Agent.id == int(raw), Agent.active.is_(True), mailbox_members.c.mailbox_id == ticket.mailbox_id
        )
    )
    if member is None:
        raise BadInput("that agent does not work in this mailbox")
    tickets.assign(call.session, ticket, member, at=call.now, actor=call.actor)
    return _changed(call, ticket)


def _set_priority(call: Call) -> dict[str, Any]:
    ticket = ticket_by_id(call, call.parameter("ticket"))
    try:
        priority = Priority(call.form("priority"))
    except ValueError as exc:
        raise BadInput("choose a priority") from exc
    tickets.set_priority(call.session, ticket, priority, at=call.now, actor=call.actor)
    return _changed(call, ticket)


def _set_status(call: Call) -> dict[str, Any]:
    ticket = ticket_by_id(call, call.parameter("ticket"))
    try:
        status = TicketStatus(call.parameter("status"))
    except ValueError as exc:
        raise BadInput("unknown status") from exc
    tickets.set_status(call.session, ticket, status, at=call.now, actor=call.actor)
    return _changed(call, ticket)


def _snooze(call: Call) -> dict[str, Any]:
    ticket = ticket_by_id(call, call.parameter("ticket"))
    moment = call.form("snooze_until")
    if not isinstance(moment, int):
        raise BadInput("choose a date and time")
    try:
        until = datetime.fromtimestamp(moment / 1000, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise BadInput("that date cannot be used") from exc
    if not call.now < until <= call.now + MAX_SNOOZE:
        raise BadInput("a snooze ends in the future, within a year")
    tickets.snooze(call.session, ticket, until, at=call.now, actor=call.actor)
    return _changed(call, ticket)


def _unsnooze(call: Call) -> dict[str, Any]:
    ticket = ticket_by_id(call, call.parameter("ticket"))
    tickets.snooze(call.session, ticket, None, at=call.now, actor=call.actor)
    return _changed(call, ticket)


def _add_tag(call: Call) -> dict[str, Any]:
    ticket = ticket_by_id(call, call.parameter("ticket"))
    tag = call.form("tag")
    if not isinstance(tag, str) or not tag.strip() or len(tag) > 100:
        raise BadInput("a tag is 1 to 100 characters")
    tickets.add_tag(call.session, ticket, tag, at=call.now, actor=call.actor)
    return _changed(call, ticket)


def _remove_tag(call: Call) -> dict[str, Any]:
    ticket = ticket_by_id(call, call.parameter("ticket"))
    tickets.remove_tag(call.session, ticket, call.parameter("tag") or "", at=call.now, actor=call.actor)
    return _changed(call, ticket)


def _add_note(call: Call) -> dict[str, Any]:
    ticket = ticket_by_id(call, call.parameter("ticket"))
    body = call.form("note")
    if not isinstance(body, str) or not body.strip() or len(body) > 20_000:
        raise BadInput("a note is 1 to 20,000 characters")
    tickets.add_note(
        call.session, ticket, body.strip(), at=call.now, author_id=call.agent.id, actor=call.actor
    )
    return _changed(call, ticket)


def _template(call: Call, mailbox: Mailbox, locale: str) -> Template:
    name = call.form("template")
    if not isinstance(name, str) or not name:
        raise BadInput("choose a template")
    template = find_template(call.session, mailbox, name, locale)
    if template is None:
        raise BadInput(f"no template {name[:80]!r}")
    return template


def _reply(call: Call) -> dict[str, Any]:
    """Answer the customer with a template, in the ticket's thread, through the Outbox."""
    ticket = ticket_by_id(call, call.parameter("ticket"))
    if ticket.customer is None:
        raise BadInput("this ticket has no customer to answer")
    locale = ticket_locale(call.session, ticket, ticket.mailbox)
    template = _template(call, ticket.mailbox, locale)
    context = mail_context(ticket, ticket.mailbox, locale=template.locale, zone=call.zone, agent=call.agent)
    try:
        rendered = render_mail(template.subject, template.body_text, template.body_html, context)
    except TemplateError as exc:
        raise BadInput(str(exc)) from exc
    latest = call.session.scalar(
        select(func.max(Message.id)).where(
            Message.ticket_id == ticket.id, Message.direction == Direction.INBOUND.value
        )
    )
    row = enqueue(
        call.session,
        mailbox=ticket.mailbox,
        kind=OutboxKind.REPLY,
        # One answer with this template to the customer's latest message: a second click sends nothing.
        key=f"reply:{ticket.id}:{template.id}:{latest}",
        to=[ticket.customer.email],
        subject=reply_subject(ticket.subject),
        text=rendered.text,
        html=rendered.html,
        ticket=ticket,
        headers=thread_headers(call.session, ticket),
        now=call.now,
    )
    if row is not None:
        tickets.record_event(
            call.session,
            ticket,
            "reply_queued",
            actor=call.actor,
            after={"template": template.name},
            at=call.now,
        )
    result = _changed(call, ticket)
    result["renderActions"]["action"]["notification"] = {"text": call.say("sent")}
    return result


def _create_ticket(call: Call) -> dict[str, Any]:
    """An agent's own thread becomes a ticket; its customer is the first outside recipient."""
    raw_mailbox, thread = call.parameter("mailbox"), call.parameter("thread")
    if raw_mailbox is None or not raw_mailbox.isdigit() or not thread:
        raise BadInput("no thread")
    mailbox_id = int(raw_mailbox)
    if mailbox_id not in call.mailbox_ids:
        raise NoAccess
    messages = call.session.scalars(
        select(Message)
        .where(Message.mailbox_id == mailbox_id, Message.gmail_thread_id == thread)
        .order_by(Message.sent_at)
    ).all()
    if not messages:
        raise BadInput("the thread is not in Postdesk yet")
    if any(m.ticket_id for m in messages):
        return _changed(call, ticket_by_id(call, str(next(m.ticket_id for m in messages if m.ticket_id))))
    from server.gmail.mime import parse_addresses

    mailbox = call.session.get(Mailbox, mailbox_id)
    assert mailbox is not None
    team = team_addresses(call.session, mailbox)
    outside = next(
        (
            a
            for m in messages
            for a in parse_addresses(f"{m.from_email}, {m.to}, {m.cc}")
            if a.email and a.email.lower() not in team
        ),
        None,
    )
    customer = None
    if outside is not None:
        customer = call.session.scalar(
            select(Customer).where(Customer.mailbox_id == mailbox_id, Customer.email == outside.email.lower())
        )
        if customer is None:
            customer = Customer(mailbox_id=mailbox_id, email=outside.email.lower(), name=outside.name)
            call.session.add(customer)
    ticket = tickets.open_ticket(
        call.session,
        mailbox_id,
        subject=messages[0].subject or "(no subject)",
        customer=customer,
        gmail_thread_id=thread,
        created_at=call.now,
        actor=call.actor,
    )
    for message in messages:
        message.ticket_id = ticket.id
    return _changed(call, ticket)


def _push_ticket(call: Call, ticket: Ticket) -> dict[str, Any]:
    card = ticket_card(call, ticket)
    call.session.commit()
    return {"renderActions": {"action": {"navigations": [{"pushCard": card}]}}}


def _open_ticket(call: Call) -> dict[str, Any]:
    return _push_ticket(call, ticket_by_id(call, call.parameter("ticket")))


def _find(call: Call) -> dict[str, Any]:
    raw = call.form("number")
    number = raw.strip().lstrip("#") if isinstance(raw, str) else ""
    if not number.isdigit() or len(number) > 9:
        raise BadInput("a ticket number, like 42")
    found = call.session.scalar(
        select(Ticket.id)
        .where(Ticket.number == int(number), Ticket.mailbox_id.in_(call.mailbox_ids or [-1]))
        .limit(1)
    )
    if found is None:
        return cards.notify(call.say("not_found", number=number))
    return _push_ticket(call, ticket_by_id(call, str(found)))


def _home(call: Call) -> dict[str, Any]:
    return cards.update(home_card(call))


def _settings(call: Call) -> dict[str, Any]:
    url = current_app.config["ADDON_SETTINGS_URL"] or request.url_root
    return {"renderActions": {"action": {"link": {"url": url}}}}


def _insert_template(call: Call) -> dict[str, Any]:
    raw_ticket = call.parameter("ticket")
    if raw_ticket is not None:
        ticket = ticket_by_id(call, raw_ticket)
        locale = ticket_locale(call.session, ticket, ticket.mailbox)
        template = _template(call, ticket.mailbox, locale)
        context = mail_context(
            ticket, ticket.mailbox, locale=template.locale, zone=call.zone, agent=call.agent
        )
    else:
        raw_mailbox = call.parameter("mailbox")
        if raw_mailbox is None or not raw_mailbox.isdigit() or int(raw_mailbox) not in call.mailbox_ids:
            raise NoAccess
        mailbox = call.session.get(Mailbox, int(raw_mailbox))
        assert mailbox is not None
        template = _template(call, mailbox, call.locale)
        context = mail_context(None, mailbox, locale=template.locale, zone=call.zone, agent=call.agent)
    try:
        rendered = render_mail(template.subject, template.body_text, template.body_html, context)
    except TemplateError as exc:
        raise BadInput(str(exc)) from exc
    return cards.insert_into_draft(rendered.html or rendered.text, html=bool(rendered.html))


ACTIONS: dict[str, Any] = {
    "assign_me": _assign_me,
    "assign": _assign,
    "set_priority": _set_priority,
    "set_status": _set_status,
    "snooze": _snooze,
    "unsnooze": _unsnooze,
    "add_tag": _add_tag,
    "remove_tag": _remove_tag,
    "add_note": _add_note,
    "reply": _reply,
    "create_ticket": _create_ticket,
    "open_ticket": _open_ticket,
    "find": _find,
    "home": _home,
    "settings": _settings,
    "insert_template": _insert_template,
}
