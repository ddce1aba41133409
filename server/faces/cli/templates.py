"""``postdesk templates``: import and export a mailbox's templates."""

from __future__ import annotations

from typing import Any

import click
import yaml
from flask.cli import with_appcontext
from sqlalchemy import select

from server.base.db import get_session
from server.base.models import (
    Locale,
    Template,
)
from server.faces.cli.common import CliError, mailbox_named, problems_error, yaml_file
from server.services import template_sets
from server.services.templating import TemplateError, check_template


@click.group("templates")
def templates_group() -> None:
    """Import and export a mailbox's email templates."""


def _template_entries(path: str) -> list[dict[str, Any]]:
    data = yaml_file(path)
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
    mailbox = mailbox_named(address)
    entries = _template_entries(path)
    session = get_session()
    problems = []
    for index, entry in enumerate(entries):
        draft = template_sets.Draft(entry["subject"], entry["text"], entry["html"])
        try:
            template_sets.save(session, mailbox, entry["name"], entry["locale"], draft, commit=False)
        except template_sets.TemplateProblem as exc:
            problems += [f"templates[{index}] ({entry['name']}): {text}" for text in exc.problems.values()]
    if problems:
        session.rollback()
        raise problems_error(path, problems)
    session.commit()
    click.echo(f"{len(entries)} templates imported into {mailbox.address}")


@templates_group.command("export")
@click.option("--mailbox", "address", required=True, metavar="ADDRESS")
@with_appcontext
def templates_export(address: str) -> None:
    """Print the mailbox's shared templates as YAML."""
    mailbox = mailbox_named(address)
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
