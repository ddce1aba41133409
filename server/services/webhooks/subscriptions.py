"""Webhook subscriptions: a mailbox's addresses and the events each wants, checked when saved.

The signing secret is made here, kept encrypted (server.base.crypto) and shown once. Addresses pass
:mod:`server.services.outbound`'s checks (https outside demo mode, never inside the network).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.crypto import decrypt_json, encrypt_json
from server.base.models import ActorKind, Agent, Event, Mailbox, Webhook
from server.services import outbound

EVENT_TYPES = (
    "ticket.created",
    "ticket.updated",
    "ticket.assigned",
    "ticket.solved",
    "ticket.reopened",
    "ticket.merged",
    "message.received",
    "csat.received",
    "article.published",
)
#: The test delivery the settings page sends ("send test").
PING = "ping"
MAX_SUBSCRIPTIONS_PER_MAILBOX = 20
#: A delivery's worker holds it this long; a worker killed mid-send leaves it to the next one then.


class WebhookError(ValueError):
    """A subscription cannot be saved as asked; ``str(exc)`` says why."""


@dataclass(frozen=True)
class Settings:
    allow_http: bool
    allowed: tuple[outbound.Network, ...]
    retry: timedelta
    disable_after: timedelta
    backoff: timedelta
    timeout: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        return cls(
            allow_http=bool(config.get("DEMO")),
            allowed=outbound.networks(str(config.get("WEBHOOK_ALLOW_NETWORKS") or "")),
            retry=timedelta(seconds=float(config["WEBHOOK_RETRY_SECONDS"])),
            disable_after=timedelta(seconds=float(config["WEBHOOK_DISABLE_AFTER_SECONDS"])),
            backoff=timedelta(seconds=float(config["WEBHOOK_BACKOFF_SECONDS"])),
            timeout=float(config["WEBHOOK_TIMEOUT_SECONDS"]),
        )


# --- subscriptions ---------------------------------------------------------------------------------
def _events(chosen: list[str]) -> list[str]:
    unknown = sorted(set(chosen) - set(EVENT_TYPES))
    if unknown:
        raise WebhookError(f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}")
    if not chosen:
        raise WebhookError("choose at least one event")
    return [e for e in EVENT_TYPES if e in chosen]


def check_address(url: str, settings: Settings, resolve: outbound.Resolver = outbound.system_resolver) -> str:
    try:
        return outbound.check_url(
            url, allow_http=settings.allow_http, allowed=settings.allowed, resolve=resolve
        )
    except outbound.UnsafeURL as exc:
        raise WebhookError(str(exc)) from exc


def subscribe(
    session: Session,
    mailbox: Mailbox,
    *,
    url: str,
    events: list[str],
    by: Agent,
    settings: Settings,
    now: datetime,
    resolve: outbound.Resolver = outbound.system_resolver,
) -> tuple[Webhook, str]:
    """A new subscription with a fresh signing secret (returned once, to show)."""
    count = len(session.scalars(select(Webhook.id).where(Webhook.mailbox_id == mailbox.id)).all())
    if count >= MAX_SUBSCRIPTIONS_PER_MAILBOX:
        raise WebhookError(f"a mailbox has at most {MAX_SUBSCRIPTIONS_PER_MAILBOX} webhooks")
    secret = "whsec_" + secrets.token_urlsafe(32)
    hook = Webhook(
        mailbox_id=mailbox.id,
        url=check_address(url, settings, resolve),
        events=_events(events),
        secret_encrypted=encrypt_json({"secret": secret}),
        enabled=True,
        created_at=now,
        created_by_id=by.id,
    )
    session.add(hook)
    session.flush()
    audit(session, hook, "webhook_added", by, now, after={"url": hook.url, "events": hook.events})
    return hook, secret


def change(
    session: Session,
    hook: Webhook,
    *,
    url: str,
    events: list[str],
    enabled: bool,
    by: Agent,
    settings: Settings,
    now: datetime,
    resolve: outbound.Resolver = outbound.system_resolver,
) -> None:
    before = {"url": hook.url, "events": hook.events, "enabled": hook.enabled}
    hook.url = check_address(url, settings, resolve)
    hook.events = _events(events)
    if enabled and not hook.enabled:
        hook.disabled_reason = None
        hook.failing_since = None
    hook.enabled = enabled
    after = {"url": hook.url, "events": hook.events, "enabled": hook.enabled}
    if after != before:
        audit(session, hook, "webhook_changed", by, now, before=before, after=after)


def remove(session: Session, hook: Webhook, *, by: Agent, now: datetime) -> None:
    audit(session, hook, "webhook_removed", by, now, before={"url": hook.url})
    session.delete(hook)


def secret_of(hook: Webhook) -> str:
    return str(decrypt_json(hook.secret_encrypted)["secret"])


def audit(
    session: Session,
    hook: Webhook,
    kind: str,
    by: Agent | None,
    now: datetime,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """A subscription's change in the audit log (the mailbox's Events; ``by`` None: Postdesk itself)."""
    session.add(
        Event(
            mailbox_id=hook.mailbox_id,
            ticket_id=None,
            actor_kind=(ActorKind.AGENT if by else ActorKind.SYSTEM).value,
            actor_agent_id=by.id if by else None,
            kind=kind,
            before=before,
            after=(after or {}) | {"webhook": hook.id},
            created_at=now,
        )
    )
