"""The ``postdesk`` command: a Flask CLI group whose commands each make one call into a service.

One module per command group; :mod:`server.faces.cli.common` holds what they share. Errors a user can
cause (bad URL, missing file, duplicate address …) end with one line on stderr and exit code 2,
never a traceback.
"""

from __future__ import annotations

from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup, ScriptInfo
from sqlalchemy.exc import DBAPIError

from server.faces.cli.common import CliError, database_problem

__all__ = ["CliError", "init_app", "main"]


def _create_app() -> Flask:
    """The app, built with the cyclic garbage collector paused: the imports make some 300,000 objects,
    none of them garbage, and scanning them again and again was a large part of every command's start.
    Then what they made is frozen (never scanned again), as a long-running worker or web process wants."""
    import gc

    from server import create_app

    gc.disable()
    try:
        return create_app()
    finally:
        gc.freeze()
        gc.enable()


class _Postdesk(FlaskGroup):
    """The group, turning a database that is missing, unreachable or not at this release's schema into
    one line that says what to do (a new user's first command is often run before ``init-db``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DBAPIError as exc:
            error = database_problem(ctx.ensure_object(ScriptInfo).load_app())
            if error is None:
                raise  # the schema is right: a real failure, with its traceback
            raise error from exc


main = _Postdesk(
    name="postdesk",
    create_app=_create_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,
    help="Postdesk: a helpdesk inside Gmail.",
)


def init_app(app: Flask) -> None:
    from server.faces.cli import (
        addon,
        agents,
        articles,
        customers,
        knowledge,
        labels,
        mailboxes,
        operations,
        rules,
        running,
        sla,
        templates,
        tickets,
        tokens,
    )

    for command in (
        sla.sla_group,
        rules.rules_group,
        templates.templates_group,
        tickets.outbox_group,
        mailboxes.mailbox_group,
        agents.agent_group,
        tokens.token_group,
        customers.customer_group,
        knowledge.knowledge_group,
        labels.labels_group,
        running.sync_command,
        running.worker_command,
        tickets.tickets_group,
        running.web_command,
        running.sandbox_command,
        running.demo_command,
        addon.addon_group,
        articles.articles_group,
        articles.faq_group,
        operations.doctor_command,
        operations.backup_command,
        operations.restore_command,
        operations.after_restore_command,
    ):
        app.cli.add_command(command)
