"""``postdesk token``: make, list and revoke REST API tokens (the settings page's API tokens, for scripts)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from flask.cli import with_appcontext
from sqlalchemy import func, select

from server.base.db import get_session
from server.base.models import Agent, ApiToken, Role
from server.faces.cli.common import CliError
from server.services import api_tokens

SCOPES = click.Choice([scope.value for scope in api_tokens.Scope])


def _agent(email: str) -> Agent:
    agent = get_session().scalar(select(Agent).where(func.lower(Agent.email) == email.strip().lower()))
    if agent is None:
        raise CliError(f"no agent {email!r} (postdesk agent list)")
    return agent


def _first_admin() -> Agent:
    admin = get_session().scalar(
        select(Agent).where(Agent.role == Role.ADMIN.value, Agent.active.is_(True)).order_by(Agent.id)
    )
    if admin is None:
        raise CliError("no active admin: add one first (postdesk agent add EMAIL --role admin)")
    return admin


@click.group("token")
def token_group() -> None:
    """REST API tokens: make one for a person, list them, revoke one."""


@token_group.command("create")
@click.argument("email")
@click.option("--name", required=True, help="What the token is for (shown on the settings page).")
@click.option(
    "--scope", "scopes", type=SCOPES, multiple=True, required=True, help="A scope (repeat for more)."
)
@click.option("--days", type=click.IntRange(1, 730), help="Expires after this many days (default: never).")
@with_appcontext
def token_create_command(email: str, name: str, scopes: tuple[str, ...], days: int | None) -> None:
    """Make a token for EMAIL, made by the first admin; prints the token once (keep it: only its hash is kept)."""
    session = get_session()
    now = datetime.now(UTC)
    try:
        token, secret = api_tokens.create(
            session, owner=_agent(email), name=name, scopes=list(scopes),
            expires_at=now + timedelta(days=days) if days else None, by=_first_admin(), now=now,
        )  # fmt: skip
    except api_tokens.TokenError as exc:
        raise CliError(str(exc)) from exc
    session.commit()
    click.echo(secret)
    click.echo(f"token {token.id} for {email}: {', '.join(token.scopes)}", err=True)


@token_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document (for scripts).")
@with_appcontext
def token_list_command(as_json: bool) -> None:
    """Every token (never the secret): id, owner, name, scopes, created, expires, last used, revoked."""
    session = get_session()
    rows = session.execute(
        select(ApiToken, Agent.email).join(Agent, Agent.id == ApiToken.agent_id).order_by(ApiToken.id)
    )
    found: list[dict[str, Any]] = [
        {
            "id": token.id,
            "owner": email,
            "name": token.name,
            "prefix": token.prefix,
            "scopes": token.scopes,
            "created_at": token.created_at.isoformat(),
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
            "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
            "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
        }
        for token, email in rows
    ]
    if as_json:
        click.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    for row in found:
        state = "revoked" if row["revoked_at"] else "active"
        click.echo(
            f"{row['id']:>5}  {row['prefix']}…  {row['owner']}  {row['name']}  [{' '.join(row['scopes'])}]  {state}"
        )


@token_group.command("revoke")
@click.argument("token_id", type=click.IntRange(1, 2**31 - 1))
@with_appcontext
def token_revoke_command(token_id: int) -> None:
    """Revoke a token now (as the first admin)."""
    session = get_session()
    token = session.get(ApiToken, token_id)
    if token is None:
        raise CliError(f"no token {token_id} (postdesk token list)")
    api_tokens.revoke(session, token, by=_first_admin(), now=datetime.now(UTC))
    session.commit()
    click.echo(f"token {token_id} revoked")
