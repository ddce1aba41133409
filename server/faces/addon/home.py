"""The homepage: the agent's queue — unassigned, mine, overdue — and "Take the next one".

Each list is most urgent first (priority, then the nearest deadline, then the oldest), shows its first
few on the homepage and pages through the rest on a card of its own. Snoozed tickets stay out of the
lists until they wake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import ColumnElement, case, func, or_, select

from rules.model import ACTIVE_STATUSES
from server.base.models import Priority, Ticket
from server.faces.addon import cards
from server.faces.addon.call import Call, parse_id
from server.faces.addon.together import mentions_section

#: Tickets of each list on the homepage, and on each page of a list's own card.
HOME_SHOWN = 5
PAGE_SIZE = 20
MAX_PAGE = 500


def _visible(call: Call) -> list[ColumnElement[bool]]:
    return [
        Ticket.mailbox_id.in_(call.mailbox_ids or [-1]),
        Ticket.status.in_(ACTIVE_STATUSES),
        or_(Ticket.snoozed_until.is_(None), Ticket.snoozed_until <= call.now),
    ]


#: Which tickets each list holds, beyond "active, in my mailboxes, not snoozed".
QUEUES: dict[str, Callable[[Call], ColumnElement[bool]]] = {
    "unassigned": lambda call: Ticket.assignee_id.is_(None),
    "mine": lambda call: Ticket.assignee_id == call.agent.id,
    "overdue": lambda call: Ticket.due_at <= call.now,
}
_URGENCY = case(
    {p.value: rank for rank, p in enumerate(reversed(list(Priority)))}, value=Ticket.priority, else_=9
)


def queue_page(call: Call, queue: str, *, offset: int, limit: int) -> tuple[list[Ticket], int]:
    """One page of a list, most urgent first, and how many the list holds in all."""
    where = [*_visible(call), QUEUES[queue](call)]
    total = call.session.scalar(select(func.count()).select_from(Ticket).where(*where)) or 0
    rows = call.session.scalars(
        select(Ticket)
        .where(*where)
        .order_by(_URGENCY, Ticket.due_at.is_(None), Ticket.due_at, Ticket.created_at, Ticket.id)
        .offset(offset)
        .limit(limit)
    ).all()
    return list(rows), total


def _ticket_line(call: Call, ticket: Ticket) -> dict[str, Any]:
    due = ticket.due_at
    when = call.when(due) if due is not None else call.say("no_deadline")
    if due is not None and due <= call.now:
        when = f'<font color="#d93025">{call.say("overdue")}</font> · {when}'
    priority = ticket.priority
    label = call.say(f"priority_{priority}")
    if priority in (Priority.HIGH.value, Priority.URGENT.value):
        label = f"<b>{label}</b>"
    return cards.decorated(
        f"#{ticket.number} {cards.text(ticket.subject, 80)}",
        bottom=f"{label} · {when}",
        on_click=cards.action(call.caller, "open_ticket", ticket=ticket.id),
    )


def home_card(call: Call) -> dict[str, Any]:
    """The three lists, each with its count and its first few tickets, and "Take the next one"."""
    c = call.caller
    sections = [
        cards.section(
            [cards.buttons(cards.button(call.say("take_next"), cards.action(c, "take_next"), filled=True))]
        ),
        *mentions_section(call),
    ]
    for queue in QUEUES:
        shown, total = queue_page(call, queue, offset=0, limit=HOME_SHOWN)
        widgets = [_ticket_line(call, t) for t in shown] or [cards.paragraph(call.say("nothing"))]
        if total > len(shown):
            more = cards.action(c, "queue", queue=queue, page=1)
            widgets.append(cards.buttons(cards.button(call.say("show_all", n=total), more)))
        sections.append(cards.section(widgets, call.say(f"queue_{queue}", n=total)))
    find = [
        cards.text_input("number", call.say("number")),
        cards.buttons(cards.button(call.say("open"), cards.action(c, "find"))),
    ]
    sections.append(cards.section(find, call.say("find")))
    return cards.card(call.say("home_title"), sections, subtitle=cards.text(call.agent.email), name="home")


def queue_card(call: Call, queue: str, page: int) -> dict[str, Any]:
    """One list, a page at a time (page 1 is the first), with Previous / Next."""
    shown, total = queue_page(call, queue, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    widgets = [_ticket_line(call, t) for t in shown] or [cards.paragraph(call.say("nothing"))]
    paging = []
    if page > 1:
        paging.append(
            cards.button(call.say("previous"), cards.action(call.caller, "queue", queue=queue, page=page - 1))
        )
    if page * PAGE_SIZE < total:
        paging.append(
            cards.button(call.say("next"), cards.action(call.caller, "queue", queue=queue, page=page + 1))
        )
    if paging:
        widgets.append(cards.buttons(*paging))
    pages = max(1, -(-total // PAGE_SIZE))
    return cards.card(
        call.say(f"queue_{queue}", n=total),
        [cards.section(widgets, call.say("page_of", page=page, pages=pages))],
        name=f"queue-{queue}",
    )


def queue_from(call: Call) -> tuple[str, int]:
    """The list and page a button names; an unknown list is the unassigned one, pages are clamped."""
    queue = call.parameter("queue") or ""
    page = parse_id(call.parameter("page")) or 1
    return (queue if queue in QUEUES else "unassigned"), max(1, min(page, MAX_PAGE))
