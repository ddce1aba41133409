"""``postdesk mailbox``: connect, list and configure shared mailboxes."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
import yaml
from flask.cli import with_appcontext

from server.base.db import get_session
from server.base.models import (
    AuthKind,
)
from server.faces.cli.common import CliError, mailbox_named, problems_error, retime_batch, yaml_file
from server.services.accounts import (
    AccountError,
    MailboxSpec,
    add_mailbox,
    check_api_url,
    list_mailboxes,
    load_oauth_client,
    load_service_account,
    normalize_address,
)

#: How long `mailbox add --oauth-client` waits for the admin to finish Google's consent page.
CONSENT_TIMEOUT_SECONDS = 300


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
        from server.services.defaults import install_defaults

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

    from server.gmail.credentials import SCOPES

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
    from server.gmail.client import GmailClient, RetryPolicy
    from server.gmail.credentials import credentials_for
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


@mailbox_group.command("settings")
@click.argument("address", metavar="ADDRESS")
@click.argument("path", metavar="FILE", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@with_appcontext
def mailbox_settings_command(address: str, path: str | None, as_json: bool) -> None:
    """Show the mailbox's settings, or replace them with FILE (YAML/JSON; every problem is listed)."""
    from server.services.mailbox_settings import DEFAULTS, REMINDER_DEFAULTS, SettingsError, save

    mailbox = mailbox_named(address)
    session = get_session()
    if path is not None:
        try:
            refreshed = save(session, mailbox, yaml_file(path), batch=retime_batch())
        except SettingsError as exc:
            session.rollback()
            raise problems_error(path, exc.problems) from exc
        click.echo(f"settings of {mailbox.address} saved; {refreshed} open tickets re-timed")
        return
    stored = dict(mailbox.settings or {})
    shown = {**DEFAULTS, **stored, "reminders": {**REMINDER_DEFAULTS, **(stored.get("reminders") or {})}}
    if as_json:
        click.echo(json.dumps(shown, ensure_ascii=False, indent=2))
    else:
        click.echo(yaml.safe_dump(shown, allow_unicode=True, sort_keys=False).rstrip())
