"""Sending deliveries: signed POSTs with retries, the attempt log, and turning a dead subscription off.

:func:`deliver_due` (the worker's clock) claims due deliveries, POSTs each body signed with the
subscription's secret — ``Postdesk-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` —
and records the attempt. A 2xx is delivered; anything else is retried with exponential backoff
(``WEBHOOK_BACKOFF_SECONDS`` doubling, at most an hour apart) until the delivery is
``WEBHOOK_RETRY_SECONDS`` old. Receivers de-duplicate by the delivery id (``Postdesk-Delivery``; also
the body's ``id``): delivery is at least once. A subscription that has failed without a single
success for ``WEBHOOK_DISABLE_AFTER_SECONDS`` is turned off and the admins get an email.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests
import urllib3
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from server.base.models import (
    Agent,
    Mailbox,
    OutboxKind,
    Role,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    mailbox_members,
)
from server.services import outbound
from server.services.webhooks.deciding import delivery_row
from server.services.webhooks.subscriptions import PING, Settings, audit, secret_of

log = logging.getLogger(__name__)

#: A delivery's worker holds it this long; a worker killed mid-send leaves it to the next one then.
CLAIM = timedelta(minutes=2)
#: The longest wait between two tries of one delivery.
MAX_BACKOFF = timedelta(hours=1)
#: The receiver's answer kept in the log (the first characters of it).
KEPT_ANSWER = 500
BATCH = 50


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
    # Streamed: only the start of the receiver's answer is read (a huge one costs nothing).
    try:
        with (
            outbound.guarded_session(settings.allowed) as http,
            http.post(
                hook.url,
                data=body,
                headers=headers,
                timeout=settings.timeout,
                allow_redirects=False,
                stream=True,
            ) as answer,
        ):
            start = b"" if answer.ok else answer.raw.read(KEPT_ANSWER, decode_content=True)
            status, error = answer.status_code, None if answer.ok else start.decode("utf-8", "replace")
    except (
        requests.RequestException,
        urllib3.exceptions.HTTPError,
    ) as exc:  # reading a stream raises urllib3's
        refused = outbound.refusal_in(exc)
        status, error = None, f"refused: {refused}" if refused else f"{type(exc).__name__}: {str(exc)[:300]}"
    return Outcome(status, error, int((time.monotonic() - started) * 1000))


def _backoff(attempts: int, settings: Settings) -> timedelta:
    doublings = min(max(0, attempts - 1), 20)  # 2^20 × the first wait is past any cap already
    wait: timedelta = settings.backoff * (1 << doublings)
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
    delivery = WebhookDelivery(
        **delivery_row(hook, PING, None, None, {"message": "A test from Postdesk."}, now)
    )
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
    audit(
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
