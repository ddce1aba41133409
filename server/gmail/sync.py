"""Mailbox sync: Gmail history → messages filed under tickets, exactly once.

Each unit of work — one page of ``history.list``, or one chunk of a full sync — is committed in one
transaction together with the checkpoint that says it is done, so a crash anywhere and a re-run give
the same database. Unique keys (mailbox, gmail id) and (mailbox, thread) make every step idempotent.

This is the Gmail adapter: it files mail and says what happened (:class:`TicketEvent`), and knows
nothing of rules. Its caller passes an :data:`EventHandler` that acts on each page's events inside the
page's transaction (``server.flows.sync_runner`` wires the mailbox's rules in).
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from rules import Trigger
from server.base.db import memo_scope
from server.base.models import Agent, Customer, Direction, Mailbox, Message, SyncState, Ticket
from server.gmail.client import GmailClient
from server.gmail.errors import GmailError, HistoryExpired
from server.gmail.mime import ParsedMessage, parse_gmail_message, text_from_raw
from server.gmail.send import INTERNAL_HEADER
from server.services import tickets

log = logging.getLogger(__name__)

#: Messages fetched and committed together during a full sync.
FULL_SYNC_CHUNK = 100
HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
#: Gmail labels whose messages are not mail of a conversation.
SKIPPED_LABELS = frozenset({"DRAFT", "SPAM", "CHAT"})
_TICKET_TOKEN = re.compile(r"\[#(\d{1,9})\]")
#: "Rules see every message" (an incremental sync).
EVERYTHING = datetime.min.replace(tzinfo=UTC)
#: After an expired checkpoint, unfiled mail Gmail received this long before the last good sync began
#: still counts as new (Gmail's clock and ours may disagree; mail already filed is skipped anyway).
CLOCK_MARGIN = timedelta(minutes=5)

Progress = Callable[[str, int, int], None]


@dataclass
class TicketEvent:
    """Something that happened to a ticket during sync, for the rules to look at."""

    trigger: Trigger
    ticket_id: int
    message: ParsedMessage | None = None
    at: datetime | None = None
    #: The message's stored row, when sync just filed it (so the rules need not look it up).
    row: Message | None = None
    #: A ticket made by splitting another (its number): not sync's, the split's own event.
    split_from: int | None = None


#: (gmail message id, label name): a label to put on a message in Gmail after the page's commit.
LabelRequest = tuple[str, str]
#: Acts on one page's ticket events inside the page's transaction (it must not commit); returns the
#: Gmail labels to apply once the page is committed.
EventHandler = Callable[[Session, Mailbox, list[TicketEvent]], list[LabelRequest]]


@dataclass(frozen=True)
class LabelChange:
    """One ``labelAdded`` / ``labelRemoved`` history record of one message, in Gmail's order."""

    message_id: str
    thread_id: str
    history_id: int
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


#: Acts on one page's label changes inside the page's transaction (it must not commit).
LabelHandler = Callable[[Session, Mailbox, list[LabelChange]], None]


@dataclass
class SyncResult:
    address: str
    mode: str = "incremental"  # or "full"
    messages_filed: int = 0
    tickets_opened: int = 0
    labels_changed: int = 0
    deleted: int = 0
    units: int = 0
    history_id: int | None = None
    problems: list[str] = field(default_factory=list)
    #: When the sync began: what the mailbox's ``last_sync_at`` becomes when it finishes.
    began: datetime = field(default_factory=lambda: datetime.now(UTC))

    def summary(self) -> str:
        return (
            f"{self.address}: {self.mode} sync, {self.messages_filed} messages filed, "
            f"{self.tickets_opened} tickets opened, {self.labels_changed} label changes, "
            f"{self.deleted} deleted, {self.units} quota units"
        )


def sync_mailbox(
    session: Session,
    mailbox_id: int,
    client: GmailClient,
    *,
    full_sync_days: int = 30,
    progress: Progress | None = None,
    now: datetime | None = None,
    run_rules: bool = True,
    on_events: EventHandler | None = None,
    on_labels: LabelHandler | None = None,
) -> SyncResult:
    """Bring one mailbox up to date: incremental from its checkpoint, or a bounded full sync.

    ``on_events`` sees what arrives, except during the first full sync of a new mailbox: a month of
    old mail must not be acknowledged (after an expired checkpoint, mail received since the last good
    sync *began* — ``last_sync_at``, all mail received by then is filed — still counts). Without it
    mail is filed and nothing else happens.
    """
    mailbox = session.get(Mailbox, mailbox_id)
    if mailbox is None:
        raise LookupError(f"no mailbox with id {mailbox_id}")
    result = SyncResult(mailbox.address)
    units_before = client.meter.units_total
    last = mailbox.last_sync_at
    since = last - CLOCK_MARGIN if run_rules and last is not None else None
    handler = on_events if run_rules else None
    when = now or result.began
    try:
        if mailbox.history_id is None:
            _full_sync(session, mailbox, client, result, full_sync_days, progress, when, since, handler)
        else:
            try:
                _incremental_sync(
                    session, mailbox, client, result, EVERYTHING if run_rules else None, handler, on_labels
                )
            except HistoryExpired:
                log.info("sync_history_expired mailbox=%s checkpoint=%s", mailbox.address, mailbox.history_id)
                _full_sync(session, mailbox, client, result, full_sync_days, progress, when, since, handler)
    except Exception as exc:
        session.rollback()
        _record_failure(session, mailbox_id, exc)
        raise
    result.units = client.meter.units_total - units_before
    result.history_id = mailbox.history_id
    return result


def _record_failure(session: Session, mailbox_id: int, exc: Exception) -> None:
    session.execute(
        update(Mailbox)
        .where(Mailbox.id == mailbox_id)
        .values(sync_state=SyncState.ERROR.value, sync_error=f"{type(exc).__name__}: {exc}"[:2000])
    )
    session.commit()


# --- full sync ----------------------------------------------------------------------------------------
def _full_sync(
    session: Session,
    mailbox: Mailbox,
    client: GmailClient,
    result: SyncResult,
    days: int,
    progress: Progress | None,
    now: datetime,
    rules_since: datetime | None,
    on_events: EventHandler | None,
) -> None:
    result.mode = "full"
    # The profile's historyId is taken first: whatever arrives while we list is caught by the next poll.
    start_history = int(client.profile()["historyId"])
    mailbox.sync_state = SyncState.FULL_SYNC.value
    session.commit()
    since = int((now - timedelta(days=days)).timestamp())
    listed = list(client.iter_message_ids(f"after:{since}"))
    listed.reverse()  # Gmail lists newest first; file oldest first so numbers follow time
    known = set(session.scalars(select(Message.gmail_id).where(Message.mailbox_id == mailbox.id)))
    todo = [message_id for message_id in dict.fromkeys(listed) if message_id not in known]
    done = 0
    for start in range(0, len(todo), FULL_SYNC_CHUNK):
        chunk = todo[start : start + FULL_SYNC_CHUNK]
        parsed = _fetch(client, chunk)
        _commit_page(
            session,
            mailbox,
            parsed,
            {},
            [],
            result,
            rules_since=rules_since,
            client=client,
            on_events=on_events,
        )
        done += len(chunk)
        if progress:
            progress(mailbox.address, done, len(todo))
    mailbox.history_id = start_history
    mailbox.sync_state = SyncState.INCREMENTAL.value
    mailbox.sync_error = None
    mailbox.last_sync_at = result.began
    session.commit()


# --- incremental sync ---------------------------------------------------------------------------------
def _incremental_sync(
    session: Session,
    mailbox: Mailbox,
    client: GmailClient,
    result: SyncResult,
    rules_since: datetime | None,
    on_events: EventHandler | None,
    on_labels: LabelHandler | None = None,
) -> None:
    assert mailbox.history_id is not None
    start = mailbox.history_id
    token: str | None = None
    while True:
        page = client.history(start, page_token=token, history_types=HISTORY_TYPES)
        records = page.get("history", [])
        added: list[str] = []
        labels: dict[str, list[str]] = {}
        changes: list[LabelChange] = []
        deleted: list[str] = []
        for record in records:
            for item in record.get("messagesAdded", []):
                added.append(item["message"]["id"])
            for key in ("labelsAdded", "labelsRemoved"):
                for item in record.get(key, []):
                    message = item["message"]
                    labels[message["id"]] = list(message.get("labelIds", []))
                    changed = tuple(str(x) for x in item.get("labelIds", []))
                    changes.append(LabelChange(message["id"], str(message.get("threadId", "")), int(record["id"]),
                                               *((changed, ()) if key == "labelsAdded" else ((), changed))))  # fmt: skip
            for item in record.get("messagesDeleted", []):
                deleted.append(item["message"]["id"])
        known = _known_ids(session, mailbox.id, added)
        wanted = [i for i in dict.fromkeys(added) if i not in known and i not in deleted]
        parsed: list[ParsedMessage] = []
        if wanted:
            parsed = _fetch(client, wanted)
        token = page.get("nextPageToken")
        # Mid-way the checkpoint is the last record done; at the end, the mailbox's own historyId.
        checkpoint = int(records[-1]["id"]) if token and records else int(page.get("historyId", start))
        _commit_page(
            session,
            mailbox,
            parsed,
            labels,
            deleted,
            result,
            checkpoint=max(checkpoint, start),
            rules_since=rules_since,
            client=client,
            on_events=on_events,
            on_labels=on_labels,
            changes=changes,
        )
        if not token:
            mailbox.sync_state = SyncState.INCREMENTAL.value
            mailbox.sync_error = None
            mailbox.last_sync_at = result.began
            session.commit()
            return


def _fetch(client: GmailClient, gmail_ids: list[str]) -> list[ParsedMessage]:
    """Fetch and parse messages (batched); a message whose MIME gave no body is read again raw."""
    fetched = client.get_messages(gmail_ids)
    parsed = [parse_gmail_message(fetched.messages[i]) for i in gmail_ids if i in fetched.messages]
    for message in parsed:
        if any(p["kind"] == "empty_body" for p in message.problems):
            raw = client.get_message(message.gmail_id, "raw").get("raw", "")
            text_from_raw(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)), message)
    return parsed


def _known_ids(session: Session, mailbox_id: int, gmail_ids: Sequence[str]) -> set[str]:
    if not gmail_ids:
        return set()
    found: set[str] = set()
    unique = list(dict.fromkeys(gmail_ids))
    for start in range(0, len(unique), 500):
        query = select(Message.gmail_id).where(
            Message.mailbox_id == mailbox_id, Message.gmail_id.in_(unique[start : start + 500])
        )
        found.update(session.scalars(query))
    return found


# --- filing -------------------------------------------------------------------------------------------
def _commit_page(
    session: Session,
    mailbox: Mailbox,
    parsed: list[ParsedMessage],
    labels: dict[str, list[str]],
    deleted: list[str],
    result: SyncResult,
    *,
    checkpoint: int | None = None,
    rules_since: datetime | None = None,
    client: GmailClient | None = None,
    on_events: EventHandler | None = None,
    on_labels: LabelHandler | None = None,
    changes: list[LabelChange] | None = None,
) -> None:
    """File a page, hand its ticket events to ``on_events`` and its label changes to ``on_labels``,
    apply label changes and deletions, move the checkpoint — all in one commit."""
    for attempt in (1, 2):
        try:
            with memo_scope(session):
                filer = Filer(session, mailbox)
                filer.events_since = rules_since if on_events is not None else None
                counts = filer.file_all(sorted(parsed, key=lambda p: (p.internal_date, p.gmail_id)))
                label_requests: list[LabelRequest] = []
                events = filer.ticket_events()
                if events and on_events is not None:
                    label_requests = on_events(session, mailbox, events)
                changed = filer.apply_labels(labels)
                if changes and on_labels is not None:
                    on_labels(session, mailbox, changes)
                removed = filer.mark_deleted(deleted)
                if checkpoint is not None:
                    mailbox.history_id = checkpoint
                session.commit()
        except IntegrityError:
            # Another sync of the same mailbox filed some of these first: start the page again.
            session.rollback()
            if attempt == 2:
                raise
            continue
        if label_requests and client is not None:
            _apply_gmail_labels(client, label_requests)
        result.messages_filed += counts[0]
        result.tickets_opened += counts[1]
        result.labels_changed += changed
        result.deleted += removed
        return


def _apply_gmail_labels(client: GmailClient, requests: list[LabelRequest]) -> None:
    """Put the labels rules asked for on their messages in Gmail (created when missing).

    After the page's commit and best effort: a label is a view in Gmail, and labelling twice is
    harmless, so a failure is logged and the mail keeps flowing.
    """
    try:
        labels = {label["name"].lower(): label["id"] for label in client.labels()}
        for gmail_id, name in dict.fromkeys(requests):
            label_id = labels.get(name.lower())
            if label_id is None:
                label_id = client.create_label(name)["id"]
                labels[name.lower()] = label_id
            client.modify(gmail_id, add=[label_id])
    except GmailError as exc:
        log.warning("gmail_label_failed mailbox=%s error=%s", client.address, exc)


class Filer:
    """Files parsed messages of one mailbox under their tickets, inside the caller's transaction.

    A page's lookups (threads, references, customers, threads waiting for a ticket) are read in a few
    queries up front and kept up to date in memory while the page is filed. New tickets take their
    numbers from one reservation, and the page's tickets, messages and events are written by one
    flush at the end (SQLAlchemy inserts each table's rows together, ids returned by the insert).
    The filer holds the page's tickets, so they stay in the session's identity map for the rules
    and the commit's hooks (a ticket nobody holds would be read again by each ``session.get``).
    """

    def __init__(self, session: Session, mailbox: Mailbox) -> None:
        self.session = session
        self.mailbox_id = mailbox.id
        team = set(session.scalars(select(Agent.email)))
        self.team = {address.lower() for address in team} | {mailbox.address.lower()}
        self.thread_tickets: dict[str, Ticket] = {}
        self.rfc822_tickets: dict[str, Ticket] = {}
        self.rfc822_threads: dict[str, str] = {}
        self.customers: dict[str, Customer] = {}
        self.unfiled_threads: set[str] = set()
        self.numbers = tickets.TicketNumbers(session, mailbox.id)
        #: The page's new tickets by number (not flushed yet, so a query for ``[#N]`` cannot find them).
        self.opened: dict[int, Ticket] = {}
        #: The page's message rows by Gmail id (held for the rules and the commit's hooks, see above).
        self.rows: dict[str, Message] = {}
        #: What happened, for the rules; only mail received after this instant counts (None: none).
        self._events: list[tuple[Trigger, Ticket, ParsedMessage]] = []
        self.events_since: datetime | None = None

    def _in_chunks(self, values: Iterable[str]) -> Iterable[list[str]]:
        unique = list(dict.fromkeys(v for v in values if v))
        for start in range(0, len(unique), 500):
            yield unique[start : start + 500]

    def prepare(self, batch: list[ParsedMessage]) -> None:
        """Read what filing ``batch`` needs to know, in a handful of queries."""
        mailbox = self.mailbox_id
        thread_ids: dict[str, int] = {}
        rfc822_ids: dict[str, int] = {}
        for threads in self._in_chunks(p.thread_id for p in batch):
            thread_ids.update(
                (thread, ticket_id)
                for thread, ticket_id in self.session.execute(
                    select(Ticket.gmail_thread_id, Ticket.id).where(
                        Ticket.mailbox_id == mailbox, Ticket.gmail_thread_id.in_(threads)
                    )
                )
                if thread is not None
            )
            for thread, ticket_id in self.session.execute(
                select(Message.gmail_thread_id, Message.ticket_id).where(
                    Message.mailbox_id == mailbox, Message.gmail_thread_id.in_(threads)
                )
            ):
                if ticket_id is None:
                    self.unfiled_threads.add(thread)
                else:
                    thread_ids.setdefault(thread, ticket_id)
        for refs in self._in_chunks(r for p in batch for r in p.referenced_ids):
            for rfc822, ticket_id, thread in self.session.execute(
                select(Message.rfc822_message_id, Message.ticket_id, Message.gmail_thread_id).where(
                    Message.mailbox_id == mailbox,
                    Message.rfc822_message_id.in_(refs),
                    Message.ticket_id.is_not(None),
                )
            ):
                if rfc822 is not None and ticket_id is not None:
                    rfc822_ids[rfc822], self.rfc822_threads[rfc822] = ticket_id, thread
        for emails in self._in_chunks(p.sender.email for p in batch if p.sender):
            for customer in self.session.scalars(
                select(Customer).where(Customer.mailbox_id == mailbox, Customer.email.in_(emails))
            ):
                self.customers[customer.email] = customer
        loaded: dict[int, Ticket] = {}
        for ids in self._in_chunks(str(i) for i in set(thread_ids.values()) | set(rfc822_ids.values())):
            loaded.update(
                (t.id, t)
                for t in self.session.scalars(
                    # Their tags too, in one more query: every rule's facts read them.
                    select(Ticket)
                    .where(Ticket.id.in_([int(i) for i in ids]))
                    .options(selectinload(Ticket.tags))
                )
            )
        self.thread_tickets.update((k, loaded[v]) for k, v in thread_ids.items() if v in loaded)
        self.rfc822_tickets.update((k, loaded[v]) for k, v in rfc822_ids.items() if v in loaded)

    def file_all(self, messages: Iterable[ParsedMessage]) -> tuple[int, int]:
        batch = [p for p in messages if not SKIPPED_LABELS & set(p.label_ids)]
        known = _known_ids(self.session, self.mailbox_id, [p.gmail_id for p in batch])
        batch = [p for p in batch if p.gmail_id not in known]
        filed = opened = 0
        with self.session.no_autoflush:
            self.prepare(batch)
            for parsed in batch:
                if parsed.gmail_id in known:
                    continue
                known.add(parsed.gmail_id)
                opened += self.file(parsed)
                filed += 1
            self.numbers.close()
        self.session.flush()
        return filed, opened

    def ticket_events(self) -> list[TicketEvent]:
        """The page's ticket events for the rules (after :meth:`file_all`, so every ticket has its id)."""
        return [
            TicketEvent(trigger, ticket.id, parsed, parsed.internal_date, self.rows.get(parsed.gmail_id))
            for trigger, ticket, parsed in self._events
        ]

    def direction(self, parsed: ParsedMessage) -> Direction:
        sender = parsed.sender.email if parsed.sender else ""
        if sender in self.team or "SENT" in parsed.label_ids:
            return Direction.OUTBOUND
        return Direction.INBOUND

    def file(self, parsed: ParsedMessage) -> int:
        """File one message; returns 1 when it opened a new ticket."""
        direction = self.direction(parsed)
        if direction is Direction.OUTBOUND and parsed.headers.get(INTERNAL_HEADER.lower()):
            # Our own mail to the team (a reminder naming [#N]): kept, never part of a ticket.
            self.session.add(self._message_row(parsed, direction, None))
            return 0
        ticket = self._ticket_for(parsed)
        opened = 0
        if ticket is None and direction is Direction.INBOUND:
            ticket = tickets.open_ticket(
                self.session,
                self.mailbox_id,
                subject=parsed.subject or "(no subject)",
                customer=self._customer(parsed),
                gmail_thread_id=parsed.thread_id or None,
                created_at=parsed.sent_at,
                numbers=self.numbers,
            )
            opened = 1
            self.opened[ticket.number] = ticket
            if parsed.thread_id in self.unfiled_threads:
                self._adopt_thread(ticket, parsed.thread_id)
        if ticket is not None:
            self.thread_tickets[parsed.thread_id] = ticket
            if parsed.message_id:
                self.rfc822_tickets[parsed.message_id] = ticket
                self.rfc822_threads[parsed.message_id] = parsed.thread_id
        else:
            self.unfiled_threads.add(parsed.thread_id)
        row = self.rows[parsed.gmail_id] = self._message_row(parsed, direction, ticket)
        self.session.add(row)
        if ticket is not None:
            self._effects(ticket, parsed, direction, opened=bool(opened))
            self._event(ticket, parsed, direction, opened=bool(opened))
        return opened

    def _event(self, ticket: Ticket, parsed: ParsedMessage, direction: Direction, *, opened: bool) -> None:
        if self.events_since is None or parsed.internal_date < self.events_since:
            return
        if direction is Direction.OUTBOUND:
            if parsed.automatic is not None:  # our own acknowledgements and notifications
                return
            trigger = Trigger.AGENT_REPLIED
        else:
            trigger = Trigger.TICKET_CREATED if opened else Trigger.CUSTOMER_REPLIED
        self._events.append((trigger, ticket, parsed))

    def _ticket_for(self, parsed: ParsedMessage) -> Ticket | None:
        """The ticket of the message it answers in its own thread (a thread split in two has two); else
        the thread's ticket; else the ticket of a message it answers; else a ``[#N]`` in the subject."""
        refs = self.rfc822_tickets
        answered = [r for r in parsed.referenced_ids if r in refs]
        in_thread = [r for r in answered if self.rfc822_threads.get(r) == parsed.thread_id]
        ticket = refs[in_thread[0]] if in_thread else self.thread_tickets.get(parsed.thread_id)
        if ticket is None and answered:
            ticket = refs[answered[0]]
        if ticket is None:
            for token in _TICKET_TOKEN.findall(parsed.subject):
                ticket = self.opened.get(int(token)) or self.session.scalar(
                    select(Ticket).where(Ticket.mailbox_id == self.mailbox_id, Ticket.number == int(token))
                )
                if ticket is not None:
                    break
        if ticket is not None and ticket.merged_into_id is not None:
            ticket = tickets.survivor(self.session, ticket)  # a merged ticket's mail goes to its survivor
        return ticket

    def _customer(self, parsed: ParsedMessage) -> Customer | None:
        if parsed.sender is None:
            return None
        customer = self.customers.get(parsed.sender.email)
        if customer is None:
            customer = Customer(
                mailbox_id=self.mailbox_id, email=parsed.sender.email, name=parsed.sender.name
            )
            self.session.add(customer)
            self.customers[customer.email] = customer
        elif not customer.name and parsed.sender.name:
            customer.name = parsed.sender.name
        return customer

    def _adopt_thread(self, ticket: Ticket, thread_id: str) -> None:
        """An agent's own thread became a ticket: its earlier messages join it."""
        self.session.flush()
        self.session.execute(
            update(Message)
            .where(
                Message.mailbox_id == self.mailbox_id,
                Message.gmail_thread_id == thread_id,
                Message.ticket_id.is_(None),
            )
            .values(ticket_id=ticket.id)
        )
        self.unfiled_threads.discard(thread_id)

    def _message_row(self, parsed: ParsedMessage, direction: Direction, ticket: Ticket | None) -> Message:
        return Message(
            mailbox_id=self.mailbox_id,
            ticket=ticket,
            gmail_id=parsed.gmail_id,
            gmail_thread_id=parsed.thread_id,
            rfc822_message_id=parsed.message_id,
            in_reply_to=" ".join(parsed.in_reply_to) or None,
            references=" ".join(parsed.references) or None,
            direction=direction.value,
            from_email=parsed.sender.email if parsed.sender else "",
            from_name=parsed.sender.name if parsed.sender else "",
            to=", ".join(a.as_text() for a in parsed.to),
            cc=", ".join(a.as_text() for a in parsed.cc),
            subject=parsed.subject,
            sent_at=parsed.sent_at,
            text=parsed.text,
            html=parsed.html,
            attachments=[a.as_json() for a in parsed.attachments],
            labels=list(parsed.label_ids),
            is_auto=parsed.automatic is not None,
            auto_reason=parsed.automatic[:200] if parsed.automatic is not None else None,
            parse_problems=parsed.problems,
            trashed="TRASH" in parsed.label_ids,
        )

    def _effects(self, ticket: Ticket, parsed: ParsedMessage, direction: Direction, *, opened: bool) -> None:
        at = parsed.sent_at
        if any(p["kind"] in {"unparsable", "no_payload"} for p in parsed.problems):
            unparsed = {"gmail_id": parsed.gmail_id, "problems": parsed.problems}
            tickets.record_event(self.session, ticket, "message_unparsed", after=unparsed)
        if direction is Direction.OUTBOUND:
            # An automatic acknowledgement is not an answer: it does not stop the first-response clock.
            if at >= ticket.created_at and parsed.automatic is None:
                tickets.record_agent_reply(self.session, ticket, at=at)
            tickets.touch(ticket, at)
            return
        if parsed.automatic is not None:  # filed, not acted on: the card says why
            tickets.record_event(
                self.session,
                ticket,
                "automatic_mail",
                after={"gmail_id": parsed.gmail_id, "reason": parsed.automatic[:200]},
                at=at,
            )
        # Gmail's receive time decides "after it was solved": a customer's clock may be off.
        arrived = parsed.internal_date
        if (
            parsed.automatic is None
            and not opened
            and (ticket.solved_at is None or arrived > ticket.solved_at)
        ):
            tickets.reopen(self.session, ticket, reason="customer replied", at=at)
            if ticket.snoozed_until is not None:  # as in Gmail: a new message ends the snooze
                tickets.snooze(self.session, ticket, None, at=at)
        tickets.touch(ticket, at)

    def apply_labels(self, labels: dict[str, list[str]]) -> int:
        changed = 0
        for gmail_id, label_ids in labels.items():
            message = self._stored(gmail_id)
            if message is not None and message.labels != label_ids:
                message.labels = label_ids
                message.trashed = "TRASH" in label_ids
                changed += 1
        return changed

    def mark_deleted(self, gmail_ids: list[str]) -> int:
        removed = 0
        for gmail_id in dict.fromkeys(gmail_ids):
            message = self._stored(gmail_id)
            if message is not None and not message.gmail_deleted:
                message.gmail_deleted = True
                removed += 1
        return removed

    def _stored(self, gmail_id: str) -> Message | None:
        return self.session.scalar(
            select(Message).where(Message.mailbox_id == self.mailbox_id, Message.gmail_id == gmail_id)
        )
