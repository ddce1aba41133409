"""``postdesk articles``: the help centre's articles of a mailbox; ``postdesk faq candidates``: the
questions that keep coming back without an article."""

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


@click.group("faq")
def faq_group() -> None:
    """FAQ answers and the questions that keep coming back without an article."""


@faq_group.command("candidates")
@click.option("--mailbox", "address", required=True, metavar="ADDRESS")
@click.option("--days", type=click.IntRange(1, 3650), default=90, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@with_appcontext
def faq_candidates(address: str, days: int, as_json: bool) -> None:
    """Groups of similar questions solved in the last DAYS days that no article answers, biggest first."""
    from datetime import UTC, datetime

    from server.services.knowledge.candidates import faq_candidates as find

    found = find(get_session(), mailbox_named(address), now=datetime.now(UTC), days=days)
    if as_json:
        rows = [{"tickets": c.numbers, "count": len(c.tickets), "wording": c.wording, "question": c.question,
                 "answer": c.answer, "answer_ticket": c.answer_ticket} for c in found]  # fmt: skip
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for candidate in found:
        click.echo(f"{len(candidate.tickets):>4} tickets  {candidate.wording[:70]}")
