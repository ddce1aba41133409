"""``postdesk rules``: import, export and dry-run a mailbox's rules. A bad file changes nothing."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

import rules as rule_engine
from server.base.db import get_session
from server.base.models import Mailbox
from server.faces.cli.common import mailbox_named, problems_error, read_text_file
from server.services import rule_sets
from server.services.automation import load_mailbox_rules


def _load_rule_file(path: str, mailbox: Mailbox) -> list[rule_engine.Rule]:
    try:
        return rule_sets.parse(get_session(), mailbox, read_text_file(path))
    except rule_sets.RuleSetError as exc:
        raise problems_error(path, [str(p) for p in exc.problems]) from exc


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
    rule_sets.save(get_session(), mailbox, loaded)
    click.echo(f"{len(loaded)} rules imported into {mailbox.address}")


@rules_group.command("export")
@click.option("--mailbox", "address", required=True, metavar="ADDRESS")
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
@with_appcontext
def rules_export(address: str, fmt: str) -> None:
    """Print the mailbox's rules in the format `rules import` reads."""
    mailbox = mailbox_named(address)
    if fmt == "yaml":
        click.echo(rule_sets.export_yaml(get_session(), mailbox), nl=False)
        return
    loaded = [rule for _row, rule in load_mailbox_rules(get_session(), mailbox.id)]
    click.echo(rule_engine.dumps_json(loaded))


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
    report = rule_sets.dry_run(session, mailbox, loaded, last=last)
    if as_json:
        click.echo(json.dumps([line.as_json() for line in report.lines], ensure_ascii=False, indent=2))
        return
    for line in report.matches:
        click.echo(
            f"#{line.ticket} {line.subject[:50]!r} [{line.trigger}] {line.rule}: {'; '.join(line.actions)}"
        )
    click.echo(f"{len(report.matches)} matches in the last {last} tickets; nothing was changed")
