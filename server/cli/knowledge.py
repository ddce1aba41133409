"""``postdesk knowledge read``: read the urgency and tone of customer mail filed before readings existed."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from server.cli.common import CliError
from server.db import get_session
from server.knowledge.readings import read_unread
from server.models import Mailbox


@click.group("knowledge")
def knowledge_group() -> None:
    """What Postdesk reads in customer mail, on this server (docs/knowledge.md)."""


@knowledge_group.command("read")
@click.option("--mailbox", "address", metavar="ADDRESS", help="Only this mailbox (default: all).")
@with_appcontext
def knowledge_read_command(address: str | None) -> None:
    """Read every customer message that has no urgency and tone yet (after an upgrade, or the mail a
    new mailbox's first sync filed without running rules); resumable, a batch at a time."""
    session = get_session()
    mailbox_id = None
    if address:
        mailbox_id = session.scalar(select(Mailbox.id).where(Mailbox.address == address.strip().lower()))
        if mailbox_id is None:
            raise CliError(f"no mailbox {address!r} (postdesk mailbox list)")
    click.echo(f"read {read_unread(session, mailbox_id=mailbox_id)} messages")
