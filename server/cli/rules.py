"""``postdesk rules``: import, export and dry-run a mailbox's rules. A bad file changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import click
from flask.cli import with_appcontext
from sqlalchemy import select

import rules as rule_engine
from server import actions
from server.automation import Automation, load_mailbox_rules, parsed_from_row
from server.cli.common import CliError, mailbox_named, problems_error, read_text_file
from server.db import get_session
from server.defaults import replace_rules
from server.gmail.sync import TicketEvent
from server.models import (
    Direction,
    Mailbox,
    Message,
    Ticket,
)


def _load_rule_file(path: str, mailbox: Mailbox) -> list[rule_engine.Rule]:
    try:
        loaded = rule_engine.loads(read_text_file(path))
    except rule_engine.RuleError as exc:
        raise problems_error(path, [str(p) for p in exc.problems]) from exc
    session = get_session()
    missing = [
        f"  rules[{index}].actions[{number}]: {problem}"
        for index, rule in enumerate(loaded)
        for number, action in enumerate(rule.actions)
        for problem in actions.check(session, mailbox, action.kind, action.value)
    ]
    if missing:
        raise CliError(f"{path} names what {mailbox.address} does not have:\n" + "\n".join(missing))
    return loaded


@click.group("rules")
def rules_group() -> None:
    """Import, export and try a mailbox's rules."""


@rules_group.command("import")
@click.argument("path", metavar="FILE")
@click.option("--mailbox", "address", required=True, metavar="ADDRESS")
@with_appcontext
def rules_import(path: str, address: str) -> None:
    """Replace the mailbox's rules with those in FILE (YAML or JSON); nothing changes on an error."""
    mailbox = mailbox_named(address)
    loaded = _load_rule_file(path, mailbox)
    session = get_session()
    replace_rules(session, mailbox, loaded)
    session.commit()
    click.echo(f"{len(loaded)} rules imported into {mailbox.address}")


@rules_group.command("export")
@click.option("--mailbox", "address", required=True, metavar="ADDRESS")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@with_appcontext
def rules_export(address: str, fmt: str) -> None:
    """Print the mailbox's rules in the format `rules import` reads."""
    mailbox = mailbox_named(address)
    loaded = [rule for _row, rule in load_mailbox_rules(get_session(), mailbox.id)]
    click.echo(
        rule_engine.dumps_yaml(loaded) if fmt == "yaml" else rule_engine.dumps_json(loaded), nl=fmt == "json"
    )


class _DryRow:
    """Stands in for a stored rule during a dry run (nothing is written, so no id is needed)."""

    id = None


@rules_group.command("dry-run")
@click.argument("path", metavar="FILE")
@click.option("--mailbox", "address", required=True, metavar="ADDRESS")
@click.option(
    "--last",
    "last",
    default=20,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="How many recent tickets.",
)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def rules_dry_run(path: str, address: str, last: int, as_json: bool) -> None:
    """Show what the rules in FILE would have done to the last N tickets, changing nothing."""
    session = get_session()
    mailbox = mailbox_named(address)
    loaded = _load_rule_file(path, mailbox)
    automation = Automation(
        session, mailbox, now=datetime.now(UTC), dry_run=True, rules=[(_DryRow(), r) for r in loaded]
    )
    report: list[dict[str, Any]] = []
    try:
        for ticket in session.scalars(
            select(Ticket).where(Ticket.mailbox_id == mailbox.id).order_by(Ticket.number.desc()).limit(last)
        ):
            messages = list(
                session.scalars(
                    select(Message).where(Message.ticket_id == ticket.id).order_by(Message.sent_at)
                )
            )
            inbound = [m for m in messages if m.direction == Direction.INBOUND.value]
            outbound = [m for m in messages if m.direction == Direction.OUTBOUND.value]
            events = [(rule_engine.Trigger.TICKET_CREATED, inbound[0] if inbound else None)]
            if len(inbound) > 1:
                events.append((rule_engine.Trigger.CUSTOMER_REPLIED, inbound[-1]))
            if outbound:
                events.append((rule_engine.Trigger.AGENT_REPLIED, outbound[-1]))
            events.append((rule_engine.Trigger.TIME, None))
            for trigger, message in events:
                event = TicketEvent(trigger, ticket.id, parsed_from_row(message) if message else None)
                for outcome in automation.handle(event):
                    report.append(
                        {
                            "ticket": ticket.number,
                            "subject": ticket.subject,
                            "trigger": trigger.value,
                            "rule": outcome.rule,
                            "matched": outcome.matched,
                            "actions": outcome.actions,
                            "explanation": outcome.explanation,
                        }
                    )
    finally:
        session.rollback()  # a dry run never changes anything, whatever a rule tried
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False, indent=2))
        return
    for line in report:
        if line["matched"]:
            click.echo(
                f"#{line['ticket']} {line['subject'][:50]!r} [{line['trigger']}] {line['rule']}: {'; '.join(line['actions'])}"
            )
    click.echo(
        f"{sum(1 for line in report if line['matched'])} matches in the last {last} tickets; nothing was changed"
    )
