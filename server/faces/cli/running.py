"""The long-running commands: ``sync``, ``worker``, ``web``, ``sandbox`` and ``demo``."""

from __future__ import annotations

import contextlib
import sys

import click
from flask import current_app
from flask.cli import with_appcontext

from server.faces.cli.common import CliError, database_problem


@click.command("sync")
@click.option("--mailbox", "address", metavar="ADDRESS", help="Only this mailbox (default: all).")
@click.option("--once", is_flag=True, help="Sync once and exit (default: poll every POSTDESK_POLL_SECONDS).")
@click.option("--no-send", is_flag=True, help="Run the rules but hold the Outbox mail (do not send).")
@with_appcontext
def sync_command(address: str | None, once: bool, no_send: bool) -> None:
    """Fetch new mail, file it under tickets, run the rules and send the Outbox mail that is due."""
    from server.flows.sync_runner import SyncRunner

    runner = SyncRunner(current_app._get_current_object(), echo=click.echo, send=not no_send)  # type: ignore[attr-defined]
    try:
        mailbox_ids = runner.mailbox_ids(address)
    except LookupError as exc:
        raise CliError(str(exc)) from exc
    if once:
        if not runner.run_once(mailbox_ids):
            sys.exit(1)
        return
    runner.poll_forever(mailbox_ids, current_app.config["POLL_SECONDS"])


@click.command("worker")
@with_appcontext
def worker_command() -> None:
    """Run the scheduled jobs (polls, sending, SLA watch): with TASKS=inline one worker runs them
    at a time; with TASKS=procrastinate every worker runs queued tasks and one keeps the clock."""
    from server.flows.clock.scheduler import run_worker
    from server.flows.tasks import check_backend

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        check_backend(app)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    problem = database_problem(app)
    if problem is not None:  # at another schema its jobs would fail every round, each with a traceback
        raise problem
    run_worker(app)


@click.command("web")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
def web_command(host: str, port: int, workers: int) -> None:
    """Serve the web app (gunicorn where available, else Werkzeug's threaded server)."""
    from server.faces.cli.serving import serve_web

    serve_web(host, port, workers)


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True, type=click.IntRange(0, 65535))
@click.option("--seed", type=click.Choice(["demo", "empty"]), default="empty", show_default=True)
@click.option("--state", "state_file", metavar="FILE", help="Keep the mailboxes in FILE across restarts.")
@click.option(
    "--no-rate-limit",
    is_flag=True,
    help="Do not enforce Gmail's per-minute rate limits (15,000 units a user, 1,200,000 in all).",
)
def sandbox_command(host: str, port: int, seed: str, state_file: str | None, no_rate_limit: bool) -> None:
    """Run the local Gmail API sandbox."""
    from server.faces.cli.serving import start_sandbox, stop_on_signals

    try:
        server = start_sandbox(
            host, port, seed=seed, state_file=state_file, enforce_rate_limit=not no_rate_limit
        )
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # a state file that is not the sandbox's JSON
        raise CliError(f"cannot read sandbox state {state_file}: {exc}") from exc
    users = (
        ", ".join(sorted(server.sandbox.users))
        or "none yet (deliver with POST /sandbox/users/{email}/messages)"
    )
    stop_on_signals()  # before saying it listens: whoever reads that may stop it at once
    with contextlib.suppress(KeyboardInterrupt):
        click.echo(f"Gmail sandbox listening on {server.url}  mailboxes: {users}", err=False)
        server.serve_forever()


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--sandbox-port", default=8025, show_default=True, type=click.IntRange(0, 65535))
@with_appcontext
def demo_command(host: str, port: int, sandbox_port: int) -> None:
    """Start Postdesk on its embedded defaults: seeded sandbox, demo database, web app."""
    from server.faces.cli.serving import run_demo

    try:
        run_demo(current_app.instance_path, host, port, sandbox_port)
    except OSError as exc:
        raise CliError(
            f"cannot start the demo: {exc} (is another demo running? try --port/--sandbox-port)"
        ) from exc
