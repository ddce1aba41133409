"""Mailboxes and agents: connecting a shared mailbox, listing them, adding and changing team members.

Every face (the ``postdesk`` command, the settings page) calls these functions, so an agent is
validated once: the address, the role, the language, the time zone, the mailboxes, and the rule that
the last active admin cannot be demoted or deactivated. Each change is an audit ``Event``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, object_session

from server.base.crypto import encrypt_json
from server.base.models import Agent, AuthKind, Locale, Mailbox, Role, WebSession, mailbox_members
from server.services.tickets import SYSTEM, Actor, record_event

#: The longest name a person may have (the width of ``agents.name``).
MAX_NAME_LENGTH = 200

_ADDRESS = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


class AccountError(ValueError):
    """A mailbox or agent cannot be added or changed as asked; the message says why, in one line, and
    ``problems`` names the field of each problem (for a form to show it next to the field)."""

    def __init__(self, message: str, problems: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or {}


class StaleEdit(AccountError):
    """The record changed since the form was opened: nothing was saved."""


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
    return check_service_account(_read_json_file(path, "service-account"), path)


def parse_service_account(content: bytes, name: str = "the uploaded key") -> dict[str, Any]:
    """An uploaded key file (the settings page), checked like a file given to the CLI."""
    try:
        data = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise AccountError(f"{name} is not valid JSON", {"key": "not a JSON key file"}) from exc
    if not isinstance(data, dict):
        raise AccountError(f"{name} is not a JSON object", {"key": "not a JSON key file"})
    return check_service_account(data, name)


def check_service_account(data: dict[str, Any], name: str) -> dict[str, Any]:
    missing = [k for k in ("type", "client_email", "private_key", "token_uri") if not data.get(k)]
    if data.get("type") != "service_account" or missing:
        problem = f"not a service-account key file (missing: {', '.join(missing) or 'type'})"
        raise AccountError(f"{name} is {problem}", {"key": problem})
    from google.oauth2 import service_account

    try:
        service_account.Credentials.from_service_account_info(data)
    except (ValueError, TypeError) as exc:
        raise AccountError(
            f"{name}: the private key cannot be read", {"key": "the private key cannot be read"}
        ) from exc
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


def add_mailbox(session: Session, spec: MailboxSpec, *, actor: Actor = SYSTEM) -> Mailbox:
    """Store a new mailbox (credentials encrypted, never in the event); a duplicate address is an
    :class:`AccountError`."""
    address = normalize_address(spec.address)
    if session.scalar(select(Mailbox.id).where(Mailbox.address == address)) is not None:
        raise AccountError(f"mailbox {address} already exists", {"address": "already connected"})
    mailbox = Mailbox(
        address=address,
        display_name=spec.display_name,
        auth_kind=spec.auth_kind.value,
        api_endpoint=spec.api_endpoint,
        credentials_encrypted=encrypt_json(spec.secret) if spec.secret else None,
    )
    session.add(mailbox)
    session.flush()
    record_event(session, None, "mailbox_added", actor=actor, mailbox_id=mailbox.id,
                 after={"mailbox": address, "auth": spec.auth_kind.value})  # fmt: skip
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent add of the same address
        session.rollback()
        raise AccountError(f"mailbox {address} already exists") from exc
    return mailbox


def set_paused(session: Session, mailbox: Mailbox, paused: bool, *, actor: Actor = SYSTEM) -> None:
    """Pause (the worker neither syncs the mailbox nor sends its mail) or resume it; committed."""
    if mailbox.paused != paused:
        mailbox.paused = paused
        record_event(session, None, "mailbox_paused" if paused else "mailbox_resumed", actor=actor,
                     mailbox_id=mailbox.id, after={"mailbox": mailbox.address})  # fmt: skip
    session.commit()


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


@dataclass(frozen=True)
class AgentChange:
    """What a face asks to set on an agent; ``None`` leaves a field as it is."""

    name: str | None = None
    role: str | None = None
    locale: str | None = None
    timezone: str | None = None
    active: bool | None = None
    away: bool | None = None
    #: The addresses of the mailboxes the agent works in (replaces the list).
    mailboxes: tuple[str, ...] | None = None
    #: Their choices of mail, e.g. ``{"digest": False}`` (merged into what is stored).
    notifications: dict[str, bool] | None = None
    #: The mailboxes they are an admin of (of those they work in; replaces the list).
    admin_of: tuple[str, ...] | None = None


#: The kinds of mail a person may turn off for themself.
NOTIFICATION_KINDS = ("digest", "reminders", "weekly_report", "mentions", "following")


def _snapshot(agent: Agent) -> dict[str, Any]:
    return {
        "email": agent.email,
        "name": agent.name,
        "role": agent.role,
        "locale": agent.locale,
        "timezone": agent.timezone,
        "active": agent.active,
        "away": agent.away,
        "mailboxes": sorted(m.address for m in agent.mailboxes),
        "admin_of": sorted(m.address for m in agent.mailboxes if m.id in administered(agent)),
        "notifications": {kind: agent.wants(kind) for kind in NOTIFICATION_KINDS},
    }


def administered(agent: Agent) -> set[int]:
    """The ids of the mailboxes the agent is an admin of (as a member; global admins aside)."""
    session = object_session(agent)
    if session is None or agent.id is None:
        return set()
    query = select(mailbox_members.c.mailbox_id).where(
        mailbox_members.c.agent_id == agent.id, mailbox_members.c.is_admin.is_(True)
    )
    return set(session.scalars(query))


def manages_mailbox(agent: Agent, mailbox_id: int) -> bool:
    """An admin, or an admin of this mailbox: may change its settings, rules, templates, policies."""
    return Role(agent.role) is Role.ADMIN or mailbox_id in administered(agent)


def _lookup_mailboxes(
    session: Session, addresses: tuple[str, ...], field: str, problems: dict[str, str]
) -> list[Mailbox]:
    found: list[Mailbox] = []
    for address in dict.fromkeys(addresses):
        try:
            mailbox = session.scalar(select(Mailbox).where(Mailbox.address == normalize_address(address)))
        except AccountError:
            mailbox = None
        if mailbox is None:
            problems[field] = f"no mailbox {address}"
        else:
            found.append(mailbox)
    return found


def _apply_mailboxes(
    session: Session, agent: Agent, mailboxes: list[Mailbox] | None, admin_of: list[Mailbox] | None
) -> None:
    """Set the agent's mailboxes and which of them they administer; an admin of a mailbox they do not
    work in is refused."""
    if mailboxes is not None:
        agent.mailboxes = mailboxes
    if admin_of is None:
        return
    outside = [m.address for m in admin_of if m not in agent.mailboxes]
    if outside:
        problem = f"admin only of mailboxes they work in (not {', '.join(outside)})"
        raise AccountError(f"admin_of: {problem}", {"admin_of": problem})
    session.flush()
    wanted = [m.id for m in admin_of]
    session.execute(
        update(mailbox_members)
        .where(mailbox_members.c.agent_id == agent.id)
        .values(is_admin=mailbox_members.c.mailbox_id.in_(wanted))
    )


def _validated(
    session: Session, change: AgentChange
) -> tuple[dict[str, Any], list[Mailbox] | None, list[Mailbox] | None]:
    """The change's plain fields, checked, and its mailboxes looked up; every problem in one error."""
    problems: dict[str, str] = {}
    values: dict[str, Any] = {}
    if change.name is not None:
        name = " ".join(change.name.split())
        if len(name) > MAX_NAME_LENGTH or any(ord(c) < 32 for c in change.name if c not in "\t\n"):
            problems["name"] = f"at most {MAX_NAME_LENGTH} printable characters"
        values["name"] = name
    if change.role is not None:
        if change.role not in {r.value for r in Role}:
            problems["role"] = f"one of {', '.join(r.value for r in Role)}"
        values["role"] = change.role
    if change.locale is not None:
        if change.locale not in {loc.value for loc in Locale}:
            problems["locale"] = f"one of {', '.join(loc.value for loc in Locale)}"
        values["locale"] = change.locale
    if change.timezone is not None:
        try:
            ZoneInfo(change.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems["timezone"] = f"unknown time zone {change.timezone!r} (e.g. Europe/Moscow)"
        values["timezone"] = change.timezone
    for flag in ("active", "away"):
        if getattr(change, flag) is not None:
            values[flag] = bool(getattr(change, flag))
    if change.notifications is not None:
        unknown = [k for k in change.notifications if k not in NOTIFICATION_KINDS]
        if unknown or not all(isinstance(v, bool) for v in change.notifications.values()):
            problems["notifications"] = f"true or false for each of {', '.join(NOTIFICATION_KINDS)}"
        values["notifications"] = dict(change.notifications)
    mailboxes = (
        None
        if change.mailboxes is None
        else _lookup_mailboxes(session, change.mailboxes, "mailboxes", problems)
    )
    admin_of = (
        None if change.admin_of is None else _lookup_mailboxes(session, change.admin_of, "admin_of", problems)
    )
    if problems:
        raise AccountError("; ".join(f"{field}: {text}" for field, text in problems.items()), problems)
    return values, mailboxes, admin_of


def agent_version(agent: Agent) -> str:
    """A fingerprint of what a form shows of the agent: a save over another version is refused."""
    snapshot = json.dumps(_snapshot(agent), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(snapshot.encode()).hexdigest()[:16]


def _active_admins(session: Session) -> int:
    session.flush()
    count = session.scalar(
        select(func.count()).select_from(Agent).where(Agent.role == Role.ADMIN.value, Agent.active.is_(True))
    )
    return int(count or 0)


def add_agent(
    session: Session, email: str, change: AgentChange, *, actor: Actor = SYSTEM, joined: bool = False
) -> Agent:
    """Add a person to the team (committed, with an ``agent_added`` event). ``joined``: they added
    themself by signing in from an allowed domain, and are listed as new until an admin saves them."""
    address = normalize_address(email)
    values, mailboxes, admin_of = _validated(session, change)
    if session.scalar(select(Agent.id).where(Agent.email == address)) is not None:
        raise AccountError(f"agent {address} already exists: see postdesk agent set")
    agent = Agent(email=address, is_new=joined, **{"role": Role.AGENT.value, **values})
    session.add(agent)
    try:
        _apply_mailboxes(session, agent, mailboxes or [], admin_of)
    except AccountError:
        session.rollback()
        raise
    session.flush()
    record_event(
        session,
        None,
        "agent_added",
        actor=actor,
        after=_snapshot(agent) | ({"via": "sign-in"} if joined else {}),
    )
    try:
        session.commit()
    except IntegrityError as exc:  # added at the same moment by someone else
        session.rollback()
        raise AccountError(f"agent {address} already exists") from exc
    return agent


def update_agent(
    session: Session,
    email: str,
    change: AgentChange,
    *,
    actor: Actor = SYSTEM,
    version: str | None = None,
) -> Agent:
    """Change a person (committed, with an ``agent_changed`` event naming before and after).

    ``version`` (from :func:`agent_version` when a form was opened) refuses to save over a newer
    change with :class:`StaleEdit`."""
    address = normalize_address(email)
    agent = session.scalar(select(Agent).where(Agent.email == address))
    if agent is None:
        raise AccountError(f"no agent {address}: see postdesk agent list")
    if version is not None and version != agent_version(agent):
        raise StaleEdit(f"{address} was changed by someone else since the form was opened: nothing was saved")
    values, mailboxes, admin_of = _validated(session, change)
    before = _snapshot(agent)
    admins_before = _active_admins(session)
    if actor.agent_id is not None and actor.agent_id != agent.id:
        agent.is_new = False  # someone else (an admin) has now looked at them
    for key, value in values.items():
        if key == "notifications":
            value = {**(agent.notifications or {}), **value}
        setattr(agent, key, value)
    try:
        _apply_mailboxes(session, agent, mailboxes, admin_of)
    except AccountError:
        session.rollback()
        raise
    if admins_before and not _active_admins(session):  # nobody could run the settings any more
        session.rollback()
        raise AccountError(
            "the last active admin cannot be demoted or deactivated: make someone else admin first"
        )
    if not agent.active:  # a deactivated person is signed out of the settings pages everywhere
        session.execute(delete(WebSession).where(WebSession.agent_id == agent.id))
    after = _snapshot(agent)
    if after != before:
        changed = [key for key in after if after[key] != before[key]]
        record_event(
            session,
            None,
            "agent_changed",
            actor=actor,
            before={key: before[key] for key in changed} | {"email": address},
            after={key: after[key] for key in changed} | {"email": address},
        )
    session.commit()
    return agent


def list_agents(session: Session, *, offset: int = 0, limit: int | None = None) -> list[Agent]:
    query = select(Agent).order_by(Agent.email).offset(max(0, offset))
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))
