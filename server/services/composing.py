"""Mail about a ticket: who the team is, which language and template, what the template sees.

Rules, reminders, the add-on and every later face build their mail with these, so a template renders
the same everywhere and "the team" means one thing.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from server.base.db import memo
from server.base.models import (
    Agent,
    Customer,
    Direction,
    Locale,
    Mailbox,
    Message,
    Template,
    Ticket,
    mailbox_members,
)
from server.gmail.mime import ParsedMessage
from server.services.mailbox_settings import CSAT_SCALES, setting
from server.services.templating import RenderedMail, format_when, render_mail

_CYRILLIC = re.compile("[а-яё]", re.IGNORECASE)


def customer_locale(message: ParsedMessage | None, mailbox: Mailbox) -> str:
    """Russian when the customer wrote in Cyrillic, else the mailbox's language."""
    sample = f"{message.subject} {message.text[:2000]}" if message else ""
    if _CYRILLIC.search(sample):
        return Locale.RU.value
    return str(setting(mailbox, "locale"))


def find_template(session: Session, mailbox: Mailbox, name: str, locale: str) -> Template | None:
    """The mailbox's shared template ``name`` in ``locale``, else in the mailbox's language, else any."""
    candidates: dict[str, Template] = memo(
        session,
        ("templates", mailbox.id, name),
        lambda: {
            t.locale: t
            for t in session.scalars(
                select(Template).where(
                    Template.mailbox_id == mailbox.id, Template.name == name, Template.owner_id.is_(None)
                )
            )
        },
    )
    return (
        candidates.get(locale)
        or candidates.get(str(setting(mailbox, "locale")))
        or next(iter(candidates.values()), None)
    )


def available_agents(session: Session, mailbox_id: int) -> list[Agent]:
    """The mailbox's active members who are not away: who gets work and team reminders."""
    return memo(
        session,
        ("available_agents", mailbox_id),
        lambda: list(
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
        ),
    )


def team_addresses(session: Session, mailbox: Mailbox) -> set[str]:
    """The mailbox's own address, every agent's and the team addresses of its settings: never a
    customer, never auto-answered."""
    extra = setting(mailbox, "team_addresses")
    listed = {str(a).lower() for a in extra} if isinstance(extra, list) else set()
    agents: set[str] = memo(
        session, "agent_addresses", lambda: {email.lower() for email in session.scalars(select(Agent.email))}
    )
    return {mailbox.address.lower()} | agents | listed


def gmail_link(mailbox: Mailbox, thread_id: str | None) -> str:
    """A link that opens the thread in the shared mailbox's Gmail (for agents, never for customers)."""
    if not thread_id:
        return ""
    return f"https://mail.google.com/mail/u/?authuser={mailbox.address}#all/{thread_id}"


def ticket_link(ticket: Ticket, mailbox: Mailbox | None = None) -> str:
    """:func:`gmail_link` of the ticket's thread; a ticket split off another (or made from the help
    centre's form) has none of its own: the thread of its first message in Gmail."""
    thread = ticket.gmail_thread_id
    session = object_session(ticket)
    if not thread and session is not None and ticket.id is not None:
        first = select(Message.gmail_thread_id).where(
            Message.ticket_id == ticket.id, Message.gmail_thread_id != ""
        )
        thread = session.scalar(first.order_by(Message.sent_at, Message.id).limit(1))
    return gmail_link(mailbox or ticket.mailbox, thread)


#: The ticket's fields a template sees as they are, and those written as a date for the reader.
_TICKET_FIELDS = ("number", "subject", "status", "priority")
_TICKET_DATES = ("due_at", "first_response_due_at", "resolution_due_at", "created_at")


def mail_context(
    ticket: Ticket | None, mailbox: Mailbox, *, locale: str, zone: str, agent: Agent | None = None
) -> dict[str, Any]:
    """The variables a template sees (server.services.templating), dates written for this reader.

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
    fields["link"] = ticket_link(ticket, mailbox) if ticket else ""
    return {
        "customer": {
            "name": customer.name if customer else "",
            "email": customer.email if customer else "",
        },
        "ticket": fields,
        "agent": {"name": agent.name if agent else "", "email": agent.email if agent else ""},
        "mailbox": {"address": mailbox.address, "name": mailbox.display_name or mailbox.address},
        "csat": rating_choices(ticket, mailbox),
        # Filled in an acknowledgement that carries an FAQ answer (server.services.knowledge.faq), else empty.
        "faq": {"answer": "", "link": "", "score": None},
    }


def public_base() -> str:
    """Where links in mail point: the configured public URL, else the URL of the request being served."""
    from flask import current_app, has_app_context, has_request_context, request

    if not has_app_context():
        return ""
    return str(current_app.config.get("PUBLIC_URL") or (request.url_root if has_request_context() else ""))


def rating_choices(ticket: Ticket | None, mailbox: Mailbox) -> dict[str, Any]:
    """``csat.choices`` (value and URL, best first) and ``csat.<value>`` for one link: the rating
    links of the ticket (server.services.csat), or none without a ticket, with CSAT off, or with no public URL."""
    from flask import current_app, has_app_context

    from server.services.csat import links

    # Every choice of every scale is a variable, empty when not offered: a template never fails on it.
    empty: dict[str, Any] = {"choices": []} | {value: "" for scale in CSAT_SCALES.values() for value in scale}
    if ticket is None or not has_app_context():
        return empty
    choices = links(ticket, mailbox, secret=str(current_app.config["SECRET_KEY"]), base_url=public_base())
    return (
        empty
        | {"choices": [{"value": c.value, "url": c.url} for c in choices]}
        | {c.value: c.url for c in choices}
    )


def ticket_locale(session: Session, ticket: Ticket, mailbox: Mailbox) -> str:
    """The customer's language for mail about an existing ticket: Russian when they wrote in Cyrillic."""
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


def render_template(template: Template, context: dict[str, Any]) -> RenderedMail:
    """The template rendered with ``context`` (raises ``server.services.templating.TemplateError``)."""
    return render_mail(template.subject, template.body_text, template.body_html, context)
