"""The compose card: insert one of the mailbox's templates into the draft being written."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.models import Mailbox, Message, Template, Ticket
from server.faces.addon import cards
from server.faces.addon.call import BadInput, Call, as_object, ticket_by_id
from server.faces.addon.suggestions import similar_section
from server.flows.reminders import TEAM_TEMPLATES
from server.services.composing import find_template, mail_context, render_template, ticket_locale
from server.services.templating import TemplateError


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


def chosen_template(call: Call, mailbox: Mailbox, locale: str) -> Template:
    """The template picked in the card's dropdown, in ``locale`` when the mailbox has it."""
    name = call.form("template")
    if not name:
        raise BadInput("choose a template")
    template = find_template(call.session, mailbox, name, locale)
    if template is None:
        raise BadInput(f"no template {name[:80]!r}")
    return template


def compose_ticket(call: Call) -> Ticket | None:
    """The ticket of the thread the draft answers, if any."""
    thread = as_object(call.event.get("gmail")).get("threadId")
    if not isinstance(thread, str) or not thread:
        return None
    ticket_id = call.session.scalar(
        select(Message.ticket_id)
        .where(
            Message.gmail_thread_id == thread[:200],
            Message.mailbox_id.in_(call.mailbox_ids or [-1]),
            Message.ticket_id.is_not(None),
        )
        .limit(1)
    )
    return ticket_by_id(call, str(ticket_id)) if ticket_id is not None else None


def compose_card(call: Call) -> dict[str, Any]:
    ticket = compose_ticket(call)
    mailbox_id = ticket.mailbox_id if ticket else (call.mailbox_ids[0] if call.mailbox_ids else None)
    names = reply_templates(call.session, mailbox_id) if mailbox_id is not None else []
    widgets: list[dict[str, Any]] = []
    if ticket is None:
        widgets.append(cards.paragraph(call.say("compose_no_ticket")))
    if names:
        widgets.append(cards.dropdown("template", call.say("template"), [(n, n) for n in names]))
        params = {"ticket": ticket.id} if ticket else {"mailbox": mailbox_id}
        insert = cards.action(call.caller, "insert_template", **params)
        widgets.append(cards.buttons(cards.button(call.say("insert"), insert, filled=True)))
    else:
        widgets.append(cards.paragraph(call.say("no_templates")))
    title = f"#{ticket.number} {cards.text(ticket.subject, 80)}" if ticket else call.say("compose_title")
    suggested = similar_section(call, ticket, insert=True) if ticket else []
    return cards.card(call.say("compose_title"), [cards.section(widgets, title), *suggested], name="compose")


def insert_template(call: Call) -> dict[str, Any]:
    """The chosen template rendered for the draft's ticket (or with empty ticket fields)."""
    raw_ticket = call.parameter("ticket")
    if raw_ticket is not None:
        ticket: Ticket | None = ticket_by_id(call, raw_ticket)
        assert ticket is not None
        mailbox = ticket.mailbox
        locale = ticket_locale(call.session, ticket, mailbox)
    else:
        ticket = None
        found = call.session.get(Mailbox, call.mailbox_id(call.parameter("mailbox")))
        assert found is not None  # the agent is a member of it
        mailbox, locale = found, call.locale
    template = chosen_template(call, mailbox, locale)
    context = mail_context(ticket, mailbox, locale=template.locale, zone=call.zone, agent=call.agent)
    try:
        rendered = render_template(template, context)
    except TemplateError as exc:
        raise BadInput(str(exc)) from exc
    return cards.insert_into_draft(rendered.html or rendered.text, html=bool(rendered.html))
