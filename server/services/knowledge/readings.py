"""Reading a filed customer message (server.services.knowledge.signals) and keeping the reading on its row.

The rules' facts ``urgency`` and ``tone`` come from here; the add-on card shows the reasons.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.base.models import Direction, Message
from server.gmail.mime import ParsedMessage, split_reply
from server.services.knowledge.signals import Lexicon, Reading, lexicon_with, read

#: Rule condition fields that need a reading.
FIELDS = frozenset({"urgency", "tone"})


def text_of(subject: str, body: str) -> str:
    """What is read: the subject and the message's new text (no quoted history, no signature)."""
    new, _rest = split_reply(body or "")
    return f"{subject or ''}\n{new}"


def follow_ups(session: Session, ticket_id: int, gmail_id: str) -> int:
    """The customer's earlier messages on the ticket since the team last wrote (automatic mail aside:
    an acknowledgement is not an answer)."""
    answered = (
        select(func.max(Message.sent_at))
        .where(
            Message.ticket_id == ticket_id,
            Message.direction == Direction.OUTBOUND.value,
            Message.is_auto.is_(False),
        )
        .scalar_subquery()
    )
    query = select(func.count(Message.id)).where(
        Message.ticket_id == ticket_id,
        Message.direction == Direction.INBOUND.value,
        Message.is_auto.is_(False),
        Message.gmail_id != gmail_id,
        (Message.sent_at > answered) | answered.is_(None),
    )
    return int(session.scalar(query) or 0)


class FollowUps:
    """:func:`follow_ups` for many tickets at once: their messages' directions and times read in one
    query (a page of sync files every message before its rules run, so this is exact for the page)."""

    def __init__(self, session: Session, ticket_ids: Iterable[int]) -> None:
        self.inbound: dict[int, list[tuple[str, datetime]]] = {}
        self.answered: dict[int, datetime] = {}
        wanted = sorted(set(ticket_ids))
        for start in range(0, len(wanted), 500):
            rows = session.execute(
                select(Message.ticket_id, Message.gmail_id, Message.direction, Message.sent_at).where(
                    Message.ticket_id.in_(wanted[start : start + 500]), Message.is_auto.is_(False)
                )
            )
            for ticket_id, gmail_id, direction, sent_at in rows:
                if ticket_id is None:
                    continue
                if direction == Direction.OUTBOUND.value:
                    if ticket_id not in self.answered or sent_at > self.answered[ticket_id]:
                        self.answered[ticket_id] = sent_at
                elif direction == Direction.INBOUND.value:
                    self.inbound.setdefault(ticket_id, []).append((gmail_id, sent_at))

    def count(self, ticket_id: int, gmail_id: str) -> int:
        answered = self.answered.get(ticket_id)
        return sum(
            1
            for other, sent_at in self.inbound.get(ticket_id, ())
            if other != gmail_id and (answered is None or sent_at > answered)
        )


def read_and_keep(
    session: Session,
    ticket_id: int,
    message: ParsedMessage,
    *,
    words: Lexicon | None = None,
    keep: bool = True,
    row: Message | None = None,
    counted: FollowUps | None = None,
) -> Reading:
    """The reading of a customer's message just filed on the ticket (with the mailbox's ``words``);
    kept on its row unless ``keep`` is off."""
    reading = read(
        text_of(message.subject, message.text),
        follow_ups=(
            counted.count(ticket_id, message.gmail_id)
            if counted is not None
            else follow_ups(session, ticket_id, message.gmail_id)
        ),
        words=words,
    )
    if keep:
        row = row or session.scalar(
            select(Message).where(Message.ticket_id == ticket_id, Message.gmail_id == message.gmail_id)
        )
        if row is not None:
            row.urgency, row.tone, row.signals = reading.urgency, reading.tone, reading.as_json()
    return reading


def stored(row: Message) -> Reading | None:
    """The reading kept on a row (None for mail filed before readings existed, or not a customer's)."""
    from server.services.knowledge.signals import Reason

    data: dict[str, Any] = row.signals or {}
    if not row.urgency or not row.tone:
        return None
    reasons = tuple(
        Reason(str(r.get("kind", "")), str(r.get("words", "")), int(r.get("points", 0)))
        for r in data.get("reasons", [])
        if isinstance(r, dict)
    )
    return Reading(row.urgency, row.tone, str(data.get("language", "en")), reasons)


def latest(session: Session, ticket_id: int) -> Message | None:
    """The customer's latest message with a reading (time rules and the card read it)."""
    return session.scalar(
        select(Message)
        .where(
            Message.ticket_id == ticket_id,
            Message.direction == Direction.INBOUND.value,
            Message.urgency.is_not(None),
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    )


def read_unread(session: Session, *, mailbox_id: int | None = None, batch: int = 500) -> int:
    """Read the customer messages filed before readings existed (or in a new mailbox's first sync,
    which runs no rules), a batch at a time, each batch committed; returns how many were read."""
    from server.base.models import Mailbox
    from server.services.mailbox_settings import signal_words

    done = 0
    words_of: dict[int, Lexicon] = {}
    while True:
        query = (
            select(Message)
            .where(
                Message.direction == Direction.INBOUND.value,
                Message.is_auto.is_(False),
                Message.ticket_id.is_not(None),
                Message.urgency.is_(None),
            )
            .order_by(Message.id)
            .limit(batch)
        )
        if mailbox_id is not None:
            query = query.where(Message.mailbox_id == mailbox_id)
        rows = session.scalars(query).all()
        if not rows:
            return done
        for row in rows:
            if row.mailbox_id not in words_of:
                box = session.get(Mailbox, row.mailbox_id)
                words_of[row.mailbox_id] = lexicon_with(signal_words(box) if box else {})
            reading = read(text_of(row.subject, row.text), words=words_of[row.mailbox_id])
            row.urgency, row.tone, row.signals = reading.urgency, reading.tone, reading.as_json()
        session.commit()
        done += len(rows)
