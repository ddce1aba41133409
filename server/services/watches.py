"""Gmail push, the part the clock runs: ``users.watch`` kept per mailbox, and the syncs a push asked
for (``POST /gmail/push`` in :mod:`server.faces.push` marks a mailbox; the worker takes it here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.base.models import Mailbox
from server.gmail.client import GmailClient

#: Watches last 7 days; renewed when less than this is left.
RENEW_BEFORE = timedelta(days=1)


def wanted_syncs(session: Session) -> list[int]:
    """The mailboxes a push asked to sync, each taken once (the request cleared as it is taken, so a
    push that arrives during the sync asks again)."""
    taken = []
    for mailbox_id, asked in session.execute(
        select(Mailbox.id, Mailbox.sync_wanted_at)
        .where(Mailbox.sync_wanted_at.is_not(None))
        .order_by(Mailbox.sync_wanted_at)
    ).all():
        cleared = session.execute(
            update(Mailbox)
            .where(Mailbox.id == mailbox_id, Mailbox.sync_wanted_at == asked)
            .values(sync_wanted_at=None)
            .execution_options(synchronize_session=False)
        )
        if getattr(cleared, "rowcount", 0) == 1:
            taken.append(mailbox_id)
    session.commit()
    return taken


def keep_watch(session: Session, mailbox: Mailbox, client: GmailClient, *, now: datetime) -> str:
    """Start, renew or stop the mailbox's watch as the configuration and the mailbox want; says which."""
    config = current_app.config
    topic = str(config["PUSH_TOPIC"] or "")
    if not topic or mailbox.paused:
        if mailbox.watch_expires_at is None:
            return "none"
        client.stop()
        mailbox.watch_expires_at = None
        session.commit()
        return "stopped"
    if mailbox.watch_expires_at is not None and mailbox.watch_expires_at - now > RENEW_BEFORE:
        return "kept"
    labels = [x.strip() for x in str(config["PUSH_LABEL_IDS"] or "").split(",") if x.strip()]
    answer = client.watch(topic, labels)
    expires = int(answer.get("expiration") or 0)
    mailbox.watch_expires_at = (
        datetime.fromtimestamp(expires / 1000, UTC) if expires else now + timedelta(days=7)
    )
    session.commit()
    return "watching"
