"""``/api/v1/webhooks``: a mailbox's webhook subscriptions through the API (the settings scopes).

The same service as the settings page (:mod:`server.services.webhooks`): the address is checked the same way,
and the signing secret is in the answer that makes the subscription, and never again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import current_app
from spectree import Response as Answers
from sqlalchemy import select

from server.base.db import get_session
from server.base.models import Agent, Mailbox, Webhook, WebhookDelivery
from server.faces.api.auth import caller, chosen_mailboxes, needs, readable_mailboxes, writable_mailboxes
from server.faces.api.base import bp, tree
from server.faces.api.schemas import DeliveryList, MailboxQuery, WebhookCreated, WebhookIn, WebhookList
from server.faces.errors import problem_response
from server.services import webhooks
from server.services.api_tokens import Scope

TAGS = ["webhooks"]
#: The newest deliveries a subscription's log answers with.
LOG_ROWS = 100


def _document(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "mailbox_id": hook.mailbox_id,
        "url": hook.url,
        "events": list(hook.events),
        "enabled": hook.enabled,
        "disabled_reason": hook.disabled_reason,
        "failing_since": hook.failing_since,
        "created_at": hook.created_at,
    }


@bp.get("/webhooks")
@needs(Scope.SETTINGS_READ)
@tree.validate(resp=Answers(HTTP_200=WebhookList), tags=TAGS)
def list_webhooks(query: MailboxQuery) -> Any:
    """The webhook subscriptions of the mailboxes you read (never their secrets)."""
    session = get_session()
    ids = chosen_mailboxes(session, caller(), query.mailbox)
    hooks = session.scalars(select(Webhook).where(Webhook.mailbox_id.in_(ids)).order_by(Webhook.id))
    return WebhookList.model_validate({"items": [_document(h) for h in hooks]})


@bp.post("/webhooks")
@needs(Scope.SETTINGS_WRITE)
@tree.validate(resp=Answers(HTTP_201=WebhookCreated), tags=TAGS)
def create_webhook(json: WebhookIn) -> Any:
    """Subscribe an https address to events of a mailbox; the answer carries the signing secret once."""
    session = get_session()
    who = caller()
    box = session.get(Mailbox, json.mailbox_id)
    if box is None or box.id not in writable_mailboxes(session, who):
        return problem_response(404, "Not Found", "No such mailbox.")
    agent = session.get(Agent, who.agent_id)
    assert agent is not None  # the token's owner was just read
    try:
        hook, secret = webhooks.subscribe(
            session, box, url=json.url, events=json.events, by=agent,
            settings=webhooks.Settings.from_config(current_app.config), now=datetime.now(UTC),
        )  # fmt: skip
    except webhooks.WebhookError as exc:
        session.rollback()
        return problem_response(400, "Bad Request", str(exc))
    answer = WebhookCreated.model_validate(_document(hook) | {"secret": secret})
    session.commit()
    return answer, 201


def _readable(webhook_id: int) -> Webhook | None:
    session = get_session()
    hook = session.get(Webhook, webhook_id) if webhook_id < 2**31 else None
    if hook is None or hook.mailbox_id not in readable_mailboxes(session, caller()):
        return None
    return hook


@bp.delete("/webhooks/<int:webhook_id>")
@needs(Scope.SETTINGS_WRITE)
@tree.validate(resp=Answers(HTTP_204=None), tags=TAGS)
def delete_webhook(webhook_id: int) -> Any:
    """Remove a subscription (its waiting deliveries go with it)."""
    session = get_session()
    hook = _readable(webhook_id)
    if hook is None:
        return problem_response(404, "Not Found", "No such webhook.")
    agent = session.get(Agent, caller().agent_id)
    assert agent is not None
    webhooks.remove(session, hook, by=agent, now=datetime.now(UTC))
    session.commit()
    return "", 204


@bp.get("/webhooks/<int:webhook_id>/deliveries")
@needs(Scope.SETTINGS_READ)
@tree.validate(resp=Answers(HTTP_200=DeliveryList), tags=TAGS)
def list_deliveries(webhook_id: int) -> Any:
    """The subscription's newest deliveries: state, attempts and the receiver's last answer."""
    hook = _readable(webhook_id)
    if hook is None:
        return problem_response(404, "Not Found", "No such webhook.")
    rows = get_session().scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == hook.id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .limit(LOG_ROWS)
    )
    items = [
        {
            "id": d.id,
            "event_type": d.event_type,
            "state": d.state,
            "attempts": d.attempts,
            "last_status": d.last_status,
            "last_error": d.last_error,
            "created_at": d.created_at,
            "delivered_at": d.delivered_at,
        }
        for d in rows
    ]
    return DeliveryList.model_validate({"items": items})
