"""The ``postdesk`` command: a Flask CLI group whose commands each make one call into a service.

Errors a user can cause (bad URL, missing file, duplicate address …) end with one line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from server.accounts import (
    AccountError,
    MailboxSpec,
    add_mailbox,
    check_api_url,
    list_mailboxes,
    load_oauth_client,
    load_service_account,
    normalize_address,
)
from server.db import get_session
from server.models import AuthKind, TicketStatus

#: How long `mailbox add --oauth-client` waits for the admin to finish Google's consent page.
CONSENT_TIMEOUT_SECONDS = 300


class CliError(click.ClickException):
    """A one-line error with exit code 2 (the code of a usage error)."""

    exit_code = 2


def _create_app() -> Flask:
    from server import create_app

    return create_app()


main = FlaskGroup(
    name="postdesk",
    create_app=_create_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,
    help="Postdesk: a helpdesk inside Gmail.",
)


@click.group("mailbox")
def mailbox_group() -> None:
    """Connect and list shared mailboxes."""


@mailbox_group.command("add")
@click.argument("address")
@click.option("--sandbox", "sandbox_url", metavar="URL", help="Use a Gmail sandbox at URL (tests, demo).")
@click.option("--service-account", metavar="FILE", help="Service-account key with domain-wide delegation.")
@click.option("--oauth-client", metavar="FILE", help="OAuth client JSON; runs the consent flow for ADDRESS.")
@click.option(
    "--refresh-token-stdin", is_flag=True, help="With --oauth-client: read a refresh token from stdin."
)
@click.option("--name", default="", help="Display name, e.g. 'Example Support'.")
@click.option("--no-verify", is_flag=True, help="Store without asking Gmail for the mailbox's profile.")
@click.option("--no-default-rules", is_flag=True, help="Start without the default rules and templates.")
@with_appcontext
def mailbox_add(
    address: str,
    sandbox_url: str | None,
    service_account: str | None,
    oauth_client: str | None,
    refresh_token_stdin: bool,
    name: str,
    no_verify: bool,
    no_default_rules: bool,
) -> None:
    """Connect the shared mailbox ADDRESS (with the default rules and templates)."""
    chosen = [x for x in (sandbox_url, service_account, oauth_client) if x is not None]
    if len(chosen) != 1:
        raise click.UsageError(
            "give exactly one of --sandbox URL, --service-account FILE, --oauth-client FILE"
        )
    try:
        spec = _mailbox_spec(address, sandbox_url, service_account, oauth_client, refresh_token_stdin, name)
        if not no_verify:
            _verify(spec)
        session = get_session()
        mailbox = add_mailbox(session, spec)
    except AccountError as exc:
        raise CliError(str(exc)) from exc
    if not no_default_rules:
        from server.defaults import install_defaults

        install_defaults(session, mailbox)
        session.commit()
    rules_note = "no rules" if no_default_rules else "default rules and templates"
    click.echo(f"mailbox {mailbox.address} added ({mailbox.auth_kind}, {rules_note})")


def _mailbox_spec(
    address: str,
    sandbox_url: str | None,
    service_account: str | None,
    oauth_client: str | None,
    refresh_token_stdin: bool,
    name: str,
) -> MailboxSpec:
    address = normalize_address(address)
    if sandbox_url is not None:
        return MailboxSpec(address, AuthKind.SANDBOX, check_api_url(sandbox_url), None, name)
    if service_account is not None:
        return MailboxSpec(
            address, AuthKind.SERVICE_ACCOUNT, None, load_service_account(service_account), name
        )
    assert oauth_client is not None
    client = load_oauth_client(oauth_client)
    section = client.get("installed") or client["web"]
    if refresh_token_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            raise AccountError("no refresh token on stdin")
    else:
        token = _run_consent_flow(client, address)
    secret = {
        "client_id": section["client_id"],
        "client_secret": section["client_secret"],
        "token_uri": section.get("token_uri", "https://oauth2.googleapis.com/token"),
        "refresh_token": token,
    }
    return MailboxSpec(address, AuthKind.OAUTH, None, secret, name)


def _run_consent_flow(client: dict[str, Any], address: str) -> str:
    """Google's installed-app consent on a loopback port; the admin signs in as ``address``."""
    from google_auth_oauthlib.flow import InstalledAppFlow

    from server.gmail.client import SCOPES

    flow = InstalledAppFlow.from_client_config(client, scopes=list(SCOPES))
    try:
        credentials = flow.run_local_server(
            host="localhost",
            port=0,
            open_browser=False,
            login_hint=address,
            authorization_prompt_message=f"Sign in as {address} and allow Postdesk: {{url}}",
            access_type="offline",
            prompt="consent",
            timeout_seconds=CONSENT_TIMEOUT_SECONDS,
        )
    except Exception as exc:  # oauthlib raises many kinds; all mean "no consent"
        raise AccountError(f"the Google consent did not complete: {exc}") from exc
    if credentials is None:
        raise AccountError(f"no answer from Google within {CONSENT_TIMEOUT_SECONDS // 60} minutes")
    if not credentials.refresh_token:
        raise AccountError("Google returned no refresh token; remove Postdesk's access and try again")
    return str(credentials.refresh_token)


def _verify(spec: MailboxSpec) -> None:
    """Ask Gmail for the mailbox's profile once, so a wrong URL or key fails now, not at the first sync."""
    from server.gmail.client import GmailClient, RetryPolicy, credentials_for
    from server.gmail.errors import GmailError

    try:
        credentials = credentials_for(spec.auth_kind.value, spec.secret, spec.address)
        client = GmailClient(
            spec.address, credentials, spec.api_endpoint, retry=RetryPolicy(max_attempts=1), timeout=10
        )
        profile = client.profile()
    except GmailError as exc:
        raise AccountError(
            f"cannot reach Gmail for {spec.address}: {exc} (use --no-verify to store anyway)"
        ) from exc
    if str(profile.get("emailAddress", "")).lower() != spec.address:
        raise AccountError(f"Gmail answered for {profile.get('emailAddress')!r}, not {spec.address}")


@mailbox_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@with_appcontext
def mailbox_list(as_json: bool) -> None:
    """List connected mailboxes."""
    rows = [
        {
            "address": m.address,
            "name": m.display_name,
            "auth": m.auth_kind,
            "endpoint": m.api_endpoint,
            "sync_state": m.sync_state,
            "history_id": m.history_id,
            "last_sync_at": m.last_sync_at.isoformat() if m.last_sync_at else None,
        }
        for m in list_mailboxes(get_session())
    ]
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if not rows:
        click.echo("no mailboxes yet: postdesk mailbox add ADDRESS --sandbox URL | --service-account FILE")
        return
    for row in rows:
        click.echo(
            f"{row['address']:<40} {row['auth']:<16} {row['sync_state']:<12} {row['last_sync_at'] or 'never'}"
        )


@click.command("sync")
@click.option("--mailbox", "address", metavar="ADDRESS", help="Only this mailbox (default: all).")
@click.option("--once", is_flag=True, help="Sync once and exit (default: poll every POSTDESK_POLL_SECONDS).")
@click.option("--no-send", is_flag=True, help="Run the rules but hold the Outbox mail (do not send).")
@with_appcontext
def sync_command(address: str | None, once: bool, no_send: bool) -> None:
    """Fetch new mail, file it under tickets, run the rules and send the Outbox mail that is due."""
    from server.sync_runner import SyncRunner

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


@click.group("tickets")
def tickets_group() -> None:
    """List and show tickets."""


@tickets_group.command("list")
@click.option("--mailbox", metavar="ADDRESS")
@click.option("--status", type=click.Choice([s.value for s in TicketStatus]))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@with_appcontext
def tickets_list(mailbox: str | None, status: str | None, as_json: bool) -> None:
    """List tickets, newest first."""
    from server.tickets.queries import list_tickets

    rows = list_tickets(get_session(), mailbox=mailbox, status=status)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for row in rows:
        click.echo(
            f"#{row['number']:<6} {row['status']:<8} {row['priority']:<7} {row['message_count']:>3} msg  "
            f"{(row['customer'] or '-'):<32} {row['subject'][:60]}"
        )


@tickets_group.command("show")
@click.argument("number", type=int)
@click.option("--mailbox", metavar="ADDRESS", help="Needed when there is more than one mailbox.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@with_appcontext
def tickets_show(number: int, mailbox: str | None, as_json: bool) -> None:
    """Show one ticket with its messages."""
    from server.tickets.queries import TicketNotFound, ticket_detail

    session = get_session()
    if mailbox is None:
        addresses = [m.address for m in list_mailboxes(session)]
        if len(addresses) != 1:
            raise CliError("give --mailbox ADDRESS (there is not exactly one mailbox)")
        mailbox = addresses[0]
    try:
        detail = ticket_detail(session, number, mailbox)
    except TicketNotFound as exc:
        raise CliError(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(detail, ensure_ascii=False, indent=2))
        return
    click.echo(f"#{detail['number']} {detail['subject']}  [{detail['status']}, {detail['priority']}]")
    click.echo(f"customer: {detail['customer'] or '-'}   assignee: {detail['assignee'] or '-'}")
    for message in detail["messages"]:
        arrow = "→" if message["direction"] == "outbound" else "←"
        click.echo(f"\n{arrow} {message['from']}  {message['sent_at']}")
        click.echo(message["new_text"])


@click.command("worker")
@with_appcontext
def worker_command() -> None:
    """Run the scheduled jobs (polls, sending, SLA watch); exactly one worker runs them at a time."""
    from server.scheduler import run_worker

    run_worker(current_app._get_current_object())  # type: ignore[attr-defined]


@click.command("web")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
def web_command(host: str, port: int, workers: int) -> None:
    """Serve the web app (gunicorn where available, else Werkzeug's threaded server)."""
    from server.serving import serve_web

    serve_web(host, port, workers)


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8025, show_default=True, type=click.IntRange(0, 65535))
@click.option("--seed", type=click.Choice(["demo", "empty"]), default="empty", show_default=True)
@click.option("--state", "state_file", metavar="FILE", help="Keep the mailboxes in FILE across restarts.")
@click.option("--no-rate-limit", is_flag=True, help="Do not answer 429 above 250 quota units per second.")
def sandbox_command(host: str, port: int, seed: str, state_file: str | None, no_rate_limit: bool) -> None:
    """Run the local Gmail API sandbox."""
    from server.serving import start_sandbox

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
    click.echo(f"Gmail sandbox listening on {server.url}  mailboxes: {users}", err=False)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--sandbox-port", default=8025, show_default=True, type=click.IntRange(0, 65535))
@with_appcontext
def demo_command(host: str, port: int, sandbox_port: int) -> None:
    """Start Postdesk on its embedded defaults: seeded sandbox, demo database, web app."""
    from server.serving import run_demo

    try:
        run_demo(current_app.instance_path, host, port, sandbox_port)
    except OSError as exc:
        raise CliError(
            f"cannot start the demo: {exc} (is another demo running? try --port/--sandbox-port)"
        ) from exc


def init_app(app: Flask) -> None:
    from server.cli_automation import (
        mailbox_settings_command,
        outbox_group,
        rules_group,
        sla_group,
        templates_group,
    )

    mailbox_group.add_command(mailbox_settings_command)

    app.cli.add_command(sla_group)
    app.cli.add_command(rules_group)
    app.cli.add_command(templates_group)
    app.cli.add_command(outbox_group)
    app.cli.add_command(mailbox_group)
    app.cli.add_command(sync_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(tickets_group)
    app.cli.add_command(web_command)
    app.cli.add_command(sandbox_command)
    app.cli.add_command(demo_command)
