"""``postdesk agent``: add the team's people (the first admin included), list them, change them."""

from __future__ import annotations

import json
from typing import Any

import click
from flask.cli import with_appcontext

from server.base.db import get_session
from server.base.models import Locale, Role
from server.faces.cli.common import CliError
from server.services.accounts import (
    AccountError,
    AgentChange,
    add_agent,
    administered,
    list_agents,
    update_agent,
)

ROLES = click.Choice([r.value for r in Role])
LOCALES = click.Choice([loc.value for loc in Locale])


@click.group("agent")
def agent_group() -> None:
    """The team: add people, list them, change their role, mailboxes and state."""


def _change(
    *,
    role: str | None,
    name: str | None,
    mailboxes: tuple[str, ...],
    locale: str | None,
    timezone: str | None,
    active: bool | None = None,
    away: bool | None = None,
    admin_of: tuple[str, ...] = (),
) -> AgentChange:
    return AgentChange(
        name=name,
        role=role,
        locale=locale,
        timezone=timezone,
        active=active,
        away=away,
        mailboxes=mailboxes or None,
        admin_of=admin_of or None,
    )


@agent_group.command("add")
@click.argument("email")
@click.option("--role", type=ROLES, default=Role.AGENT.value, show_default=True)
@click.option("--name", help="The name customers and colleagues see.")
@click.option("--mailbox", "mailboxes", multiple=True, metavar="ADDRESS", help="A mailbox they work in.")
@click.option(
    "--mailbox-admin", "admin_of", multiple=True, metavar="ADDRESS", help="A mailbox they are admin of."
)
@click.option("--locale", type=LOCALES, help="Language of their cards, mail and pages (default en).")
@click.option("--timezone", metavar="ZONE", help="IANA time zone, e.g. Europe/Moscow (default UTC).")
@with_appcontext
def agent_add_command(email: str, **options: Any) -> None:
    """Add EMAIL to the team (the first admin of a new install starts here)."""
    try:
        agent = add_agent(get_session(), email, _change(**options))
    except AccountError as exc:
        raise CliError(str(exc)) from exc
    click.echo(f"{agent.email} added as {agent.role}")


@agent_group.command("set")
@click.argument("email")
@click.option("--role", type=ROLES)
@click.option("--name")
@click.option("--mailbox", "mailboxes", multiple=True, metavar="ADDRESS", help="Replaces their mailboxes.")
@click.option(
    "--mailbox-admin",
    "admin_of",
    multiple=True,
    metavar="ADDRESS",
    help="Replaces the mailboxes they are admin of.",
)
@click.option("--locale", type=LOCALES)
@click.option("--timezone", metavar="ZONE")
@click.option("--active/--inactive", default=None, help="An inactive person cannot sign in or get tickets.")
@click.option("--away/--back", default=None, help="Away: keeps their tickets, gets no new ones.")
@with_appcontext
def agent_set_command(email: str, **options: Any) -> None:
    """Change EMAIL's role, name, mailboxes, language, zone or state (only what is given)."""
    try:
        agent = update_agent(get_session(), email, _change(**options))
    except AccountError as exc:
        raise CliError(str(exc)) from exc
    state = "active" if agent.active else "inactive"
    click.echo(f"{agent.email}: {agent.role}, {state}{', away' if agent.away else ''}")


@agent_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the team as JSON.")
@with_appcontext
def agent_list_command(as_json: bool) -> None:
    """The team, one person a line (or JSON)."""
    rows: list[dict[str, Any]] = [
        {
            "email": a.email,
            "name": a.name,
            "role": a.role,
            "active": a.active,
            "away": a.away,
            "locale": a.locale,
            "timezone": a.timezone,
            "mailboxes": sorted(m.address for m in a.mailboxes),
            "admin_of": sorted(m.address for m in a.mailboxes if m.id in administered(a)),
        }
        for a in list_agents(get_session())
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no agents yet: postdesk agent add EMAIL --role admin")
        return
    for row in rows:
        state = ("active" if row["active"] else "inactive") + (", away" if row["away"] else "")
        click.echo(f"{row['email']:<40} {row['role']:<8} {state:<16} {', '.join(row['mailboxes'])}")
