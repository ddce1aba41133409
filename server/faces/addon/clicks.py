"""The add-on's button clicks: one small function per button, in one table (:data:`CLICKS`).

A click that changes a ticket parses the card's input and calls the same action handlers as the rules
(:mod:`server.services.action_kinds`), with the agent as the actor; a refusal becomes a notification with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import current_app, request
from sqlalchemy import select

from rules import ActionKind
from server.base.models import Customer, Mailbox, Message, Ticket
from server.faces.addon import cards, help_articles
from server.faces.addon.call import BadInput, Call, NoAccess, parse_id, ticket_by_id, ticket_query
from server.faces.addon.compose import chosen_template, insert_template
from server.faces.addon.home import home_card, queue_card, queue_from
from server.faces.addon.merging import choices_card
from server.faces.addon.suggestions import insert_suggestion
from server.faces.addon.ticket import last_agent_reply, ticket_card
from server.gmail.mime import parse_addresses, split_reply
from server.services import action_kinds, following, mentions, regrouping, template_sets, tickets
from server.services.accounts import manages_mailbox
from server.services.composing import team_addresses, ticket_locale
from server.services.templating import TemplateError
from server.services.tickets.actions import MAX_SNOOZE

Click = Callable[[Call], dict[str, Any]]


def run_click(call: Call) -> dict[str, Any]:
    """The button's function from the table; bad input is a notification, never a 500."""
    name = call.parameter("do") or ""
    handler = CLICKS.get(name)
    if handler is None:
        return cards.notify(call.say("bad_input", problem=f"unknown action {name[:40]!r}"))
    try:
        return handler(call)
    except (BadInput, action_kinds.ActionRefused) as exc:
        call.session.rollback()
        return cards.notify(call.say("bad_input", problem=str(exc)))


def changed(call: Call, ticket: Ticket, notification: str | None = None) -> dict[str, Any]:
    """Commit the change and answer with the ticket's card as it is now."""
    call.session.commit()
    fresh = call.session.scalar(
        ticket_query().where(Ticket.id == ticket.id).execution_options(populate_existing=True)
    )
    assert fresh is not None  # just committed
    card = ticket_card(call, fresh)
    call.session.commit()  # the view it recorded
    return cards.update(card, notification or call.say("done"))


def _act(call: Call, ticket: Ticket, kind: ActionKind, value: Any) -> dict[str, Any]:
    """One of the shared action handlers on the ticket, as this agent."""
    ctx = action_kinds.ActionContext(call.session, ticket.mailbox, ticket, call.actor, call.now)
    action_kinds.perform(ctx, kind, value)
    return changed(call, ticket)


def _ticket(call: Call) -> Ticket:
    return ticket_by_id(call, call.parameter("ticket"))


def _assign_me(call: Call) -> dict[str, Any]:
    return _act(call, _ticket(call), ActionKind.ASSIGN, call.agent.id)


def _assign(call: Call) -> dict[str, Any]:
    ticket = _ticket(call)
    agent_id = parse_id(call.form("assignee"))
    if agent_id is None:
        raise BadInput("choose an agent")
    return _act(call, ticket, ActionKind.ASSIGN, agent_id)


def _set_priority(call: Call) -> dict[str, Any]:
    return _act(call, _ticket(call), ActionKind.SET_PRIORITY, call.form("priority"))


def _set_status(call: Call) -> dict[str, Any]:
    return _act(call, _ticket(call), ActionKind.SET_STATUS, call.parameter("status"))


def _add_tag(call: Call) -> dict[str, Any]:
    return _act(call, _ticket(call), ActionKind.ADD_TAG, call.form("tag"))


def _remove_tag(call: Call) -> dict[str, Any]:
    return _act(call, _ticket(call), ActionKind.REMOVE_TAG, call.parameter("tag"))


def _add_note(call: Call) -> dict[str, Any]:
    """A note; an unknown, ambiguous or unseeing @mention is shown back and nothing is saved."""
    ticket = _ticket(call)
    try:
        mentions.add_note(call.session, ticket, call.form("note") or "", writer=call.agent, at=call.now)
    except mentions.MentionProblem as exc:
        raise BadInput("; ".join(exc.problems)) from exc
    return changed(call, ticket)


def _follow(call: Call) -> dict[str, Any]:
    ticket = _ticket(call)
    following.follow(call.session, ticket, call.agent, at=call.now)
    return changed(call, ticket, call.say("now_following", number=ticket.number))


def _unfollow(call: Call) -> dict[str, Any]:
    ticket = _ticket(call)
    following.unfollow(call.session, ticket, call.agent)
    return changed(call, ticket, call.say("not_following", number=ticket.number))


def _snooze(call: Call) -> dict[str, Any]:
    ticket = _ticket(call)
    moment = call.form_moment("snooze_until")
    if moment is None:
        raise BadInput("choose a date and time")
    try:
        until = datetime.fromtimestamp(moment / 1000, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise BadInput("that date cannot be used") from exc
    if not call.now < until <= call.now + MAX_SNOOZE:
        raise BadInput("a snooze ends in the future, within a year")
    tickets.snooze(call.session, ticket, until, at=call.now, actor=call.actor)
    return changed(call, ticket)


def _unsnooze(call: Call) -> dict[str, Any]:
    ticket = _ticket(call)
    tickets.snooze(call.session, ticket, None, at=call.now, actor=call.actor)
    return changed(call, ticket)


def _reply(call: Call) -> dict[str, Any]:
    """Answer the customer with a template, in the ticket's thread, through the Outbox."""
    ticket = _ticket(call)
    template = chosen_template(call, ticket.mailbox, ticket_locale(call.session, ticket, ticket.mailbox))
    try:
        queued = action_kinds.reply_with_template(
            call.session, ticket, template, agent=call.agent, zone=call.zone, now=call.now
        )
    except TemplateError as exc:
        raise BadInput(str(exc)) from exc
    return changed(call, ticket, call.say("sent" if queued else "already_sent"))


def _save_reply_template(call: Call) -> dict[str, Any]:
    """The agents' last answer on the ticket, without its quoted history, becomes a shared template of
    the mailbox in the ticket's language (for those who may change the mailbox's templates)."""
    ticket = _ticket(call)
    if not manages_mailbox(call.agent, ticket.mailbox_id):
        raise BadInput(call.say("templates_for_admins"))
    name = (call.form("template_name") or "").strip()
    if not name:
        raise BadInput(call.say("template_name_needed"))
    reply = last_agent_reply(call.session, ticket)
    if reply is None:
        raise BadInput(call.say("no_agent_reply"))
    text = split_reply(reply.text)[0].strip()
    if "{{" in text or "{%" in text or "{#" in text:  # the answer's own braces are text, not template code
        text = "{% raw %}" + text.replace("{% endraw %}", "") + "{% endraw %}"
    locale = ticket_locale(call.session, ticket, ticket.mailbox)
    draft = template_sets.Draft("{{ ticket.subject }}", text + "\n")
    try:
        template_sets.save(call.session, ticket.mailbox, name[:200], locale, draft, actor=call.actor)
    except template_sets.TemplateProblem as exc:
        raise BadInput("; ".join(exc.problems.values())) from exc
    return changed(call, ticket, call.say("template_saved", name=name[:80]))


def _article_from_ticket(call: Call) -> dict[str, Any]:
    ticket = _ticket(call)
    return changed(call, ticket, help_articles.make_article(call, ticket))


def _create_ticket(call: Call) -> dict[str, Any]:
    """An agent's own thread becomes a ticket; its customer is the first outside recipient."""
    mailbox_id = call.mailbox_id(call.parameter("mailbox"))
    thread = (call.parameter("thread") or "")[:200]
    if not thread:
        raise BadInput("no thread")
    messages = call.session.scalars(
        select(Message)
        .where(Message.mailbox_id == mailbox_id, Message.gmail_thread_id == thread)
        .order_by(Message.sent_at)
    ).all()
    if not messages:
        raise BadInput("the thread is not in Postdesk yet")
    filed = next((m.ticket_id for m in messages if m.ticket_id), None)
    if filed is not None:
        return changed(call, ticket_by_id(call, str(filed)))
    mailbox = call.session.get(Mailbox, mailbox_id)
    assert mailbox is not None  # the agent is a member of it
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
    return changed(call, ticket)


def push_ticket(call: Call, ticket: Ticket) -> dict[str, Any]:
    card = ticket_card(call, ticket)
    call.session.commit()
    return cards.push_navigation(card)


def _open_ticket(call: Call) -> dict[str, Any]:
    return push_ticket(call, _ticket(call))


def _find(call: Call) -> dict[str, Any]:
    raw = call.form("number") or ""
    number = parse_id(raw.strip().lstrip("#"))
    if number is None or number > 999_999_999:
        raise BadInput("a ticket number, like 42")
    found = call.session.scalar(
        select(Ticket.id)
        .where(Ticket.number == number, Ticket.mailbox_id.in_(call.mailbox_ids or [-1]))
        .limit(1)
    )
    if found is None:
        return cards.notify(call.say("not_found", number=number))
    return push_ticket(call, ticket_by_id(call, str(found)))


def _take_next(call: Call) -> dict[str, Any]:
    """The oldest unassigned ticket of the agent's mailboxes becomes theirs, and its card opens."""
    ticket = tickets.take_next(call.session, call.mailbox_ids, call.agent.id, at=call.now, actor=call.actor)
    if ticket is None:
        call.session.rollback()
        return cards.notify(call.say("nothing_to_take"))
    call.session.commit()
    fresh = call.session.scalar(ticket_query().where(Ticket.id == ticket.id))
    assert fresh is not None  # just committed
    return push_ticket(call, fresh)


def _home(call: Call) -> dict[str, Any]:
    return cards.update(home_card(call))


def _queue(call: Call) -> dict[str, Any]:
    queue, page = queue_from(call)
    return cards.push_navigation(queue_card(call, queue, page))


def _settings(call: Call) -> dict[str, Any]:
    url = current_app.config["ADDON_SETTINGS_URL"] or request.url_root
    return {"renderActions": {"action": {"link": {"url": url}}}}


def _merge(call: Call) -> dict[str, Any]:
    """This ticket merged into the one chosen; the survivor's card opens."""
    source = ticket_by_id(call, call.parameter("ticket"))
    target_id = parse_id(call.form("merge_into"))
    if target_id is None:
        raise BadInput(call.say("choose_merge"))
    target = ticket_by_id(call, str(target_id))
    try:
        survivor = regrouping.merge_tickets(call.session, source, target, at=call.now, actor=call.actor)
    except tickets.MergeError as exc:
        raise BadInput(str(exc)) from exc
    return changed(call, survivor, call.say("merged_done", number=source.number, into=survivor.number))


def _unmerge(call: Call) -> dict[str, Any]:
    """The merge of this ticket undone; its own card opens."""
    source = ticket_by_id(call, call.parameter("ticket"))
    try:
        tickets.unmerge(call.session, source, at=call.now, actor=call.actor)
    except tickets.MergeError as exc:
        raise BadInput(str(exc)) from exc
    return changed(call, source, call.say("unmerged_done", number=source.number))


def _split(call: Call) -> dict[str, Any]:
    """The chosen customer's message and the later ones of its thread off into a new ticket, whose
    card opens."""
    ticket = ticket_by_id(call, call.parameter("ticket"))
    message_id = parse_id(call.parameter("message"))
    message = call.session.get(Message, message_id) if message_id is not None else None
    if message is None or message.ticket_id != ticket.id:
        raise BadInput(call.say("split_gone", number=ticket.number))
    try:
        new = regrouping.split_ticket(call.session, ticket, message, at=call.now, actor=call.actor)
    except tickets.SplitError as exc:
        raise BadInput(str(exc)) from exc
    return changed(call, new, call.say("split_done", number=ticket.number, new=new.number))


def _merge_choices(call: Call) -> dict[str, Any]:
    card = choices_card(call, _ticket(call))
    call.session.commit()
    return cards.push_navigation(card)


#: Every button of every card, by the ``do`` parameter it sends.
CLICKS: dict[str, Click] = {
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
    "save_reply_template": _save_reply_template,
    "open_ticket": _open_ticket,
    "find": _find,
    "take_next": _take_next,
    "queue": _queue,
    "home": _home,
    "settings": _settings,
    "insert_template": insert_template,
    "insert_suggestion": insert_suggestion,
    "follow": _follow,
    "unfollow": _unfollow,
    "merge_choices": _merge_choices,
    "merge": _merge,
    "unmerge": _unmerge,
    "split": _split,
    "article_from_ticket": _article_from_ticket,
}

__all__ = ["CLICKS", "NoAccess", "run_click"]
