"""``postdesk knowledge read``: read the urgency and tone of customer mail filed before readings existed;
``postdesk knowledge reindex``: rebuild the index of solved tickets; ``postdesk knowledge similar``: what
the add-on would suggest for a ticket."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.db import get_session
from server.base.models import Mailbox, Ticket
from server.faces.cli.common import CliError
from server.services.knowledge import index, meaning, similar
from server.services.knowledge.readings import read_unread


@click.group("knowledge")
def knowledge_group() -> None:
    """What Postdesk reads in customer mail, on this server (docs/knowledge.md)."""


def _mailbox_id(session: Session, address: str | None) -> int | None:
    if not address:
        return None
    mailbox_id = session.scalar(select(Mailbox.id).where(Mailbox.address == address.strip().lower()))
    if mailbox_id is None:
        raise CliError(f"no mailbox {address!r} (postdesk mailbox list)")
    return mailbox_id


@knowledge_group.command("read")
@click.option("--mailbox", "address", metavar="ADDRESS", help="Only this mailbox (default: all).")
@with_appcontext
def knowledge_read_command(address: str | None) -> None:
    """Read every customer message that has no urgency and tone yet (after an upgrade, or the mail a
    new mailbox's first sync filed without running rules); resumable, a batch at a time."""
    session = get_session()
    click.echo(f"read {read_unread(session, mailbox_id=_mailbox_id(session, address))} messages")


@knowledge_group.command("reindex")
@click.option("--mailbox", "address", metavar="ADDRESS", help="Only this mailbox (default: all).")
@with_appcontext
def knowledge_reindex_command(address: str | None) -> None:
    """Rebuild the index of solved tickets from the tickets themselves (after an upgrade, or to be
    sure); each mailbox in one transaction, so suggestions never see half an index."""
    session = get_session()
    chosen = _mailbox_id(session, address)
    mailbox_ids = (
        [chosen] if chosen is not None else list(session.scalars(select(Mailbox.id).order_by(Mailbox.id)))
    )
    total = 0
    for mailbox_id in mailbox_ids:
        total += index.rebuild(session, [mailbox_id])
        index.compact(session)
        session.commit()
    click.echo(f"indexed {total} solved tickets in {len(mailbox_ids)} mailboxes")
    encoded = meaning.fill_all(session)
    if encoded:
        click.echo(f"placed {encoded} of them by meaning (sentence vectors)")


@knowledge_group.command("similar")
@click.argument("number", type=click.IntRange(min=1, max=2**31 - 1))
@click.option("--mailbox", "address", metavar="ADDRESS", required=True, help="The ticket's mailbox.")
@with_appcontext
def knowledge_similar_command(number: int, address: str) -> None:
    """The solved tickets the add-on suggests for ticket NUMBER, with their answers."""
    session = get_session()
    ticket = session.scalar(
        select(Ticket).where(Ticket.mailbox_id == _mailbox_id(session, address), Ticket.number == number)
    )
    if ticket is None:
        raise CliError(f"no ticket #{number} in {address}")
    found = similar.suggest(session, ticket)
    if not found:
        click.echo("no similar solved tickets")
    for suggestion in found:
        click.echo(f"#{suggestion.number}  match {suggestion.match:.0%}  {suggestion.subject}")
        click.echo("    " + suggestion.answer.replace("\n", "\n    "))
