"""Outgoing webhooks: subscriptions per mailbox, deliveries decided with the change, sent by the worker.

**Deciding.** Any transaction that records a ticket's Event (or files a customer's message) notes
what happened; just before it commits, :func:`_write_deliveries` writes one ``WebhookDelivery`` per
subscription and event type (one ``ticket.updated`` per ticket per transaction, whatever changed), in
that same transaction: a change that is rolled back sends nothing, one that commits is delivered.

**Sending.** :func:`deliver_due` (the worker's clock) claims due deliveries, POSTs each body signed
with the subscription's secret — ``Postdesk-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>.<body>">`` — and records the attempt. A 2xx is delivered; anything else is retried with
exponential backoff (``WEBHOOK_BACKOFF_SECONDS`` doubling, at most an hour apart) until the delivery
is ``WEBHOOK_RETRY_SECONDS`` old. Receivers de-duplicate by the delivery id (``Postdesk-Delivery``;
also the body's ``id``): delivery is at least once. A subscription that has failed without a single
success for ``WEBHOOK_DISABLE_AFTER_SECONDS`` is turned off and the admins get an email.

Addresses are checked when saved and again on every connection (:mod:`server.outbound`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from sqlalchemy import delete, event, or_, select, update
from sqlalchemy.orm import Session

from server import outbound
from server.crypto import decrypt_json, encrypt_json
from server.models import (
    ActorKind,
    Agent,
    CsatRating,
    Direction,
    Event,
    Mailbox,
    Message,
    OutboxKind,
    Role,
    Ticket,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    mailbox_members,
)
from server.tickets.documents import ticket_document

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "ticket.created",
    "ticket.updated",
    "ticket.assigned",
    "ticket.solved",
    "ticket.reopened",
    "message.received",
    "csat.received",
)
#: The test delivery the settings page sends ("send test").
PING = "ping"
MAX_SUBSCRIPTIONS_PER_MAILBOX = 20
#: A delivery's worker holds it this long; a worker killed mid-send leaves it to the next one then.
CLAIM = timedelta(minutes=2)
#: The longest wait between two tries of one delivery.
MAX_BACKOFF = timedelta(hours=1)
#: The receiver's answer kept in the log (the first characters of it).
KEPT_ANSWER = 500
BATCH = 50
CLOSED = ("solved", "closed")
#: Event kinds that are an update of the ticket (besides the ones with a type of their own).
UPDATES = frozenset(
    {
        "priority_changed",
        "tag_added",
        "tag_removed",
        "snoozed",
        "unsnoozed",
        "sla_policy_changed",
        "note_added",
        "changed_in_gmail",
    }
)
_PENDING = "postdesk_webhook_changes"


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


# --- subscriptions ----------------------------------------------------------------------------------
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
    _audit(session, hook, "webhook_added", by, now, after={"url": hook.url, "events": hook.events})
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
        _audit(session, hook, "webhook_changed", by, now, before=before, after=after)


def remove(session: Session, hook: Webhook, *, by: Agent, now: datetime) -> None:
    _audit(session, hook, "webhook_removed", by, now, before={"url": hook.url})
    session.delete(hook)


def secret_of(hook: Webhook) -> str:
    return str(decrypt_json(hook.secret_encrypted)["secret"])


def _audit(
    session: Session,
    hook: Webhook,
    kind: str,
    by: Agent | None,
    now: datetime,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
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


# --- deciding: what happened in this transaction -------------------------------------------------------
def _event_types(found: Event) -> list[str]:
    after, before = found.after or {}, found.before or {}
    if found.kind == "ticket_created":
        return ["ticket.created"]
    if found.kind == "assigned":
        return ["ticket.assigned"]
    if found.kind == "csat_rated":
        return ["csat.received"]
    if found.kind == "status_changed":
        was, now = before.get("status"), after.get("status")
        if now in CLOSED and was not in CLOSED:
            return ["ticket.solved"]
        if was in CLOSED and now not in CLOSED:
            return ["ticket.reopened"]
        return ["ticket.updated"]
    if found.kind in UPDATES:
        return ["ticket.updated"]
    return []


def _noted(session: Session, flush_context: Any) -> None:
    """After each flush: remember the ticket changes and customer messages it wrote."""
    changes: list[tuple[int, str, dict[str, Any]]] = session.info.setdefault(_PENDING, [])
    for obj in session.new:
        if isinstance(obj, Event) and obj.ticket_id is not None:
            for kind in _event_types(obj):
                changes.append((obj.ticket_id, kind, {"change": obj.kind, "event_id": obj.id}))
        elif (
            isinstance(obj, Message)
            and obj.ticket_id is not None
            and obj.direction == Direction.INBOUND.value
            and not obj.is_auto
        ):
            changes.append((obj.ticket_id, "message.received", {"message_id": obj.id}))


def _forget(session: Session, previous_transaction: Any = None) -> None:
    session.info.pop(_PENDING, None)


def _write_deliveries(session: Session) -> None:
    """Before the commit: a delivery per subscription for what this transaction did."""
    if any(isinstance(obj, (Event, Message)) for obj in session.new):
        session.flush()  # what is not flushed yet joins the list (through _noted)
    changes = session.info.pop(_PENDING, None)
    if not changes:
        return
    ticket_ids = sorted({ticket_id for ticket_id, _, _ in changes})
    mailbox_of = dict(
        session.execute(select(Ticket.id, Ticket.mailbox_id).where(Ticket.id.in_(ticket_ids))).all()
    )
    hooks = session.scalars(
        select(Webhook).where(Webhook.enabled.is_(True), Webhook.mailbox_id.in_(set(mailbox_of.values())))
    ).all()
    if not hooks:
        return
    now = datetime.now(UTC)
    grouped: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for ticket_id, kind, detail in changes:
        grouped.setdefault((ticket_id, kind), []).append(detail)
    documents: dict[int, dict[str, Any]] = {}
    for (ticket_id, kind), details in grouped.items():
        targets = [h for h in hooks if h.mailbox_id == mailbox_of.get(ticket_id) and kind in h.events]
        if not targets:
            continue
        ticket = session.get(Ticket, ticket_id)
        if ticket is None:
            continue
        if ticket_id not in documents:
            documents[ticket_id] = ticket_document(ticket)
        # A customer message is an event each; everything else once per ticket per transaction.
        for data in (
            _data(session, kind, details)
            if kind == "message.received"
            else [_data(session, kind, details)[0]]
        ):
            for hook in targets:
                session.add(_delivery(hook, kind, ticket_id, documents[ticket_id], data, now))


def _data(session: Session, kind: str, details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the event adds to the ticket: the message, the rating, or which changes were made."""
    if kind == "message.received":
        found = []
        for detail in details:
            message = session.get(Message, detail["message_id"])
            if message is not None:
                found.append(
                    {
                        "message": {
                            "id": message.id,
                            "from_email": message.from_email,
                            "from_name": message.from_name,
                            "subject": message.subject,
                            "sent_at": message.sent_at.isoformat(),
                            "text": message.text[:20_000],
                        }
                    }
                )
        return found
    if kind == "csat.received":
        events = [session.get(Event, d["event_id"]) for d in details]
        rating = session.get(CsatRating, events[-1].ticket_id) if events and events[-1] else None
        return [
            {"rating": {"value": rating.value, "score": rating.score, "comment": rating.comment}}
            if rating
            else {}
        ]
    return [{"changes": sorted({d["change"] for d in details})}]


def _delivery(
    hook: Webhook,
    kind: str,
    ticket_id: int | None,
    ticket: dict[str, Any] | None,
    data: dict[str, Any],
    now: datetime,
) -> WebhookDelivery:
    delivery_id = str(uuid.uuid4())
    body = {
        "id": delivery_id,
        "type": kind,
        "created_at": now.isoformat(),
        "mailbox_id": hook.mailbox_id,
        "ticket": ticket,
    } | data
    return WebhookDelivery(
        id=delivery_id,
        webhook_id=hook.id,
        event_type=kind,
        ticket_id=ticket_id,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        state="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )


def install() -> None:
    """Listen to every session of the process (once): deliveries join the transactions that decide them."""
    if not event.contains(Session, "after_flush", _noted):
        event.listen(Session, "after_flush", _noted)
        event.listen(Session, "before_commit", _write_deliveries)
        event.listen(Session, "after_rollback", _forget)


# --- sending ----------------------------------------------------------------------------------------------
def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``Postdesk-Signature``'s value: the time and the HMAC-SHA256 of ``"<time>.<body>"``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@dataclass(frozen=True)
class Outcome:
    status: int | None
    error: str | None
    milliseconds: int

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post(hook: Webhook, delivery: WebhookDelivery, settings: Settings) -> Outcome:
    """One try: POST the signed body to the subscription's address (the guard checks the peer)."""
    body = delivery.body.encode()
    started = time.monotonic()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Postdesk-Webhooks/1",
        "Postdesk-Delivery": delivery.id,
        "Postdesk-Event": delivery.event_type,
        "Postdesk-Signature": signature(secret_of(hook), int(time.time()), body),
    }
    try:
        with outbound.guarded_session(settings.allowed) as http:
            answer = http.post(
                hook.url, data=body, headers=headers, timeout=settings.timeout, allow_redirects=False
            )
            status, error = answer.status_code, None if answer.ok else answer.text[:KEPT_ANSWER]
    except requests.RequestException as exc:
        refused = outbound.refusal_in(exc)
        status, error = None, f"refused: {refused}" if refused else f"{type(exc).__name__}: {str(exc)[:300]}"
    return Outcome(status, error, int((time.monotonic() - started) * 1000))


def _backoff(attempts: int, settings: Settings) -> timedelta:
    wait: timedelta = settings.backoff * (
        1 << min(max(0, attempts - 1), 20)
    )  # 2^20 × the first wait: past any cap
    return min(wait, MAX_BACKOFF)


def _claim(session: Session, now: datetime, limit: int) -> list[str]:
    """Take up to ``limit`` due deliveries for this worker (a conditional UPDATE each: one taker)."""
    due = session.scalars(
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.state == "pending",
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    ).all()
    taken = []
    for delivery_id in due:
        result = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.state == "pending",
                or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
            )
            .values(claimed_until=now + CLAIM)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]  # an UPDATE's result has a rowcount
            taken.append(delivery_id)
    session.commit()
    return taken


def attempt(session: Session, delivery: WebhookDelivery, settings: Settings, now: datetime) -> Outcome:
    """Try one delivery now and record the outcome (the caller commits)."""
    hook = session.get(Webhook, delivery.webhook_id)
    assert hook is not None  # a delivery goes with its subscription (ON DELETE CASCADE)
    outcome = post(hook, delivery, settings)
    at = now
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            at=at,
            status=outcome.status,
            error=outcome.error,
            milliseconds=outcome.milliseconds,
        )
    )
    delivery.attempts += 1
    delivery.last_status = outcome.status
    delivery.last_error = outcome.error
    delivery.claimed_until = None
    if outcome.ok:
        delivery.state = "delivered"
        delivery.delivered_at = at
        hook.failing_since = None
        return outcome
    if delivery.event_type != PING:
        hook.failing_since = hook.failing_since or at
    if at - delivery.created_at >= settings.retry or delivery.event_type == PING:
        delivery.state = "failed"
    else:
        delivery.next_attempt_at = at + _backoff(delivery.attempts, settings)
    if hook.enabled and hook.failing_since is not None and at - hook.failing_since >= settings.disable_after:
        _disable(session, hook, at)
    return outcome


def deliver_due(
    session: Session, settings: Settings, *, now: datetime | None = None, limit: int = BATCH
) -> int:
    """Send the deliveries that are due (a batch); returns how many were tried."""
    moment = now or datetime.now(UTC)
    tried = 0
    for delivery_id in _claim(session, moment, limit):
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.state != "pending":
            continue
        hook = session.get(Webhook, delivery.webhook_id)
        if hook is None or not hook.enabled:
            delivery.state, delivery.claimed_until = "failed", None
            delivery.last_error = "the subscription is turned off"
        else:
            outcome = attempt(session, delivery, settings, moment)
            log.info(
                "webhook_delivery id=%s webhook=%s type=%s status=%s attempts=%d state=%s",
                delivery.id,
                hook.id,
                delivery.event_type,
                outcome.status,
                delivery.attempts,
                delivery.state,
            )
        session.commit()
        tried += 1
    return tried


def prune(session: Session, *, now: datetime, keep: timedelta) -> int:
    """Forget finished deliveries (and their attempts) older than ``keep``; waiting ones stay."""
    old = select(WebhookDelivery.id).where(
        WebhookDelivery.state != "pending", WebhookDelivery.created_at < now - keep
    )
    ids = list(session.scalars(old.limit(10_000)))
    if ids:
        session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
        session.execute(delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids)))
    session.commit()
    return len(ids)


def send_test(session: Session, hook: Webhook, settings: Settings, now: datetime) -> Outcome:
    """The "send test" button: a ``ping`` delivery, tried once at once and logged like the others."""
    delivery = _delivery(hook, PING, None, None, {"message": "A test from Postdesk."}, now)
    session.add(delivery)
    session.flush()
    return attempt(session, delivery, settings, now)


def _disable(session: Session, hook: Webhook, now: datetime) -> None:
    """A day of failures: turn the subscription off, give up its waiting deliveries, tell the admins."""
    from server.gmail.send import enqueue

    assert hook.failing_since is not None
    hook.enabled = False
    hook.disabled_reason = f"every delivery failed since {hook.failing_since.isoformat(timespec='minutes')}"
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == hook.id, WebhookDelivery.state == "pending")
        .values(state="failed", last_error="the subscription was turned off", claimed_until=None)
    )
    _audit(
        session, hook, "webhook_disabled", None, now, after={"url": hook.url, "reason": hook.disabled_reason}
    )
    mailbox = session.get(Mailbox, hook.mailbox_id)
    assert mailbox is not None
    admins = session.scalars(
        select(Agent)
        .where(Agent.active.is_(True))
        .where(
            or_(
                Agent.role == Role.ADMIN.value,
                Agent.id.in_(
                    select(mailbox_members.c.agent_id).where(
                        mailbox_members.c.mailbox_id == hook.mailbox_id, mailbox_members.c.is_admin.is_(True)
                    )
                ),
            )
        )
        .order_by(Agent.id)
    ).all()
    for admin in admins:
        words = DISABLED_MAIL["ru" if admin.locale == "ru" else "en"]
        enqueue(
            session,
            mailbox=mailbox,
            kind=OutboxKind.NOTIFICATION,
            key=f"webhook-disabled:{hook.id}:{hook.failing_since.isoformat()}:{admin.id}",
            to=[admin.email],
            subject=words["subject"].format(mailbox=mailbox.address),
            text=words["text"].format(
                url=hook.url, mailbox=mailbox.address, since=hook.failing_since.isoformat(timespec="minutes")
            ),
            headers={"internal": True},  # mail for the team: never filed as a ticket
            now=now,
        )


DISABLED_MAIL = {
    "en": {
        "subject": "A webhook of {mailbox} was turned off",
        "text": "Postdesk turned off the webhook to {url} of {mailbox}: every delivery to it has failed since "
        "{since} (UTC).\n\nIts delivery log on the settings page (Webhooks) shows what the receiver answered. "
        "Turn it on again there once the receiver works; deliveries that were waiting were given up.",
    },
    "ru": {
        "subject": "Вебхук ящика {mailbox} отключён",
        "text": "Postdesk отключил вебхук {url} ящика {mailbox}: все доставки на него не удаются с {since} (UTC).\n\n"
        "Журнал доставок на странице настроек (Вебхуки) показывает ответы получателя. Включите вебхук там, "
        "когда получатель заработает; ожидавшие доставки отменены.",
    },
}
