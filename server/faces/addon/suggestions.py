"""Similar solved tickets on the add-on's cards (server.services.knowledge.similar), and putting one's answer
into the draft being written."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from server.base.models import KnowledgeEntry, Ticket
from server.faces.addon import cards
from server.faces.addon.call import BadInput, Call, parse_id, ticket_by_id
from server.services.knowledge import similar
from server.services.tickets.actions import CLOSED_STATUSES


def similar_section(call: Call, ticket: Ticket, *, insert: bool = False) -> list[dict[str, Any]]:
    """Up to three solved tickets that asked the same, with the answer that solved each (for a ticket
    still being worked on). In a draft (``insert``) each answer has "Insert this reply"; beside an
    email, the card says how to get there: an answer written for another customer is edited before
    it is sent, never sent as it is."""
    if ticket.status in CLOSED_STATUSES:
        return []
    found = similar.suggest(call.session, ticket)
    if not found:
        return []
    widgets: list[dict[str, Any]] = []
    for suggestion in found:
        widgets.append(
            cards.decorated(
                f"#{suggestion.number} {cards.text(suggestion.subject, 80)}",
                top=call.say("match", percent=round(suggestion.match * 100)),
                on_click=None
                if insert
                else cards.action(call.caller, "open_ticket", ticket=suggestion.ticket_id),
            )
        )
        widgets.append(cards.paragraph(cards.text(suggestion.answer, 400).replace("\n", "<br>")))
        if insert:
            widgets.append(
                cards.buttons(
                    cards.button(
                        call.say("insert_reply"),
                        cards.action(
                            call.caller, "insert_suggestion", ticket=ticket.id, source=suggestion.ticket_id
                        ),
                    )
                )
            )
    if not insert:
        widgets.append(cards.paragraph(f"<i>{call.say('similar_how')}</i>"))
    return [cards.section(widgets, call.say("similar"), collapsible=not insert, keep=2)]


def insert_suggestion(call: Call) -> dict[str, Any]:
    """The answer of a suggested solved ticket (of the same mailbox), inserted at the draft's cursor."""
    ticket = ticket_by_id(call, call.parameter("ticket"))
    source = parse_id(call.parameter("source"))
    answer = (
        call.session.scalar(
            select(KnowledgeEntry.answer).where(
                KnowledgeEntry.ticket_id == source, KnowledgeEntry.mailbox_id == ticket.mailbox_id
            )
        )
        if source is not None
        else None
    )
    if answer is None:
        raise BadInput(call.say("suggestion_gone"))
    return cards.insert_into_draft(answer)
