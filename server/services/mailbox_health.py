"""How each mailbox is doing: sync state, Outbox mail waiting or failed, Gmail quota spent today."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.base.models import GmailUsage, Outbox, OutboxState

#: The Outbox states that still wait to go out (the backlog shown per mailbox).
BACKLOG = (OutboxState.PENDING.value, OutboxState.SENDING.value)


@dataclass(frozen=True)
class Health:
    outbox_waiting: int
    outbox_failed: int
    gmail_units_today: int


def health_of(session: Session, mailbox_ids: list[int], now: datetime) -> dict[int, Health]:
    """Each mailbox's Outbox backlog and failures, and the Gmail units it spent today (UTC), in 2 queries."""
    counts: dict[tuple[int, str], int] = {
        (mailbox_id, state): count
        for mailbox_id, state, count in session.execute(
            select(Outbox.mailbox_id, Outbox.state, func.count())
            .where(Outbox.mailbox_id.in_(mailbox_ids), Outbox.state.in_([*BACKLOG, OutboxState.FAILED.value]))
            .group_by(Outbox.mailbox_id, Outbox.state)
        )
    }
    units: dict[int, int] = {
        mailbox_id: spent
        for mailbox_id, spent in session.execute(
            select(GmailUsage.mailbox_id, GmailUsage.units).where(
                GmailUsage.mailbox_id.in_(mailbox_ids), GmailUsage.day == now.date()
            )
        )
    }
    return {
        mailbox_id: Health(
            outbox_waiting=sum(counts.get((mailbox_id, state), 0) for state in BACKLOG),
            outbox_failed=counts.get((mailbox_id, OutboxState.FAILED.value), 0),
            gmail_units_today=units.get(mailbox_id, 0),
        )
        for mailbox_id in mailbox_ids
    }
