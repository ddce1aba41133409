"""The ticket card: everything about the open email's ticket, and what an agent can do with it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from rules.model import ACTIVE_STATUSES
from server.base.db import upsert
from server.base.models import (
    Agent,
    CsatRating,
    Customer,
    Direction,
    Event,
    Mailbox,
    Message,
    Priority,
    Ticket,
    TicketView,
    mailbox_members,
)
from server.faces.addon import cards, help_articles, together
from server.faces.addon.call import Call, NoAccess, as_object, offset_minutes, ticket_query
from server.faces.addon.compose import reply_templates
from server.faces.addon.suggestions import similar_section
from server.services import tickets
from server.services.accounts import manages_mailbox
from server.services.knowledge import readings
from server.services.mailbox_settings import reminder_settings
from server.services.sla import CalendarError, subtract_business_minutes

#: Other agents' views shown on the ticket card, if this recent.
VIEWS_SHOWN_FOR = timedelta(hours=2)
#: How many of the customer's other tickets, and of the ticket's last events, the card lists.
OTHER_TICKETS_SHOWN = 5
EVENTS_SHOWN = 5
#: What of an event's details its line on the card shows (a reason, a template, a tag …).
_EVENT_DETAILS = ("reason", "template", "tag", "label", "kind")


def message_card(call: Call) -> dict[str, Any]:
    """The contextual trigger: the ticket of the open email, or what it is instead.

    The shared mailbox's gmail ids find it first; an agent reading a group copy in their own mailbox
    has other ids, so the RFC 822 Message-ID the shim read finds it there.
    """
    rfc822 = as_object(call.event.get("postdesk")).get("rfc822MessageId")
    thread = as_object(call.event.get("gmail")).get("threadId")
    mine = Message.mailbox_id.in_(call.mailbox_ids or [-1])
    columns = select(Message.mailbox_id, Message.ticket_id, Message.gmail_thread_id, Message.id, Message.direction,
                     Message.sent_at)  # fmt: skip
    found = None
    if isinstance(rfc822, str) and rfc822.strip():
        found = call.session.execute(
            columns.where(Message.rfc822_message_id == rfc822.strip()[:998]).order_by(mine.desc()).limit(1)
        ).first()
    if found is None and isinstance(thread, str) and thread:
        found = call.session.execute(
            columns.where(Message.gmail_thread_id == thread[:200], mine).limit(1)
        ).first()
    if found is None:
        text = [cards.paragraph(call.say("not_postdesk_text"))]
        return cards.push(cards.card(call.say("not_postdesk_title"), [cards.section(text)]))
    mailbox_id, ticket_id, thread_id, message_id, direction, sent_at = found
    if mailbox_id not in call.mailbox_ids:
        raise NoAccess
    if ticket_id is None:
        return cards.push(not_a_ticket_card(call, mailbox_id, thread_id))
    ticket = call.session.scalar(ticket_query().where(Ticket.id == ticket_id))
    assert ticket is not None  # the message row names it and tickets are never deleted
    if direction == "inbound" and sent_at > ticket.created_at:  # not the ticket's first: it can be split off
        call.splittable = message_id
    card = ticket_card(call, ticket)
    call.session.commit()  # the view just recorded
    return cards.push(card)


def ago(call: Call, moment: datetime) -> str:
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


def record_view(call: Call, ticket: Ticket) -> list[tuple[str, datetime]]:
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
        call.session, TicketView, {"ticket_id": ticket.id, "agent_id": call.agent.id}, {"viewed_at": call.now}
    )
    return others


def ticket_card(call: Call, ticket: Ticket) -> dict[str, Any]:
    """Everything about the ticket, and what an agent can do with it, in one card."""
    customer = customer_widgets(call, ticket)
    history = event_widgets(call, ticket)
    return cards.card(
        f"#{ticket.number} {cards.text(ticket.subject, 120)}",
        [
            cards.section(overview_widgets(call, ticket)),
            cards.section(customer, call.say("customer"), collapsible=len(customer) > 2, keep=2),
            cards.section(action_widgets(call, ticket), call.say("actions")),
            cards.section(tag_widgets(call, ticket), call.say("tags"), collapsible=True, keep=2),
            cards.section(reply_widgets(call, ticket), call.say("send_reply")),
            *similar_section(call, ticket),
            *together.sections(call, ticket),
            cards.section(history, call.say("last_events"), collapsible=True, keep=2),
        ],
        subtitle=cards.text(ticket.mailbox.display_name or ticket.mailbox.address),
        name=f"ticket-{ticket.id}",
    )


def overview_widgets(call: Call, ticket: Ticket) -> list[dict[str, Any]]:
    badge, colour = due_badge(call, ticket)
    assignee = ticket.assignee
    widgets = [
        cards.decorated(f"<b>{call.say(f'status_{ticket.status}')}</b>", top=call.say("status")),
        cards.decorated(call.say(f"priority_{ticket.priority}"), top=call.say("priority")),
        cards.decorated(
            cards.text(assignee.name or assignee.email) if assignee else call.say("nobody"),
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
        widgets.append(cards.decorated(call.say("snoozed_until", when=call.when(ticket.snoozed_until))))
    rating = call.session.get(CsatRating, ticket.id)
    if rating is not None:
        label = (
            call.say(f"csat_{rating.value}")
            if rating.value in ("good", "okay", "bad")
            else f"{rating.value}/5"
        )
        colour = "#137333" if rating.score >= 4 else "#b3261e" if rating.score <= 2 else "#5f6368"
        widgets.append(
            cards.decorated(
                f'<font color="{colour}"><b>{label}</b></font>'
                + (f" · {cards.text(rating.comment, 300)}" if rating.comment else ""),
                top=call.say("csat"),
            )
        )
    widgets += signal_widgets(call, ticket)
    others = record_view(call, ticket)
    if others:
        name, moment = others[0]
        widgets.append(
            cards.paragraph(f"<i>{call.say('looked_at', agent=cards.text(name), ago=ago(call, moment))}</i>")
        )
    return widgets


def signal_widgets(call: Call, ticket: Ticket) -> list[dict[str, Any]]:
    """How urgent and in what tone the customer's latest message reads, and the words that decided it."""
    row = readings.latest(call.session, ticket.id)
    found = readings.stored(row) if row is not None else None
    if found is None:
        return []
    colour = "#b3261e" if found.urgency == "high" or found.tone == "negative" else "#5f6368"
    why = ", ".join(dict.fromkeys(r.words for r in found.reasons if r.points))
    return [
        cards.decorated(
            f'<font color="{colour}"><b>{call.say(f"urgency_{found.urgency}")}</b></font>'
            f" · {call.say(f'tone_{found.tone}')}",
            top=call.say("signals"),
            bottom=cards.text(call.say("because", words=why), 200) if why else None,
        )
    ]


def customer_widgets(call: Call, ticket: Ticket) -> list[dict[str, Any]]:
    """Who wrote, and their other tickets (newest first), each a click away."""
    if ticket.customer is None:
        return []
    customer: Customer = ticket.customer
    widgets = [
        cards.decorated(
            cards.text(customer.name or customer.email),
            top=call.say("customer"),
            bottom=cards.text(customer.email) if customer.name else None,
        )
    ]
    earlier = call.session.execute(
        select(Ticket.id, Ticket.number, Ticket.subject, Ticket.status)
        .where(Ticket.customer_id == customer.id, Ticket.id != ticket.id)
        .order_by(Ticket.created_at.desc())
        .limit(OTHER_TICKETS_SHOWN)
    ).all()
    for other_id, number, subject, other_status in earlier:
        widgets.append(
            cards.decorated(
                f"#{number} {cards.text(subject, 80)}",
                bottom=call.say(f"status_{other_status}"),
                on_click=cards.action(call.caller, "open_ticket", ticket=other_id),
            )
        )
    return widgets


def _status_buttons(call: Call, ticket: Ticket) -> list[dict[str, Any]]:
    c = call.caller
    buttons = []
    if ticket.assignee_id != call.agent.id:
        buttons.append(
            cards.button(call.say("assign_me"), cards.action(c, "assign_me", ticket=ticket.id), filled=True)
        )
    if ticket.status not in ACTIVE_STATUSES:
        buttons.append(
            cards.button(call.say("reopen"), cards.action(c, "set_status", ticket=ticket.id, status="open"))
        )
        return buttons
    buttons.append(
        cards.button(call.say("solve"), cards.action(c, "set_status", ticket=ticket.id, status="solved"))
    )
    for value in ("pending", "on_hold"):
        if ticket.status != value:
            buttons.append(
                cards.button(call.say(value), cards.action(c, "set_status", ticket=ticket.id, status=value))
            )
    return buttons


def action_widgets(call: Call, ticket: Ticket) -> list[dict[str, Any]]:
    c = call.caller
    team = call.session.execute(
        select(Agent.id, Agent.name, Agent.email)
        .join(mailbox_members, mailbox_members.c.agent_id == Agent.id)
        .where(mailbox_members.c.mailbox_id == ticket.mailbox_id, Agent.active.is_(True))
        .order_by(Agent.name, Agent.email)
    ).all()
    snooze_buttons = [cards.button(call.say("snooze"), cards.action(c, "snooze", ticket=ticket.id))]
    if ticket.snoozed_until:
        snooze_buttons.append(
            cards.button(call.say("unsnooze"), cards.action(c, "unsnooze", ticket=ticket.id))
        )
    return [
        cards.buttons(*_status_buttons(call, ticket)),
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
        cards.date_time_picker("snooze_until", call.say("snooze_until"), offset_minutes=offset_minutes(call)),
        cards.buttons(*snooze_buttons),
    ]


def tag_widgets(call: Call, ticket: Ticket) -> list[dict[str, Any]]:
    c = call.caller
    return [
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


def reply_widgets(call: Call, ticket: Ticket) -> list[dict[str, Any]]:
    names = reply_templates(call.session, ticket.mailbox_id)
    widgets = (
        [
            cards.dropdown("template", call.say("template"), [(n, n) for n in names]),
            cards.buttons(
                cards.button(call.say("send_reply"), cards.action(call.caller, "reply", ticket=ticket.id))
            ),
        ]
        if names
        else [cards.paragraph(call.say("no_templates"))]
    )
    if manages_mailbox(call.agent, ticket.mailbox_id) and last_agent_reply(call.session, ticket) is not None:
        # Knowledge from solved tickets starts here: a good answer becomes the team's template.
        widgets += [
            cards.text_input("template_name", call.say("template_name")),
            cards.buttons(
                cards.button(
                    call.say("save_reply_template"),
                    cards.action(call.caller, "save_reply_template", ticket=ticket.id),
                )
            ),
        ] + help_articles.article_widgets(call, ticket)
    return widgets


def last_agent_reply(session: Session, ticket: Ticket) -> Message | None:
    """The agents' latest answer on the ticket (automatic mail aside)."""
    return session.scalar(
        select(Message)
        .where(
            Message.ticket_id == ticket.id,
            Message.direction == Direction.OUTBOUND.value,
            Message.is_auto.is_(False),
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    )


def event_name(call: Call, kind: str) -> str:
    """An event kind in the agent's language (an unknown kind is shown as it is stored)."""
    try:
        return call.say(f"event_{kind}")
    except KeyError:
        return kind.replace("_", " ")


def event_widgets(call: Call, ticket: Ticket) -> list[dict[str, Any]]:
    """The ticket's last events: what, why (a suppressed answer's reason, automatic mail's kind), who, when."""
    events = call.session.execute(
        select(Event.kind, Event.after, Event.created_at, Agent.name, Agent.email)
        .outerjoin(Agent, Agent.id == Event.actor_agent_id)
        .where(Event.ticket_id == ticket.id)
        .order_by(Event.id.desc())
        .limit(EVENTS_SHOWN)
    ).all()
    widgets = []
    for kind, after, created, name, email in events:
        details = as_object(after)
        detail = next((str(details[k]) for k in _EVENT_DETAILS if isinstance(details.get(k), str)), "")
        who = f"{cards.text(name or email)} · " if (name or email) else ""
        label = together.mention_mark(call, details) + cards.text(event_name(call, kind))
        label += f": {cards.text(detail, 120)}" if detail else ""
        widgets.append(cards.decorated(label, bottom=f"{who}{ago(call, created)}"))
    return widgets


def not_a_ticket_card(call: Call, mailbox_id: int, thread_id: str) -> dict[str, Any]:
    mailbox = call.session.get(Mailbox, mailbox_id)
    assert mailbox is not None  # a message row names it and mailboxes are never deleted
    name = cards.text(mailbox.display_name or mailbox.address)
    create = cards.action(call.caller, "create_ticket", mailbox=mailbox_id, thread=thread_id)
    return cards.card(
        call.say("not_ticket_title"),
        [
            cards.section(
                [
                    cards.paragraph(call.say("not_ticket_text", mailbox=name)),
                    cards.buttons(cards.button(call.say("create_ticket", mailbox=name), create, filled=True)),
                ]
            )
        ],
    )
