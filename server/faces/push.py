"""Gmail push: ``users.watch`` per mailbox on a Pub/Sub topic, and ``POST /gmail/push`` where the
topic's push subscription delivers Gmail's notifications.

A notification is accepted only with a bearer token Google signed for the push subscription (issuer
Google, audience = ``PUSH_AUDIENCE``, email = ``PUSH_SERVICE_ACCOUNT``, verified; checked by
:mod:`server.services.google_tokens`): 401 without a valid token, 403 for another account. Its data names the
mailbox and a historyId; a mailbox we do not know, or a historyId we have already synced past, is
answered 204 and ignored (Pub/Sub would otherwise redeliver it for days); otherwise the mailbox is
marked for a sync now: with a task queue (``TASKS=procrastinate``) a sync task is queued for any
worker; inline, ``sync_wanted_at`` is set, which the worker starts within ``PUSH_CHECK_SECONDS``.
Duplicates and out-of-order notifications are harmless: a sync reads from the mailbox's own
checkpoint, whatever the notification said. Polling stays as the fallback. The watches themselves and
the syncs a push asked for are :mod:`server.services.watches` (the clock calls them).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy import select

from server.base.db import get_session
from server.base.models import Mailbox
from server.services.google_tokens import CachingRequest, Unauthorized, Verifier, bearer_token, email_of

log = logging.getLogger(__name__)
bp = Blueprint("push", __name__)
_request = CachingRequest()


class Forbidden(Exception):
    """A valid Google token, but not the push subscription's account (HTTP 403)."""


def verify_push(header: str | None) -> None:
    """:class:`Unauthorized` or :class:`Forbidden` unless the request comes from our push subscription."""
    config = current_app.config
    audience = str(config["PUSH_AUDIENCE"] or "")
    account = str(config["PUSH_SERVICE_ACCOUNT"] or "").strip().lower()
    if not audience or not account:
        raise Unauthorized("push is not configured (PUSH_AUDIENCE, PUSH_SERVICE_ACCOUNT)")
    verifier = Verifier(client_ids=[], certs_url=str(config["PUSH_CERTS_URL"]), request=_request)
    claims = verifier.claims(bearer_token(header), [audience])
    if email_of(claims) != account:
        raise Forbidden(f"a token of {email_of(claims)}, not of the push subscription")


def notification(body: Any) -> tuple[str, int]:
    """(emailAddress, historyId) of a Pub/Sub push envelope, or ValueError saying what is wrong."""
    message = body.get("message") if isinstance(body, dict) else None
    data = message.get("data") if isinstance(message, dict) else None
    if not isinstance(data, str) or len(data) > 4096:
        raise ValueError("expected {message: {data: base64 JSON}}")
    try:
        # Pub/Sub's JSON carries bytes as base64; Gmail's guide shows base64url: read either.
        text = data.strip().replace("-", "+").replace("_", "/")
        decoded = json.loads(base64.b64decode(text + "=" * (-len(text) % 4), validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("message.data is not base64 JSON") from exc
    address = decoded.get("emailAddress") if isinstance(decoded, dict) else None
    history = decoded.get("historyId") if isinstance(decoded, dict) else None
    if not isinstance(address, str) or not isinstance(history, (int, str)) or not str(history).isdecimal():
        raise ValueError("message.data must name emailAddress and historyId")
    return address.strip().lower(), int(history)


@bp.post("/gmail/push")
def push() -> Response | tuple[str, int]:
    try:
        verify_push(request.headers.get("Authorization"))
    except Unauthorized as exc:
        log.info("push_refused problem=%s", exc)
        return "unauthorized", 401
    except Forbidden as exc:
        log.info("push_refused problem=%s", exc)
        return "forbidden", 403
    try:
        address, history_id = notification(request.get_json(silent=True))
    except ValueError as exc:
        return str(exc), 400
    db = get_session()
    mailbox = db.scalar(select(Mailbox).where(Mailbox.address == address))
    if mailbox is None or (mailbox.history_id is not None and history_id <= mailbox.history_id):
        return Response(status=204)  # not ours, or already synced past it: acknowledged, ignored
    if current_app.config["TASKS"] == "procrastinate":
        from server.flows.tasks import enqueue

        enqueue(current_app._get_current_object(), "sync", mailbox_id=mailbox.id)  # type: ignore[attr-defined]
    elif mailbox.sync_wanted_at is None:
        mailbox.sync_wanted_at = datetime.now(UTC)
        db.commit()
    return Response(status=204)
