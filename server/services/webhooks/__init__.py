"""Outgoing webhooks: subscriptions per mailbox (``subscriptions``), deliveries decided with the change
(``deciding``), sent by the worker (``sending``). docs/api.md is the receiver's guide; addresses are
checked when saved and again on every connection (:mod:`server.services.outbound`).
"""

from __future__ import annotations

from server.services.webhooks.deciding import install
from server.services.webhooks.sending import (
    BATCH,
    Outcome,
    attempt,
    deliver_due,
    post,
    prune,
    send_test,
    signature,
)
from server.services.webhooks.subscriptions import (
    EVENT_TYPES,
    PING,
    Settings,
    WebhookError,
    change,
    check_address,
    remove,
    secret_of,
    subscribe,
)

__all__ = [
    "BATCH",
    "EVENT_TYPES",
    "PING",
    "Outcome",
    "Settings",
    "WebhookError",
    "attempt",
    "change",
    "check_address",
    "deliver_due",
    "install",
    "post",
    "prune",
    "remove",
    "secret_of",
    "send_test",
    "signature",
    "subscribe",
]
