"""Sending through the Outbox: decide and record in one transaction, then deliver exactly once.

``enqueue`` writes an :class:`~server.base.models.Outbox` row inside the caller's transaction (the same one
that decided to send). ``deliver_due`` hands due rows to Gmail one by one: it claims a row (pending →
sending, committed) before ``messages.send``, and marks it sent after. A row found in ``sending`` has an
unknown outcome (a crash or a timeout after handing it over): before trying again it searches the
mailbox for the row's own Message-ID (``rfc822msgid:``), so nothing is ever sent twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any

from sqlalchemy import CursorResult, select, true, update
from sqlalchemy.orm import Session

from server.base.db import memo
from server.base.models import Mailbox, Message, Outbox, OutboxKind, OutboxState, Ticket
from server.gmail.client import GmailClient
from server.gmail.errors import GmailApiError, GmailError

log = logging.getLogger(__name__)

#: RFC 3834: what each kind of mail we send says about itself.
AUTO_SUBMITTED = {
    OutboxKind.AUTO_REPLY.value: "auto-replied",
    OutboxKind.NOTIFICATION.value: "auto-generated",
    OutboxKind.REMINDER.value: "auto-generated",
    OutboxKind.SURVEY.value: "auto-generated",
}
#: Marks mail Postdesk sends to the team itself (honoured only on mail sent from the mailbox).
INTERNAL_HEADER = "X-Postdesk-Internal"
#: Attempts before a row is given up as failed, and the pause after each failed attempt.
MAX_ATTEMPTS = 8
#: How long a claimed row is left to the sender that claimed it (see ``_claim``).
DEFAULT_CLAIM_SECONDS = 120
RETRY_DELAYS = (30, 60, 300, 900, 1800, 3600, 7200)


@dataclass
class DeliveryReport:
    sent: int = 0
    confirmed: int = 0  # found already in Gmail after an unknown outcome: not sent again
    failed: int = 0
    postponed: int = 0


def new_message_id(mailbox_address: str) -> str:
    domain = mailbox_address.rsplit("@", 1)[-1] or "postdesk.invalid"
    return make_msgid(idstring="postdesk", domain=domain)


def reply_subject(subject: str) -> str:
    clean = subject.strip() or "(no subject)"
    return clean if clean.lower().startswith(("re:", "отв:", "ответ:")) else f"Re: {clean}"


def thread_headers(session: Session, ticket: Ticket, *, answering: Message | None = None) -> dict[str, Any]:
    """In-Reply-To, References and the Gmail thread of the latest message in the ticket's own thread
    that a person wrote (an out-of-office reply or a bounce only when the thread has nothing else: a
    solved notice should answer the customer, not their auto-reply); of a ticket others were merged
    into, the thread of the customer's latest message. ``answering``: the message a new ticket's
    acknowledgement answers, when the caller holds it (no query then)."""
    if ticket.merged_in:
        thread = Message.direction == "inbound"
    else:
        thread = Message.gmail_thread_id == ticket.gmail_thread_id if ticket.gmail_thread_id else true()
    last = (
        answering
        if answering is not None and answering.rfc822_message_id and not ticket.merged_in
        and answering.gmail_thread_id == ticket.gmail_thread_id
        else session.scalar(
            select(Message)
            .where(Message.ticket_id == ticket.id, Message.rfc822_message_id.is_not(None), thread)
            .order_by(Message.is_auto, Message.sent_at.desc(), Message.id.desc())
            .limit(1)
        )
    )  # fmt: skip
    if last is None:
        return {"gmail_thread_id": ticket.gmail_thread_id}
    references = (last.references or "").split() + [last.rfc822_message_id or ""]
    return {
        "in_reply_to": last.rfc822_message_id,
        "references": [r for r in references if r][-20:],
        "gmail_thread_id": last.gmail_thread_id,
    } | ({"subject": last.subject} if ticket.merged_in else {})  # Gmail threads a reply with its subject


def enqueue(
    session: Session,
    *,
    mailbox: Mailbox,
    kind: OutboxKind,
    key: str,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    ticket: Ticket | None = None,
    headers: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> Outbox | None:
    """Record an email to send (no commit). A key already used means it was decided before: ``None``."""
    key = key[:300]  # the column's width: the key stored is the key looked up
    queued = queued_here(session)
    if (
        key in queued.by_key
        or session.scalar(select(Outbox.id).where(Outbox.idempotency_key == key)) is not None
    ):
        return None
    row = Outbox(
        mailbox_id=mailbox.id,
        ticket_id=ticket.id if ticket else None,
        kind=kind.value,
        idempotency_key=key,
        message_id=new_message_id(mailbox.address),
        to=", ".join(to),
        subject=subject,
        body_text=text,
        body_html=html,
        headers=headers or {},
        state=OutboxState.PENDING.value,
        next_attempt_at=now or datetime.now(UTC),
    )
    session.add(row)
    queued.add(row)
    return row


@dataclass
class Queued:
    """The Outbox rows :func:`enqueue` made inside one :func:`server.base.db.memo_scope`.

    A page's rules run without autoflush (one flush for the page, not one per rule), so what they
    queued may not be in the database yet: the checks that count queued mail (one acknowledgement
    per thread, the per-sender limit) read these too — :meth:`unflushed`, as a row that has an id
    is in the database already."""

    by_key: dict[str, Outbox] = field(default_factory=dict)
    by_to: dict[str, list[Outbox]] = field(default_factory=dict)
    by_ticket: dict[int, list[Outbox]] = field(default_factory=dict)

    def add(self, row: Outbox) -> None:
        self.by_key[row.idempotency_key] = row
        self.by_to.setdefault(row.to, []).append(row)
        if row.ticket_id is not None:
            self.by_ticket.setdefault(row.ticket_id, []).append(row)

    @staticmethod
    def unflushed(rows: list[Outbox], kind: OutboxKind) -> list[Outbox]:
        return [row for row in rows if row.id is None and row.kind == kind.value]


def queued_here(session: Session) -> Queued:
    """What :func:`enqueue` queued in this memo scope (a new, empty record outside one)."""
    return memo(session, "outbox_queued", Queued)


def build_mime(row: Outbox, mailbox: Mailbox, now: datetime) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = formataddr((mailbox.display_name or "", mailbox.address))
    message["To"] = row.to
    if row.cc:
        message["Cc"] = row.cc
    message["Subject"] = row.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = row.message_id
    headers = row.headers or {}
    if headers.get("in_reply_to"):
        message["In-Reply-To"] = headers["in_reply_to"]
    if headers.get("references"):
        message["References"] = " ".join(headers["references"])
    if headers.get("internal"):
        # Mail for the team (reminders, digests, notifications): sync never files it on a ticket,
        # though its subject names one.
        message[INTERNAL_HEADER] = "yes"
    auto = AUTO_SUBMITTED.get(row.kind)
    if auto:
        message["Auto-Submitted"] = auto
        # Asks Exchange/Outlook not to answer with out-of-office or read receipts.
        message["X-Auto-Response-Suppress"] = "All"
    message.set_content(row.body_text or "")
    if row.body_html:
        message.add_alternative(row.body_html, subtype="html")
    return message.as_bytes()


def _claim(session: Session, row: Outbox, expected_state: str, lease_until: datetime) -> bool:
    """Take the row for this process (another sender may be looking at it too).

    The claim is a lease: until ``lease_until`` no other sender picks the row up, so a message in
    flight is never sent a second time; after it (a crash), the next sender checks Gmail first.
    """
    result = session.execute(
        update(Outbox)
        .where(Outbox.id == row.id, Outbox.state == expected_state, Outbox.attempts == row.attempts)
        .values(state=OutboxState.SENDING.value, attempts=Outbox.attempts + 1, next_attempt_at=lease_until)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)  # an UPDATE's result has a row count
    claimed = result.rowcount
    session.commit()
    session.refresh(row)
    return claimed == 1


def deliver_due(
    session: Session,
    mailbox_id: int,
    client: GmailClient,
    *,
    now: datetime | None = None,
    limit: int = 200,
    claim_seconds: float = DEFAULT_CLAIM_SECONDS,
) -> DeliveryReport:
    """Send the mailbox's due Outbox rows, each exactly once."""
    now = now or datetime.now(UTC)
    lease = timedelta(seconds=claim_seconds)
    report = DeliveryReport()
    mailbox = session.get(Mailbox, mailbox_id)
    if mailbox is None:
        return report
    due = session.scalars(
        select(Outbox)
        .where(
            Outbox.mailbox_id == mailbox_id,
            Outbox.state.in_([OutboxState.PENDING.value, OutboxState.SENDING.value]),
            Outbox.next_attempt_at <= now,
        )
        .order_by(Outbox.id)
        .limit(limit)
    ).all()
    for row in due:
        _deliver_one(session, mailbox, row, client, now, report, now + lease)
    return report


def _deliver_one(
    session: Session,
    mailbox: Mailbox,
    row: Outbox,
    client: GmailClient,
    now: datetime,
    report: DeliveryReport,
    lease_until: datetime,
) -> None:
    if row.state == OutboxState.SENDING.value:
        try:
            found = client.find_by_rfc822_id(row.message_id)
        except GmailError as exc:
            _postpone(session, row, now, f"cannot confirm an earlier attempt: {exc}", report)
            return
        if found:
            _mark_sent(session, row, found[0], now)
            report.confirmed += 1
            return
    if not _claim(session, row, row.state, lease_until):
        return
    raw = build_mime(row, mailbox, now)
    thread_id = (row.headers or {}).get("gmail_thread_id")
    try:
        result = client.send(raw, thread_id=thread_id)
    except GmailApiError as exc:
        if exc.status == 404 and thread_id:  # the thread is gone from Gmail: send it on its own
            row.headers = {**(row.headers or {}), "gmail_thread_id": None}
            _postpone(session, row, now, str(exc), report, delay=0)
            return
        row.state = OutboxState.FAILED.value
        row.last_error = str(exc)[:2000]
        session.commit()
        report.failed += 1
        log.warning("outbox_failed id=%s error=%s", row.id, exc)
        return
    except GmailError as exc:
        _postpone(session, row, now, str(exc), report)
        return
    _mark_sent(session, row, str(result.get("id", "")), now)
    report.sent += 1


def _postpone(
    session: Session, row: Outbox, now: datetime, error: str, report: DeliveryReport, delay: int | None = None
) -> None:
    row.last_error = error[:2000]
    if row.attempts >= MAX_ATTEMPTS:
        row.state = OutboxState.FAILED.value
        report.failed += 1
    else:
        pause = RETRY_DELAYS[min(row.attempts, len(RETRY_DELAYS) - 1)] if delay is None else delay
        row.next_attempt_at = now + timedelta(seconds=pause)
        report.postponed += 1
    session.commit()


def _mark_sent(session: Session, row: Outbox, gmail_id: str, now: datetime) -> None:
    row.state = OutboxState.SENT.value
    row.gmail_id = gmail_id or None
    row.sent_at = now
    row.last_error = None
    session.commit()
