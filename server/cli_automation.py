"""The ``rules``, ``templates``, ``outbox``, ``sla`` and ``mailbox settings`` commands. A bad file is a clear error and changes nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import yaml
from flask.cli import with_appcontext
from sqlalchemy import select

import rules as rule_engine
from server import tickets
from server.automation import Automation, TicketEvent, load_mailbox_rules, parsed_from_row
from server.cli import CliError
from server.db import get_session
from server.defaults import replace_rules
from server.models import Direction, Locale, Mailbox, Message, Outbox, Template, Ticket
from server.templating import TemplateError, check_template

MAX_FILE_BYTES = 2 * 1024 * 1024


def _mailbox(address: str) -> Mailbox:
    mailbox = get_session().scalar(select(Mailbox).where(Mailbox.address == address.strip().lower()))
    if mailbox is None:
        raise CliError(f"no mailbox {address}: see postdesk mailbox list")
    return mailbox


def _read(path: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise CliError(f"file not found: {path}")
    if file.stat().st_size > MAX_FILE_BYTES:
        raise CliError(f"{path} is larger than {MAX_FILE_BYTES // 1024} KB")
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path} as UTF-8 text: {exc}") from exc


def _yaml_file(path: str) -> Any:
    """The data of a YAML (or JSON) file, or a one-line error."""
    try:
        return yaml.safe_load(_read(path))
    except yaml.YAMLError as exc:
        raise CliError(f"{path} is not valid YAML or JSON: {exc}") from exc


def problems_error(path: str, problems: Sequence[str]) -> CliError:
    """Every problem of a file at once, one per line, so one edit can fix them all."""
    return CliError(f"{path} has {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))


def _load_rule_file(path: str, mailbox: Mailbox) -> list[rule_engine.Rule]:
    try:
        loaded = rule_engine.loads(_read(path))
    except rule_engine.RuleError as exc:
        raise problems_error(path, exc.problems) from exc
    known = {t for t in get_session().scalars(select(Template.name).where(Template.mailbox_id == mailbox.id))}
    missing = []
    for index, rule in enumerate(loaded):
        for number, action in enumerate(rule.actions):
            if action.kind in {rule_engine.ActionKind.AUTO_REPLY, rule_engine.ActionKind.NOTIFY}:
                name = action.value["template"]
                if name not in known:
                    missing.append(
                        f"  rules[{index}].actions[{number}]: no template named {name!r} in {mailbox.address}"
                    )
    if missing:
        raise CliError(f"{path} names templates that do not exist:\n" + "\n".join(missing))
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
    mailbox = _mailbox(address)
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
    mailbox = _mailbox(address)
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
    mailbox = _mailbox(address)
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


@click.group("templates")
def templates_group() -> None:
    """Import and export a mailbox's email templates."""


def _template_entries(path: str) -> list[dict[str, Any]]:
    data = _yaml_file(path)
    items = data.get("templates") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise CliError(f"{path}: expected a list of templates under 'templates'")
    problems = []
    entries = []
    for index, item in enumerate(items):
        where = f"templates[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
            problems.append(f"{where}: a template needs a name")
            continue
        locale = item.get("locale", "en")
        if locale not in {loc.value for loc in Locale}:
            problems.append(f"{where}.locale: expected one of {[loc.value for loc in Locale]}")
        subject, body, html = item.get("subject", ""), item.get("text", ""), item.get("html")
        if not all(isinstance(v, str) for v in (subject, body)) or (
            html is not None and not isinstance(html, str)
        ):
            problems.append(f"{where}: subject, text and html are text")
            continue
        try:
            check_template(subject, body, html)
        except TemplateError as exc:
            problems.append(f"{where} ({item['name']}): {exc}")
        entries.append(
            {"name": item["name"].strip(), "locale": locale, "subject": subject, "text": body, "html": html}
        )
    if problems:
        raise problems_error(path, problems)
    return entries


@templates_group.command("import")
@click.argument("path", metavar="FILE")
@click.option("--mailbox", "address", required=True, metavar="ADDRESS")
@with_appcontext
def templates_import(path: str, address: str) -> None:
    """Add or update the templates in FILE ({templates: [{name, locale, subject, text, html}]})."""
    mailbox = _mailbox(address)
    entries = _template_entries(path)
    session = get_session()
    for entry in entries:
        template = session.scalar(
            select(Template).where(
                Template.mailbox_id == mailbox.id,
                Template.name == entry["name"],
                Template.locale == entry["locale"],
            )
        )
        if template is None:
            template = Template(mailbox_id=mailbox.id, name=entry["name"], locale=entry["locale"])
            session.add(template)
        template.subject, template.body_text, template.body_html = (
            entry["subject"],
            entry["text"],
            entry["html"],
        )
    session.commit()
    click.echo(f"{len(entries)} templates imported into {mailbox.address}")


@templates_group.command("export")
@click.option("--mailbox", "address", required=True, metavar="ADDRESS")
@with_appcontext
def templates_export(address: str) -> None:
    """Print the mailbox's shared templates as YAML."""
    mailbox = _mailbox(address)
    rows = get_session().scalars(
        select(Template)
        .where(Template.mailbox_id == mailbox.id, Template.owner_id.is_(None))
        .order_by(Template.name, Template.locale)
    )
    data = {
        "templates": [
            {"name": t.name, "locale": t.locale, "subject": t.subject, "text": t.body_text}
            | ({"html": t.body_html} if t.body_html else {})
            for t in rows
        ]
    }
    click.echo(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), nl=False)


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
        query = query.where(Mailbox.id == _mailbox(address).id)
    if state:
        query = query.where(Outbox.state == state)
    rows = [
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


@click.group("sla")
def sla_group() -> None:
    """Check a business-hours calendar: due times and business minutes."""


def _calendar_file(path: str) -> Any:
    from server.sla import CalendarError, calendar_from_config

    data = _yaml_file(path)
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
    from server.sla import CalendarError, add_business_minutes

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
    from server.sla import business_minutes_between

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
    from server.models import SlaPolicy
    from server.sla import CalendarError, policy_from_config

    mailbox = _mailbox(address)
    data = _yaml_file(path)
    items = data.get("policies") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise CliError(f"{path}: expected a non-empty list of policies under 'policies'")
    problems: list[str] = []
    for index, item in enumerate(items):
        try:
            policy_from_config(item)
        except CalendarError as exc:
            problems += [f"policies[{index}].{p}" for p in exc.problems]
    if sum(1 for item in items if isinstance(item, dict) and item.get("default")) > 1:
        problems.append("only one policy can be the default")
    if problems:
        raise problems_error(path, problems)
    session = get_session()
    for item in items:
        row = session.scalar(
            select(SlaPolicy).where(
                SlaPolicy.mailbox_id == mailbox.id, SlaPolicy.name == item["name"].strip()
            )
        )
        if row is None:
            row = SlaPolicy(mailbox_id=mailbox.id, name=item["name"].strip())
            session.add(row)
        row.calendar = item.get("calendar") or {}
        row.targets = item.get("targets") or {}
        row.pausing_statuses = item.get("pausing_statuses", ["pending", "on_hold"])
        if item.get("default"):
            for other in session.scalars(select(SlaPolicy).where(SlaPolicy.mailbox_id == mailbox.id)):
                other.is_default = False
            row.is_default = True
    refreshed = tickets.refresh_mailbox(session, mailbox.id, at=datetime.now(UTC))
    session.commit()
    click.echo(
        f"{len(items)} SLA policies imported into {mailbox.address}; {refreshed} open tickets re-timed"
    )


@click.command("settings")
@click.argument("address", metavar="ADDRESS")
@click.argument("path", metavar="FILE", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@with_appcontext
def mailbox_settings_command(address: str, path: str | None, as_json: bool) -> None:
    """Show the mailbox's settings, or replace them with FILE (YAML/JSON; every problem is listed)."""
    from server.mailbox_settings import DEFAULTS, REMINDER_DEFAULTS, SettingsError, validate

    mailbox = _mailbox(address)
    session = get_session()
    if path is not None:
        try:
            settings = validate(_yaml_file(path))
        except SettingsError as exc:
            raise problems_error(path, exc.problems) from exc
        mailbox.settings = settings
        refreshed = tickets.refresh_mailbox(session, mailbox.id, at=datetime.now(UTC))
        session.commit()
        click.echo(f"settings of {mailbox.address} saved; {refreshed} open tickets re-timed")
        return
    stored = dict(mailbox.settings or {})
    shown = {**DEFAULTS, **stored, "reminders": {**REMINDER_DEFAULTS, **(stored.get("reminders") or {})}}
    if as_json:
        click.echo(json.dumps(shown, ensure_ascii=False, indent=2))
    else:
        click.echo(yaml.safe_dump(shown, allow_unicode=True, sort_keys=False).rstrip())


__all__ = ["mailbox_settings_command", "outbox_group", "rules_group", "sla_group", "templates_group"]
