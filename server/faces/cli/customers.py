"""``postdesk customer forget``: a customer's words and address leave Postdesk (server.services.customers)."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from server.base.db import get_session
from server.faces.cli.common import CliError
from server.services.customers import ForgetError, forget


@click.group("customer")
def customer_group() -> None:
    """The customers: forget one (their mail's text and address; the ticket counts stay)."""


@customer_group.command("forget")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask first (for scripts).")
@with_appcontext
def customer_forget_command(email: str, yes: bool) -> None:
    """Forget the customer EMAIL in every mailbox: their messages' text, the tickets' subjects, their
    rating comments, the mail sent to them; cannot be undone."""
    if not yes:
        click.confirm(f"Forget {email} for good (it cannot be undone)?", abort=True)
    session = get_session()
    try:
        found = forget(session, email, now=datetime.now(UTC))
    except ForgetError as exc:
        raise CliError(str(exc)) from exc
    session.commit()
    click.echo(
        f"forgotten: {found.customers} customer records, {found.tickets} tickets, {found.messages} messages"
    )
