"""``postdesk sla``: business-time arithmetic on a calendar file, and SLA policy import."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from flask.cli import with_appcontext

from server.base.db import get_session
from server.faces.cli.common import CliError, mailbox_named, problems_error, retime_batch, yaml_file


@click.group("sla")
def sla_group() -> None:
    """Check a business-hours calendar: due times and business minutes."""


def _calendar_file(path: str) -> Any:
    from server.services.sla import CalendarError, calendar_from_config

    data = yaml_file(path)
    try:
        return calendar_from_config(data)
    except CalendarError as exc:
        raise problems_error(path, exc.problems) from exc


def _instant(value: str, calendar: Any, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise CliError(
            f"{option}: {value!r} is not an ISO 8601 date-time (2026-11-23T10:00:00+03:00)"
        ) from exc
    # A time without an offset is read in the calendar's own zone.
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=calendar.zone)


@sla_group.command("due")
@click.option("--calendar", "path", required=True, metavar="FILE")
@click.option("--start", required=True, metavar="ISO8601")
@click.option("--minutes", required=True, type=click.IntRange(0, 10_000_000))
def sla_due(path: str, start: str, minutes: int) -> None:
    """Print the instant N business minutes after START (ISO 8601, in the calendar's zone)."""
    from server.services.sla import CalendarError, add_business_minutes

    calendar = _calendar_file(path)
    try:
        due = add_business_minutes(calendar, _instant(start, calendar, "--start"), minutes)
    except CalendarError as exc:
        raise CliError(str(exc)) from exc
    click.echo(due.astimezone(calendar.zone).isoformat())


@sla_group.command("between")
@click.option("--calendar", "path", required=True, metavar="FILE")
@click.option("--start", required=True, metavar="ISO8601")
@click.option("--end", required=True, metavar="ISO8601")
def sla_between(path: str, start: str, end: str) -> None:
    """Print the business minutes from START to END."""
    from server.services.sla import business_minutes_between

    calendar = _calendar_file(path)
    minutes = business_minutes_between(
        calendar, _instant(start, calendar, "--start"), _instant(end, calendar, "--end")
    )
    click.echo(f"{minutes:g}")


@sla_group.command("policy-import")
@click.argument("path", metavar="FILE")
@click.option("--mailbox", "address", required=True, metavar="ADDRESS")
@with_appcontext
def sla_policy_import(path: str, address: str) -> None:
    """Add or update the SLA policies in FILE ({policies: [{name, calendar, targets, pausing_statuses, default}]})."""
    from server.services.sla_policies import PolicyError, check, save

    mailbox = mailbox_named(address)
    try:
        items = check(yaml_file(path))
    except PolicyError as exc:
        raise problems_error(path, exc.problems) from exc
    refreshed = save(get_session(), mailbox, items, batch=retime_batch())
    click.echo(
        f"{len(items)} SLA policies imported into {mailbox.address}; {refreshed} open tickets re-timed"
    )
