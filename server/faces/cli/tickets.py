"""``postdesk tickets`` and ``postdesk outbox``: read what Postdesk holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from flask.cli import with_appcontext
from sqlalchemy import select

from server.base.db import get_session
from server.base.models import (
    Mailbox,
    Outbox,
    Ticket,
    TicketStatus,
)
from server.faces.cli.common import CliError, mailbox_named
from server.services.accounts import list_mailboxes


@click.group("tickets")
def tickets_group() -> None:
    """List, show, merge and split tickets."""


@tickets_group.command("list")
@click.option("--mailbox", metavar="ADDRESS")
@click.option("--status", type=click.Choice([s.value for s in TicketStatus]))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@with_appcontext
def tickets_list(mailbox: str | None, status: str | None, as_json: bool) -> None:
    """List tickets, newest first."""
    from server.services.tickets.queries import list_tickets

    rows = list_tickets(get_session(), mailbox=mailbox, status=status)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(
            f"#{row['number']:<6} {row['status']:<8} {row['priority']:<7} {row['message_count']:>3} msg  "
            f"{(row['customer'] or '-'):<32} {row['subject'][:60]}"
        )


@tickets_group.command("show")
@click.argument("number", type=int)
@click.option("--mailbox", metavar="ADDRESS", help="Needed when there is more than one mailbox.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_appcontext
def tickets_show(number: int, mailbox: str | None, as_json: bool) -> None:
    """Show one ticket with its messages."""
    from server.services.tickets.queries import TicketNotFound, ticket_detail

    session = get_session()
    if mailbox is None:
        addresses = [m.address for m in list_mailboxes(session)]
        if len(addresses) != 1:
            raise CliError("give --mailbox ADDRESS (there is not exactly one mailbox)")
        mailbox = addresses[0]
    try:
        detail = ticket_detail(session, number, mailbox)
    except TicketNotFound as exc:
        raise CliError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(detail, ensure_ascii=False, indent=2))
        return
    click.echo(f"#{detail['number']} {detail['subject']}  [{detail['status']}, {detail['priority']}]")
    click.echo(f"customer: {detail['customer'] or '-'}   assignee: {detail['assignee'] or '-'}")
    for message in detail["messages"]:
        arrow = "→" if message["direction"] == "outbound" else "←"
        click.echo(f"\n{arrow} {message['from']}  {message['sent_at']}  ({message['gmail_id']})")
        click.echo(message["new_text"])


def _numbered(number: int, address: str) -> Ticket:
    mailbox = mailbox_named(address)
    ticket = get_session().scalar(
        select(Ticket).where(Ticket.mailbox_id == mailbox.id, Ticket.number == number)
    )
    if ticket is None:
        raise CliError(f"no ticket #{number} in {mailbox.address}")
    return ticket


@tickets_group.command("merge")
@click.argument("number", type=int)
@click.option("--into", "into", type=int, required=True, metavar="M", help="The ticket that survives.")
@click.option("--mailbox", "address", required=True, metavar="ADDRESS")
@with_appcontext
def tickets_merge(number: int, into: int, address: str) -> None:
    """Merge ticket NUMBER into ticket M of the same mailbox (undo within a day: tickets unmerge)."""
    from server.services import regrouping, tickets

    session = get_session()
    source, target = _numbered(number, address), _numbered(into, address)
    try:
        survivor = regrouping.merge_tickets(session, source, target, at=datetime.now(UTC))
    except tickets.MergeError as exc:
        raise CliError(str(exc)) from exc
    session.commit()
    click.echo(f"#{source.number} merged into #{survivor.number}")


@tickets_group.command("unmerge")
@click.argument("number", type=int)
@click.option("--mailbox", "address", required=True, metavar="ADDRESS")
@with_appcontext
def tickets_unmerge(number: int, address: str) -> None:
    """Undo ticket NUMBER's merge (within a day): its messages, notes and tags go back."""
    from server.services import tickets

    session = get_session()
    source = _numbered(number, address)
    try:
        tickets.unmerge(session, source, at=datetime.now(UTC))
    except tickets.MergeError as exc:
        raise CliError(str(exc)) from exc
    session.commit()
    click.echo(f"#{source.number} is a ticket of its own again ({source.status})")


@click.group("outbox")
def outbox_group() -> None:
    """See the email Postdesk sends."""


@outbox_group.command("list")
@click.option("--mailbox", "address", metavar="ADDRESS")
@click.option("--state", type=click.Choice(["pending", "sending", "sent", "failed", "cancelled"]))
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def outbox_list(address: str | None, state: str | None, as_json: bool) -> None:
    """List Outbox emails, newest first."""
    query = (
        select(Outbox, Mailbox.address, Ticket.number)
        .join(Mailbox, Outbox.mailbox_id == Mailbox.id)
        .outerjoin(Ticket, Outbox.ticket_id == Ticket.id)
        .order_by(Outbox.id.desc())
    )
    if address:
        query = query.where(Mailbox.id == mailbox_named(address).id)
    if state:
        query = query.where(Outbox.state == state)
    rows: list[dict[str, Any]] = [
        {
            "id": row.id,
            "mailbox": mailbox,
            "ticket": number,
            "kind": row.kind,
            "to": row.to,
            "subject": row.subject,
            "state": row.state,
            "attempts": row.attempts,
            "message_id": row.message_id,
            "gmail_id": row.gmail_id,
            "created_at": row.created_at.isoformat(),
            "sent_at": row.sent_at.isoformat() if row.sent_at else None,
            "last_error": row.last_error,
        }
        for row, mailbox, number in get_session().execute(query)
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        ticket = f"#{row['ticket']}" if row["ticket"] else "-"
        click.echo(
            f"{row['id']:>5} {row['state']:<9} {row['kind']:<12} {ticket:<6} {row['to']:<32} {row['subject'][:50]}"
        )


@tickets_group.command("split")
@click.argument("number", type=int)
@click.option(
    "--message",
    "gmail_id",
    required=True,
    metavar="GMAIL_ID",
    help="The customer's message that starts the new ticket (its Gmail id, as tickets show prints).",
)
@click.option("--mailbox", "address", required=True, metavar="ADDRESS")
@with_appcontext
def tickets_split(number: int, gmail_id: str, address: str) -> None:
    """Split a customer's message, and the later ones of its Gmail thread, off ticket NUMBER into a new
    ticket (which runs the new-ticket rules)."""
    from server.base.models import Message
    from server.services import regrouping, tickets

    session = get_session()
    ticket = _numbered(number, address)
    message = session.scalar(
        select(Message).where(Message.ticket_id == ticket.id, Message.gmail_id == gmail_id)
    )
    if message is None:
        raise CliError(f"#{number} has no message {gmail_id}")
    try:
        new = regrouping.split_ticket(session, ticket, message, at=datetime.now(UTC))
    except tickets.SplitError as exc:
        raise CliError(str(exc)) from exc
    session.commit()
    click.echo(f"split off #{ticket.number} into #{new.number}")
