"""Gmail itself as the queue: each ticket's state mirrored in labels on its thread in the shared mailbox.

Under a root label (``Postdesk`` by default) each thread carries its status (``Postdesk/Open`` …),
whose it is (``Postdesk/Mine/<agent>`` or ``Postdesk/Unassigned``), and ``Postdesk/Overdue`` and
``Postdesk/Urgent`` and ``Postdesk/Snoozed`` when they hold, named in the mailbox's language and
coloured.

Exactly once, as the Outbox sends mail: every ticket change asks for new labels in its own
transaction (:func:`server.services.tickets.want_labels`: a version bump and ``labels_wanted_at``); after the
commit :func:`apply_wanted` computes the labels from the ticket as it is then, changes the thread in
one call (``threads.modify``; ``messages.batchModify`` for many threads with the same change), and
clears the request only if no newer change came meanwhile. A crash between the commit and the call
leaves the request, so the next run applies it; the calls are idempotent, so applying twice does no
harm. Labels missing in Gmail are created (and renamed when an agent's name or the mailbox's
language changes); a label deleted in Gmail is made again on the next change.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from rules.model import ACTIVE_STATUSES
from server.base.models import Agent, GmailLabel, Mailbox, Message, Priority, Ticket, TicketStatus
from server.gmail.client import GmailClient
from server.gmail.errors import GmailApiError
from server.services.mailbox_settings import label_settings, setting
from server.services.tickets.merging import merged_threads
from server.services.tickets.splitting import split_messages

log = logging.getLogger(__name__)

#: Tickets read per batch of :func:`apply_wanted`.
BATCH = 200
#: From this many threads with the same change on, one messages.batchModify (50 units for up to
#: 1,000 messages) is cheaper than threads.modify per thread (10 units each).
BATCH_MODIFY_FROM = 5
MAX_BATCH_IDS = 1000
NAMES = {
    "en": {"open": "Open", "pending": "Pending", "on_hold": "On hold", "solved": "Solved", "closed": "Solved",
           "mine": "Mine", "unassigned": "Unassigned", "overdue": "Overdue", "urgent": "Urgent",
           "snoozed": "Snoozed"},
    "ru": {"open": "Открыт", "pending": "Ожидает", "on_hold": "Отложен", "solved": "Решён", "closed": "Решён",
           "mine": "Мои", "unassigned": "Без исполнителя", "overdue": "Просрочен", "urgent": "Срочно",
           "snoozed": "Отложено на время"},
}  # fmt: skip
#: Gmail's palette (server.gmail.sandbox.store.LABEL_COLORS): text, background.
COLORS = {
    "status:open": ("#ffffff", "#4a86e8"),
    "status:pending": ("#000000", "#fad165"),
    "status:on_hold": ("#ffffff", "#a479e2"),
    "status:solved": ("#ffffff", "#16a766"),
    "unassigned": ("#000000", "#f3f3f3"),
    "overdue": ("#ffffff", "#cc3a21"),
    "urgent": ("#ffffff", "#fb4c2f"),
}


def wanted_keys(ticket: Ticket, now: datetime) -> list[str]:
    """The label keys the ticket's thread should carry now (a merged ticket: none, its survivor's do)."""
    if ticket.status == TicketStatus.MERGED.value:
        return []
    status = TicketStatus.SOLVED.value if ticket.status == TicketStatus.CLOSED.value else ticket.status
    keys = [f"status:{status}"]
    if ticket.status in ACTIVE_STATUSES:
        keys.append(f"agent:{ticket.assignee_id}" if ticket.assignee_id else "unassigned")
        if ticket.due_at is not None and ticket.due_at <= now:
            keys.append("overdue")
        if ticket.snoozed_until is not None and ticket.snoozed_until > now:
            keys.append("snoozed")
    if ticket.priority == Priority.URGENT.value and ticket.status in ACTIVE_STATUSES:
        keys.append("urgent")
    return keys


def standard_keys(mailbox: Mailbox) -> list[str]:
    """The labels a mailbox's team works with in Gmail: every status, each member's own, Unassigned,
    Overdue, Urgent, Snoozed."""
    members = sorted(a.id for a in mailbox.members if a.active)
    return [*(f"status:{s}" for s in ("open", "pending", "on_hold", "solved")), "unassigned", "overdue", "urgent",
            "snoozed", *(f"agent:{n}" for n in members)]  # fmt: skip


def label_name(key: str, root: str, locale: str, agents: dict[int, str]) -> str:
    words = NAMES.get(locale, NAMES["en"])
    if key == "root":
        return root
    if key.startswith("status:"):
        return f"{root}/{words[key.removeprefix('status:')]}"
    if key.startswith("agent:"):
        agent_id = int(key.removeprefix("agent:"))
        person = (agents.get(agent_id) or f"#{agent_id}").replace("/", "-").strip() or f"#{agent_id}"
        return f"{root}/{words['mine']}/{person}"
    return f"{root}/{words[key]}"


class Labels:
    """A mailbox's Postdesk labels: their Gmail ids, created or renamed as needed."""

    def __init__(self, session: Session, mailbox: Mailbox, client: GmailClient) -> None:
        self.session, self.mailbox, self.client = session, mailbox, client
        self.root = str(label_settings(mailbox)["root"])
        self.locale = str(setting(mailbox, "locale"))
        self.known = {
            row.key: row
            for row in session.scalars(select(GmailLabel).where(GmailLabel.mailbox_id == mailbox.id))
        }
        self._agents: dict[int, str] | None = None
        self._in_gmail: dict[str, dict[str, Any]] | None = None

    def agents(self) -> dict[int, str]:
        if self._agents is None:
            self._agents = {
                a.id: a.name or a.email.split("@")[0] for a in self.session.scalars(select(Agent))
            }
        return self._agents

    def in_gmail(self) -> dict[str, dict[str, Any]]:
        """Gmail's labels of the mailbox by id (read once per run, only when a label needs checking)."""
        if self._in_gmail is None:
            self._in_gmail = {label["id"]: label for label in self.client.labels()}
        return self._in_gmail

    def ids(self, keys: Iterable[str]) -> dict[str, str]:
        """Gmail ids of these keys' labels, making each (and its parents) when missing."""
        return {key: self.id_of(key) for key in keys}

    def id_of(self, key: str) -> str:
        name = label_name(key, self.root, self.locale, self.agents())
        row = self.known.get(key)
        if row is not None and row.name == name:
            return row.gmail_id
        for parent in _parents(name):  # Gmail shows nesting only when the parents exist too
            self._ensure(f"parent:{parent}", parent, None)
        return self._ensure(key, name, COLORS.get(key)).gmail_id

    def _ensure(self, key: str, name: str, color: tuple[str, str] | None) -> GmailLabel:
        row = self.known.get(key)
        palette = {"textColor": color[0], "backgroundColor": color[1]} if color else None
        if row is not None and row.name == name:
            return row
        by_name = {label["name"].lower(): label for label in self.in_gmail().values()}
        if row is not None and row.gmail_id in self.in_gmail():  # renamed: the agent's name, the language
            try:
                self.client.patch_label(row.gmail_id, {"name": name})
                self._in_gmail = None
                row.name = name
                return row
            except GmailApiError as error:
                if error.status != 409:
                    raise
        existing = by_name.get(name.lower())
        if existing is None:
            existing = self.client.create_label(name, palette)
            self._in_gmail = None
        if row is None:
            row = GmailLabel(mailbox_id=self.mailbox.id, key=key, gmail_id=existing["id"], name=name)
            self.session.add(row)
            self.known[key] = row
        else:
            row.gmail_id, row.name = existing["id"], name
        return row

    def all_ids(self) -> set[str]:
        """Every Postdesk label id of the mailbox except the parents (what a thread may lose)."""
        return {
            row.gmail_id for key, row in self.known.items() if not key.startswith("parent:") and key != "root"
        }


def _parents(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:n]) for n in range(1, len(parts))]


@dataclass
class Applied:
    tickets: int = 0
    calls: int = 0
    stale: int = 0  # changed again meanwhile: applied again on the next run


def apply_wanted(
    session: Session,
    mailbox: Mailbox,
    client: GmailClient,
    *,
    now: datetime | None = None,
    limit: int = BATCH,
) -> Applied:
    """Apply the labels asked for on up to ``limit`` tickets of the mailbox (oldest request first);
    each request is cleared only when the ticket did not change again meanwhile. Committed."""
    now = now or datetime.now(UTC)
    done = Applied()
    config = label_settings(mailbox)
    if not config["enabled"]:
        return done
    chosen = session.scalars(
        select(Ticket)
        .where(Ticket.mailbox_id == mailbox.id, Ticket.labels_wanted_at.is_not(None))
        .order_by(Ticket.labels_wanted_at, Ticket.id)
        .limit(limit)
    ).all()
    if not chosen:
        return done
    # What each thread should carry, read now (before any commit expires the tickets); the labels
    # made or renamed in Gmail are committed at once, so no transaction stays open (no write lock
    # held) while Gmail is called for the threads.
    # A merged ticket's threads carry its survivor's labels; the merged one itself carries none.
    merged = merged_threads(session, [t.id for t in chosen if t.merged_in and t.status != "merged"])
    plan: list[tuple[int, int, list[str], list[str], bool]] = [
        (t.id, t.labels_version, [] if t.status == "merged" else [t.gmail_thread_id or "", *merged.get(t.id, [])],
         wanted_keys(t, now), t.status in ACTIVE_STATUSES)
        for t in chosen
    ]  # fmt: skip
    # A thread split in two tickets (server.services.tickets.splitting) takes labels message by message.
    own = split_messages(session, mailbox.id, [t.id for t in chosen if t.status != "merged"])
    plan = [
        (i, v, [t for t in threads if t not in own.shared], keys, active)
        for i, v, threads, keys, active in plan
    ]
    labels = Labels(session, mailbox, client)
    with session.no_autoflush:  # every label the team may use in Gmail exists, not only those in use yet
        labels.ids(standard_keys(mailbox))
    session.commit()
    groups: dict[tuple[frozenset[str], frozenset[str]], list[str]] = defaultdict(list)
    by_message: dict[tuple[frozenset[str], frozenset[str]], list[str]] = defaultdict(list)
    with session.no_autoflush:
        for ticket_id, _version, threads, keys, active in plan:
            add = set(labels.ids(keys).values())
            remove = labels.all_ids() - add
            if config["archive_on_solve"] and not active:
                remove.add("INBOX")
            groups[(frozenset(add), frozenset(remove))].extend(t for t in threads if t)
            by_message[(frozenset(add), frozenset(remove))].extend(own.messages.get(ticket_id, []))
    session.commit()
    history: dict[str, int] = {}
    for (adding, removing), threads in groups.items():
        done.calls += _modify(session, client, mailbox, threads, sorted(adding), sorted(removing), history)
    for (adding, removing), ids in by_message.items():
        for start in range(0, len(ids), MAX_BATCH_IDS):
            client.batch_modify(
                ids[start : start + MAX_BATCH_IDS], add=sorted(adding), remove=sorted(removing)
            )
            done.calls += 1
    if own.messages:  # batchModify answers nothing: the mailbox's historyId, after it
        history.update(dict.fromkeys(own.shared, int(client.profile()["historyId"])))
    for ticket_id, version, threads, keys, _active in plan:
        # Label history up to the last of our changes on any of the ticket's threads is ours.
        mine = [history[t] for t in [*threads, *own.threads.get(ticket_id, [])] if t in history]
        if mine:
            session.execute(
                update(Ticket)
                .where(Ticket.id == ticket_id)
                .values(labels_history_id=max(mine))
                .execution_options(synchronize_session=False)
            )
        cleared = session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.labels_version == version)
            .values(labels_wanted_at=None, labels_applied=keys)
            .execution_options(synchronize_session=False)
        )
        assert isinstance(cleared, CursorResult)
        if cleared.rowcount == 1:
            done.tickets += 1
        else:
            done.stale += 1
    session.commit()
    return done


def _modify(
    session: Session,
    client: GmailClient,
    mailbox: Mailbox,
    threads: list[str],
    add: list[str],
    remove: list[str],
    history: dict[str, int],
) -> int:
    """One change on these threads: per thread, or in batches of their messages' ids. ``history``
    gets each thread's Gmail historyId after the change (label history up to it is ours)."""
    if len(threads) < BATCH_MODIFY_FROM:
        for thread in threads:
            try:
                answer = client.modify_thread(thread, add=add, remove=remove)
            except GmailApiError as error:
                if error.status != 404:  # a thread deleted in Gmail has no labels to carry
                    raise
                continue
            history[thread] = int(answer.get("historyId") or 0)
        return len(threads)
    ids = list(
        session.scalars(
            select(Message.gmail_id).where(
                Message.mailbox_id == mailbox.id,
                Message.gmail_thread_id.in_(threads),
                Message.gmail_deleted.is_(False),
            )
        )
    )
    session.commit()  # the read above ends before Gmail is called
    for start in range(0, len(ids), MAX_BATCH_IDS):
        client.batch_modify(ids[start : start + MAX_BATCH_IDS], add=add, remove=remove)
    after = int(client.profile()["historyId"])  # batchModify answers nothing: the mailbox's own, after it
    history.update(dict.fromkeys(threads, after))
    return (len(ids) + MAX_BATCH_IDS - 1) // MAX_BATCH_IDS + 1


def request_all(session: Session, mailbox: Mailbox, *, now: datetime | None = None) -> int:
    """Ask for labels on every open ticket of the mailbox (enabling, after a restore, after someone
    deleted a label): the worker, or ``postdesk labels sync``, applies them in batches. Committed."""
    now = now or datetime.now(UTC)
    for row in session.scalars(select(GmailLabel).where(GmailLabel.mailbox_id == mailbox.id)):
        session.delete(row)  # looked up again in Gmail: a label deleted there is made anew
    moved = session.execute(
        update(Ticket)
        .where(Ticket.mailbox_id == mailbox.id, Ticket.status.in_(ACTIVE_STATUSES))
        .values(labels_version=Ticket.labels_version + 1, labels_wanted_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    assert isinstance(moved, CursorResult)
    return int(moved.rowcount)
