"""Merging on the ticket card: "Merge into…" (the customer's other open tickets and tickets with a
similar subject from the last 30 days), undo within a day, a merged ticket's link to its survivor, and
"Split into a new ticket" for the customer's message open in Gmail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from server.base.models import Ticket, TicketStatus
from server.faces.addon import cards
from server.faces.addon.call import Call
from server.services import tickets
from server.services.tickets.merging import UNDO_WINDOW


def merge_section(call: Call, ticket: Ticket) -> list[dict[str, Any]]:
    if ticket.status == TicketStatus.MERGED.value:
        into = tickets.survivor(call.session, ticket)
        link = [
            cards.decorated(
                call.say("merged_into", number=into.number),
                top=call.say("merge"),
                on_click=cards.action(call.caller, "open_ticket", ticket=into.id),
            ),  # fmt: skip
        ]
        if ticket.merged_at is not None and call.now - ticket.merged_at <= UNDO_WINDOW:
            link.append(cards.buttons(cards.button(call.say("undo_merge", number=ticket.number),
                                                   cards.action(call.caller, "unmerge", ticket=ticket.id))))  # fmt: skip
        return [cards.section(link, call.say("merge"))]
    widgets: list[dict[str, Any]] = []
    if ticket.merged_in:  # only then a query: what was merged here and can still be undone
        recent = call.session.scalars(
            select(Ticket).where(Ticket.merged_into_id == ticket.id, Ticket.merged_at >= call.now - UNDO_WINDOW)
            .order_by(Ticket.merged_at.desc()).limit(5)
        )  # fmt: skip
        for other in recent:
            widgets.append(cards.decorated(call.say("merged_here", number=other.number),
                                           top=cards.text(other.subject, 80)))  # fmt: skip
            widgets.append(cards.buttons(cards.button(call.say("undo_merge", number=other.number),
                                                      cards.action(call.caller, "unmerge", ticket=other.id))))  # fmt: skip
    widgets.append(cards.buttons(cards.button(call.say("merge_into"),
                                              cards.action(call.caller, "merge_choices", ticket=ticket.id))))  # fmt: skip
    if call.splittable is not None:  # the customer's message open in Gmail asks something new
        split = cards.action(call.caller, "split", ticket=ticket.id, message=call.splittable)
        widgets.append(cards.buttons(cards.button(call.say("split_off"), split)))
    return [cards.section(widgets, call.say("merge"), collapsible=len(widgets) > 2, keep=1)]


def choices_card(call: Call, ticket: Ticket) -> dict[str, Any]:
    """The tickets this one could be merged into, to choose from (a card of its own: looking for
    them costs queries the ticket card does not pay)."""
    choices = tickets.candidates(call.session, ticket, now=call.now)
    if not choices:
        widgets = [cards.paragraph(call.say("no_merge_choices"))]
    else:
        options = [(str(t.id), f"#{t.number} {cards.text(t.subject, 60)}") for t in choices]
        widgets = [
            cards.paragraph(call.say("merge_explained", number=ticket.number)),
            cards.dropdown("merge_into", call.say("merge_into"), options),
            cards.buttons(cards.button(call.say("merge_button"), cards.action(call.caller, "merge", ticket=ticket.id),
                                       filled=True)),
        ]  # fmt: skip
    return cards.card(f"#{ticket.number} {cards.text(ticket.subject, 80)}", [cards.section(widgets, call.say("merge"))],
                      name=f"merge-{ticket.id}")  # fmt: skip


__all__ = ["choices_card", "merge_section"]
