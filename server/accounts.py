"""Mailboxes and agents: connecting a shared mailbox, listing them, adding team members."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.crypto import encrypt_json
from server.models import Agent, AuthKind, Mailbox, Role

_ADDRESS = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


class AccountError(ValueError):
    """A mailbox or agent cannot be added as asked; the message says why, in one line."""


def normalize_address(address: str) -> str:
    cleaned = address.strip().lower()
    if len(cleaned) > 320 or not _ADDRESS.match(cleaned):
        raise AccountError(f"not an email address: {address!r}")
    return cleaned


def check_api_url(url: str) -> str:
    """An http(s) URL with a host, normalised to end with one slash (the client joins paths to it)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise AccountError(f"not an http(s) URL: {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise AccountError(f"bad port in URL: {url!r}") from exc
    return url.strip().rstrip("/") + "/"


def _read_json_file(path: str, what: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise AccountError(f"{what} file not found: {path}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise AccountError(f"{what} file is not valid JSON: {path}") from exc
    if not isinstance(data, dict):
        raise AccountError(f"{what} file is not a JSON object: {path}")
    return data


def load_service_account(path: str) -> dict[str, Any]:
    """The key file of a service account with domain-wide delegation, checked for what Google needs."""
    data = _read_json_file(path, "service-account")
    missing = [k for k in ("type", "client_email", "private_key", "token_uri") if not data.get(k)]
    if data.get("type") != "service_account" or missing:
        raise AccountError(
            f"{path} is not a service-account key file (missing: {', '.join(missing) or 'type'})"
        )
    return data


def load_oauth_client(path: str) -> dict[str, Any]:
    """The OAuth client (``installed`` or ``web``) from Google Cloud's client_secret JSON."""
    data = _read_json_file(path, "OAuth client")
    client = data.get("installed") or data.get("web")
    if not isinstance(client, dict) or not client.get("client_id") or not client.get("client_secret"):
        raise AccountError(
            f"{path} is not an OAuth client file (expected 'installed' or 'web' with client_id)"
        )
    return data


@dataclass(frozen=True)
class MailboxSpec:
    address: str
    auth_kind: AuthKind
    api_endpoint: str | None = None
    secret: dict[str, Any] | None = None
    display_name: str = ""


def add_mailbox(session: Session, spec: MailboxSpec) -> Mailbox:
    """Store a new mailbox (credentials encrypted); a duplicate address is an :class:`AccountError`."""
    address = normalize_address(spec.address)
    if session.scalar(select(Mailbox.id).where(Mailbox.address == address)) is not None:
        raise AccountError(f"mailbox {address} already exists")
    mailbox = Mailbox(
        address=address,
        display_name=spec.display_name,
        auth_kind=spec.auth_kind.value,
        api_endpoint=spec.api_endpoint,
        credentials_encrypted=encrypt_json(spec.secret) if spec.secret else None,
    )
    session.add(mailbox)
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent add of the same address
        session.rollback()
        raise AccountError(f"mailbox {address} already exists") from exc
    return mailbox


def list_mailboxes(session: Session) -> list[Mailbox]:
    return list(session.scalars(select(Mailbox).order_by(Mailbox.address)))


def ensure_agent(
    session: Session,
    email: str,
    name: str = "",
    *,
    role: Role = Role.AGENT,
    locale: str = "en",
    mailbox: Mailbox | None = None,
) -> Agent:
    """The agent with this email (created if new), made a member of ``mailbox`` when given."""
    address = normalize_address(email)
    agent = session.scalar(select(Agent).where(Agent.email == address))
    if agent is None:
        agent = Agent(email=address, name=name, role=role.value, locale=locale)
        session.add(agent)
    if mailbox is not None and mailbox not in agent.mailboxes:
        agent.mailboxes.append(mailbox)
    session.commit()
    return agent
