"""A solved ticket's answer made into a help-centre article from the card (a draft, finished and
published on the settings page): for those who write the mailbox's articles."""

from __future__ import annotations

from typing import Any

from server.base.models import Role, Ticket
from server.faces.addon import cards
from server.faces.addon.call import BadInput, Call
from server.services import articles
from server.services.accounts import manages_mailbox
from server.services.tickets.actions import CLOSED_STATUSES


def writes(call: Call, ticket: Ticket) -> bool:
    return Role(call.agent.role) in (Role.ADMIN, Role.MANAGER) or manages_mailbox(
        call.agent, ticket.mailbox_id
    )


def article_widgets(call: Call, ticket: Ticket) -> list[dict[str, Any]]:
    """The button, on a solved ticket the team answered (the caller knows it has an answer)."""
    if ticket.status not in CLOSED_STATUSES:
        return []
    return [cards.buttons(cards.button(call.say("make_article"), cards.action(call.caller, "article_from_ticket",
                                                                                ticket=ticket.id)))]  # fmt: skip


def make_article(call: Call, ticket: Ticket) -> str:
    """The draft article made (or the one made before); the notification's text."""
    if not writes(call, ticket):
        raise BadInput(call.say("articles_for_writers"))
    if ticket.status not in CLOSED_STATUSES:
        raise BadInput(call.say("article_needs_solved"))
    try:
        article = articles.from_ticket(call.session, ticket, author=call.agent, at=call.now)
    except articles.ArticleError as exc:
        raise BadInput(str(exc)) from exc
    return call.say("article_made", title=cards.text(article.title, 60))
