"""``postdesk doctor``, ``postdesk backup`` / ``restore`` / ``after-restore``: running a deployment."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import with_appcontext

from server.base.db import get_engine, get_session
from server.faces.cli.common import CliError, read_text_file


@click.command("doctor")
@click.option(
    "--live", is_flag=True, help="Also call out: the public URLs, Gmail for each mailbox, Google's clock."
)
@click.option("--deployment", "deployment_path", metavar="FILE",
              help="Compare this add-on deployment file with the settings.")  # fmt: skip
@with_appcontext
def doctor_command(live: bool, deployment_path: str | None) -> None:
    """Check every requirement of this deployment: one line each, ✓ or ✗ with the fix; exit code 0
    only when nothing is ✗ (docs/deployment.md#checking-a-deployment)."""
    from server.faces.doctor import run_checks

    deployment = None
    if deployment_path is not None:
        try:
            deployment = json.loads(read_text_file(deployment_path))
        except json.JSONDecodeError as exc:
            raise CliError(f"{deployment_path} is not JSON: {exc}") from exc
    checks = run_checks(live=live, deployment=deployment)
    for check in checks:
        click.echo(check.line())
    failed = sum(1 for check in checks if check.ok is False)
    click.echo(f"{failed} problem(s)" if failed else "everything checked holds")
    if failed:
        raise SystemExit(1)


@click.command("backup")
@click.argument("file")
@with_appcontext
def backup_command(file: str) -> None:
    """Copy the SQLite database into FILE, consistently, while Postdesk runs (PostgreSQL: pg_dump)."""
    from server.services.backups import BackupError, backup_sqlite

    try:
        backup_sqlite(get_engine(), Path(file))
    except BackupError as exc:
        raise CliError(str(exc)) from exc
    click.echo(f"backed up to {file} ({Path(file).stat().st_size // 1024} KB)")


@click.command("restore")
@click.argument("file")
@with_appcontext
def restore_command(file: str) -> None:
    """Restore a backup into the configured (empty) SQLite database, then do what follows a restore."""
    from server.base.db import init_db
    from server.services.backups import BackupError, restore_sqlite

    try:
        restore_sqlite(get_engine(), Path(file))
    except BackupError as exc:
        raise CliError(str(exc)) from exc
    init_db()  # a backup of an older release is brought to this release's schema
    click.echo(f"restored {file}")
    _after_restore()


@click.command("after-restore")
@with_appcontext
def after_restore_command() -> None:
    """After pg_restore (postdesk restore does this itself): full syncs without rules, labels again."""
    _after_restore()


def _after_restore() -> None:
    from server.services.backups import after_restore

    done = after_restore(get_session())
    click.echo(
        f"{done.mailboxes} mailbox(es) will read their recent mail again and file what is missing "
        f"(no rules run on it); {done.tickets_relabelled} open ticket(s) get their Gmail labels again. "
        "Start postdesk worker (or run postdesk sync --once)."
    )
