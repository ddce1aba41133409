"""``postdesk labels``: bring the Gmail labels of every open ticket in line with the tickets."""

from __future__ import annotations

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from server.base.db import get_session
from server.faces.cli.common import CliError, mailbox_named


@click.group("labels")
def labels_group() -> None:
    """Ticket state mirrored in Gmail labels (see docs/gmail-labels.md)."""


@labels_group.command("sync")
@click.option(
    "--mailbox",
    "address",
    metavar="ADDRESS",
    help="Only this mailbox (default: every one that mirrors labels).",
)
@with_appcontext
def labels_sync(address: str | None) -> None:
    """Label every open ticket's thread as the ticket is (after enabling labels, a restore, or a label
    deleted in Gmail). Resumable: an interrupted run leaves the rest for the next run or the worker."""
    from server.base.models import Mailbox
    from server.flows.sync_runner import record_usage
    from server.gmail.client import client_for_mailbox
    from server.gmail.errors import GmailError
    from server.services.labels import apply_wanted, request_all
    from server.services.mailbox_settings import label_settings

    db = get_session()
    mailboxes = (
        [mailbox_named(address)] if address else list(db.scalars(select(Mailbox).order_by(Mailbox.address)))
    )
    chosen = [m for m in mailboxes if label_settings(m)["enabled"]]
    if address and not chosen:
        raise CliError(
            f"{address} does not mirror tickets in labels: set gmail_labels.enabled in its settings"
        )
    for mailbox in chosen:
        wanted = request_all(db, mailbox)
        done = calls = 0
        try:
            with client_for_mailbox(mailbox) as client:
                try:
                    while True:
                        step = apply_wanted(db, mailbox, client)
                        done, calls = done + step.tickets, calls + step.calls
                        if not step.tickets and not step.stale:
                            break
                finally:
                    record_usage(db, mailbox.id, client.meter.units_total)
                    units = client.meter.units_total
        except GmailError as exc:
            raise CliError(f"{mailbox.address}: stopped after {done} of {wanted} tickets: {exc}") from exc
        click.echo(
            f"{mailbox.address}: {done} of {wanted} open tickets labelled ({calls} Gmail calls, {units} quota units)"
        )
