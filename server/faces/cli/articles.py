"""``postdesk articles``: the help centre's articles of a mailbox."""

from __future__ import annotations

import json

import click
from flask.cli import with_appcontext

from server.base.db import get_session
from server.faces.cli.common import mailbox_named


@click.group("articles")
def articles_group() -> None:
    """The help centre's articles."""


@articles_group.command("list")
@click.option("--mailbox", "address", required=True, metavar="ADDRESS")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@with_appcontext
def articles_list(address: str, as_json: bool) -> None:
    """The mailbox's articles (drafts too), by category and title."""
    from server.services import articles

    found = articles.of_mailbox(get_session(), mailbox_named(address).id)
    if as_json:
        click.echo(json.dumps([articles.document(a) for a in found], ensure_ascii=False, indent=2))
        return
    for article in found:
        state = "published" if article.published else "draft"
        click.echo(f"{article.id:<6} {article.language} {state:<9} {article.views:>6} views  "
                   f"{(article.category or '-')[:20]:<20} {article.title[:60]}")  # fmt: skip
