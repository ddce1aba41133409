"""Deciding deliveries: what a transaction did to tickets becomes webhook deliveries in that transaction.

Any transaction that records a ticket's Event (or files a customer's message) notes what happened
(``after_flush``); just before it commits (``before_commit``) one ``WebhookDelivery`` per subscription
and event type is written — one ``ticket.updated`` per ticket per transaction, whatever changed; each
customer message its own ``message.received``. A rolled-back change sends nothing; one that commits
is delivered. :func:`install` listens to every session of the process.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

from server.base.models import CsatRating, Direction, Event, Message, Ticket, Webhook, WebhookDelivery
from server.services.tickets.actions import CLOSED_STATUSES
from server.services.tickets.documents import ticket_document

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
        "split",  # messages moved to a new ticket (which is ``ticket.created``)
    }
)
_PENDING = "postdesk_webhook_changes"


def _event_types(found: Event) -> list[str]:
    after, before = found.after or {}, found.before or {}
    if found.kind == "ticket_created":
        return ["ticket.created"]
    if found.kind == "assigned":
        return ["ticket.assigned"]
    if found.kind == "csat_rated":
        return ["csat.received"]
    if found.kind == "merged":  # the ticket merged away; its survivor is updated
        return ["ticket.merged"] if "into" in after else ["ticket.updated"]
    if found.kind == "unmerged":
        return ["ticket.updated"]
    if found.kind == "status_changed":
        was, now = before.get("status"), after.get("status")
        if now in CLOSED_STATUSES and was not in CLOSED_STATUSES:
            return ["ticket.solved"]
        if was in CLOSED_STATUSES and now not in CLOSED_STATUSES:
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
    rows: list[dict[str, Any]] = []
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
            rows.extend(
                delivery_row(hook, kind, ticket_id, documents[ticket_id], data, now) for hook in targets
            )
    if rows:  # as rows, not objects: a busy page writes thousands (no unit of work needed for them)
        session.execute(insert(WebhookDelivery), rows)


def announce(session: Session, mailbox_id: int, kind: str, data: dict[str, Any], now: datetime) -> int:
    """A delivery per enabled subscription of the mailbox to ``kind``, for news that is not a ticket's
    (an article published), in the caller's transaction; how many."""
    hooks = session.scalars(
        select(Webhook).where(Webhook.enabled.is_(True), Webhook.mailbox_id == mailbox_id)
    )
    rows = [delivery_row(hook, kind, None, None, data, now) for hook in hooks if kind in hook.events]
    if rows:
        session.execute(insert(WebhookDelivery), rows)
    return len(rows)


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


def delivery_row(
    hook: Webhook,
    kind: str,
    ticket_id: int | None,
    ticket: dict[str, Any] | None,
    data: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """A delivery's columns: the commit hook inserts a transaction's deliveries as rows in one go; a
    single delivery (the settings page's test) is ``WebhookDelivery(**delivery_row(…))``."""
    delivery_id = str(uuid.uuid4())
    body = {
        "id": delivery_id,
        "type": kind,
        "created_at": now.isoformat(),
        "mailbox_id": hook.mailbox_id,
        "ticket": ticket,
    } | data
    return {
        "id": delivery_id,
        "webhook_id": hook.id,
        "event_type": kind,
        "ticket_id": ticket_id,
        "body": json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def install() -> None:
    """Listen to every session of the process (once): deliveries join the transactions that decide them."""
    if not event.contains(Session, "after_flush", _noted):
        event.listen(Session, "after_flush", _noted)
        event.listen(Session, "before_commit", _write_deliveries)
        event.listen(Session, "after_rollback", _forget)
