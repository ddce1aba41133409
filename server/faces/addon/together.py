"""Working together on the ticket card: who follows it (Follow / Stop following), the merge section
(:mod:`server.faces.addon.merging`), notes that mention the viewer marked, and the homepage's
Mentions list (notes naming the agent on tickets they have not opened since)."""

from __future__ import annotations

from typing import Any

from server.base.models import Ticket, TicketStatus
from server.faces.addon import cards, merging
from server.faces.addon.call import Call
from server.services import following, mentions


def sections(call: Call, ticket: Ticket) -> list[dict[str, Any]]:
    """Following (one query: the followers) and merging."""
    if ticket.status == TicketStatus.MERGED.value:
        return merging.merge_section(call, ticket)
    people = following.followers(call.session, ticket)
    mine = any(agent.id == call.agent.id for agent in people)
    names = ", ".join(cards.text(agent.name or agent.email, 60) for agent in people)
    widgets = [
        cards.decorated(names or call.say("no_followers"), top=call.say("followers")),
        cards.buttons(cards.button(call.say("unfollow" if mine else "follow"),
                                   cards.action(call.caller, "unfollow" if mine else "follow", ticket=ticket.id))),
    ]  # fmt: skip
    return [
        cards.section(widgets, call.say("following"), collapsible=True, keep=2),
        *merging.merge_section(call, ticket),
    ]


def mention_mark(call: Call, details: dict[str, Any]) -> str:
    """ "@ " in bold before a note's event that names the viewer (the card highlights it)."""
    named = details.get("mentions")
    return (
        '<font color="#b3261e"><b>@ </b></font>' if isinstance(named, list) and call.agent.id in named else ""
    )


def mentions_section(call: Call) -> list[dict[str, Any]]:
    """The homepage's Mentions: notes naming the agent on tickets they have not opened since."""
    found = mentions.unseen(call.session, call.agent, call.mailbox_ids)
    if not found:
        return []
    widgets = [
        cards.decorated(cards.text(note.body, 200), top=f"#{ticket.number} {cards.text(ticket.subject, 60)}",
                        on_click=cards.action(call.caller, "open_ticket", ticket=ticket.id))
        for note, ticket in found
    ]  # fmt: skip
    return [cards.section(widgets, call.say("mentions", n=len(found)))]
