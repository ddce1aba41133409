"""The knowledge index: every solved ticket's question and the team's final answer, searchable.

An entry holds what the customer wrote (the subject and their messages' new text), the last reply
an agent sent (its new text: no quoted history), and the Snowball stems of both
(:mod:`server.services.knowledge.stemming`). The database's own full-text index reads the entries: FTS5 over
the stems on SQLite, PostgreSQL's ``russian`` configuration over the text itself (a generated
``tsvector`` with a GIN index) — migration 0025. ``knowledge_terms`` counts the entries each stem is
in, per mailbox, so a rare word weighs more than a common one.

The index follows the tickets by itself: :func:`install` listens to every session, and a transaction
that solves a ticket, reopens it, or files a reply on a solved ticket re-indexes it before it
commits (a rolled-back change leaves the index as it was). ``postdesk knowledge reindex`` rebuilds it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, delete, event, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from server.base.models import Direction, Event, KnowledgeEntry, KnowledgeTerm, Message, Ticket
from server.gmail.mime import split_reply
from server.services.knowledge.stemming import terms
from server.services.tickets.actions import CLOSED_STATUSES

#: The most text kept from one side of an entry (the start of a question says what it is about).
MAX_TEXT = 5_000
_NOTED = "postdesk_knowledge_tickets"


def question_of(session: Session, ticket: Ticket) -> str:
    """What the customer asked: the subject and the new text of each of their messages."""
    texts = session.scalars(
        select(Message.text)
        .where(
            Message.ticket_id == ticket.id,
            Message.direction == Direction.INBOUND.value,
            Message.is_auto.is_(False),
        )
        .order_by(Message.sent_at, Message.id)
        .limit(20)
    )
    parts = [ticket.subject or ""] + [split_reply(text or "")[0] for text in texts]
    return "\n".join(part.strip() for part in parts if part.strip())[:MAX_TEXT]


def final_answer(session: Session, ticket_id: int) -> Message | None:
    """The last reply an agent sent the customer (automatic mail is no answer)."""
    return session.scalars(
        select(Message)
        .where(
            Message.ticket_id == ticket_id,
            Message.direction == Direction.OUTBOUND.value,
            Message.is_auto.is_(False),
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    ).first()


#: The stem-count row that counts the mailbox's entries themselves (no stem is empty).
ALL = ""


def _count_terms(session: Session, mailbox_id: int, counts: Counter[str]) -> None:
    """Add ``counts`` (stem → entries, negative to take away) to the mailbox's stem counts; the
    :data:`ALL` row counts entries."""
    if not counts:
        return
    table: Table = KnowledgeTerm.__table__  # type: ignore[assignment]
    insert = sqlite.insert if session.get_bind().dialect.name == "sqlite" else postgresql.insert
    rows = [{"mailbox_id": mailbox_id, "term": term, "entries": n} for term, n in sorted(counts.items()) if n]
    if not rows:
        return
    statement = insert(table).values(rows)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["mailbox_id", "term"],
            set_={"entries": table.c.entries + statement.excluded.entries},
        )
    )
    if any(n < 0 for n in counts.values()):
        session.execute(
            delete(KnowledgeTerm).where(KnowledgeTerm.mailbox_id == mailbox_id, KnowledgeTerm.entries <= 0)
        )


def _stems(entry: KnowledgeEntry) -> set[str]:
    """What an entry adds to the stem counts: each of its stems once, and one entry."""
    return set(entry.question_terms.split()) | set(entry.answer_terms.split()) | {ALL}


def remove(session: Session, ticket_ids: Iterable[int]) -> int:
    """Take these tickets out of the index; how many entries went."""
    entries = session.scalars(
        select(KnowledgeEntry).where(KnowledgeEntry.ticket_id.in_(sorted(set(ticket_ids))))
    ).all()
    by_mailbox: dict[int, Counter[str]] = {}
    for entry in entries:
        by_mailbox.setdefault(entry.mailbox_id, Counter()).update({t: -1 for t in _stems(entry)})
        session.delete(entry)
    session.flush()
    for mailbox_id, counts in by_mailbox.items():
        _count_terms(session, mailbox_id, counts)
    return len(entries)


def entry_for(session: Session, ticket: Ticket, *, now: datetime) -> KnowledgeEntry | None:
    """A new entry for a solved ticket (not added), or None when the team never answered it."""
    answer = final_answer(session, ticket.id)
    if answer is None:
        return None
    question = question_of(session, ticket)
    answer_text = split_reply(answer.text or "")[0].strip()[:MAX_TEXT]
    question_terms, answer_terms = terms(question), terms(answer_text)
    if not question_terms or not answer_text:
        return None
    return KnowledgeEntry(
        ticket_id=ticket.id,
        mailbox_id=ticket.mailbox_id,
        question=question,
        answer=answer_text,
        question_terms=" ".join(question_terms),
        answer_terms=" ".join(answer_terms),
        answer_message_id=answer.id,
        solved_at=ticket.solved_at,
        indexed_at=now,
    )


def index(session: Session, tickets: Iterable[Ticket], *, now: datetime | None = None) -> int:
    """Bring these tickets' entries up to date: a solved ticket with an answer is (re)indexed as the
    newest entry, any other ticket leaves the index. How many entries were written."""
    tickets = list(tickets)
    now = now or datetime.now(UTC)
    remove(session, [ticket.id for ticket in tickets])
    written: dict[int, Counter[str]] = {}
    count = 0
    for ticket in tickets:
        entry = entry_for(session, ticket, now=now) if ticket.status in CLOSED_STATUSES else None
        if entry is not None:
            session.add(entry)
            written.setdefault(ticket.mailbox_id, Counter()).update(_stems(entry))
            count += 1
    session.flush()
    for mailbox_id, counts in written.items():
        _count_terms(session, mailbox_id, counts)
    return count


def rebuild(session: Session, mailbox_ids: Iterable[int], *, batch: int = 500) -> int:
    """Index every solved ticket of these mailboxes again, from nothing; how many entries there are now."""
    total = 0
    for mailbox_id in mailbox_ids:
        session.execute(delete(KnowledgeEntry).where(KnowledgeEntry.mailbox_id == mailbox_id))
        session.execute(delete(KnowledgeTerm).where(KnowledgeTerm.mailbox_id == mailbox_id))
        counts: Counter[str] = Counter()
        now = datetime.now(UTC)
        # In the order they were solved, so the newest entries are the latest solved (the window).
        ticket_ids = list(
            session.scalars(
                select(Ticket.id)
                .where(Ticket.mailbox_id == mailbox_id, Ticket.status.in_(CLOSED_STATUSES))
                .order_by(Ticket.solved_at, Ticket.id)
            )
        )
        for start in range(0, len(ticket_ids), batch):
            chunk = ticket_ids[start : start + batch]
            found = session.scalars(select(Ticket).where(Ticket.id.in_(chunk))).all()
            by_id = {ticket.id: ticket for ticket in found}
            added = []
            for ticket_id in chunk:
                entry = entry_for(session, by_id[ticket_id], now=now) if ticket_id in by_id else None
                if entry is not None:
                    session.add(entry)
                    added.append(entry)
                    counts.update(_stems(entry))
            session.flush()
            total += len(added)
            for entry in added:  # a big mailbox's entries need not stay in memory
                session.expunge(entry)
        _count_terms(session, mailbox_id, counts)
    return total


def counts_of(session: Session, mailbox_id: int, stems: Iterable[str]) -> dict[str, int]:
    """How many of the mailbox's entries contain each stem; ``ALL``: how many entries there are."""
    wanted = sorted(set(stems) | {ALL})
    found = session.execute(
        select(KnowledgeTerm.term, KnowledgeTerm.entries).where(
            KnowledgeTerm.mailbox_id == mailbox_id, KnowledgeTerm.term.in_(wanted)
        )
    ).all()
    return {ALL: 0} | {term: int(entries) for term, entries in found}


def compact(session: Session) -> None:
    """Rewrite the full-text index without what was deleted from it (SQLite's FTS5 keeps a deleted
    entry's words in older segments until they merge; PostgreSQL drops the row with its tsvector)."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("INSERT INTO knowledge_fts(knowledge_fts) VALUES ('optimize')")


def _noted(session: Session, flush_context: Any) -> None:
    """After each flush: the tickets whose entry may have changed (solved, reopened, answered)."""
    noted: set[int] = session.info.setdefault(_NOTED, set())
    for obj in session.new:
        if isinstance(obj, Event) and obj.ticket_id is not None and obj.kind == "status_changed":
            was, now = (obj.before or {}).get("status"), (obj.after or {}).get("status")
            if (was in CLOSED_STATUSES) != (now in CLOSED_STATUSES):
                noted.add(obj.ticket_id)
        elif (
            isinstance(obj, Message)
            and obj.ticket_id is not None
            and obj.direction == Direction.OUTBOUND.value
            and not obj.is_auto
        ):
            noted.add(-obj.ticket_id)  # only if the ticket is solved already (a late-filed answer)


def _forget(session: Session, previous_transaction: Any = None) -> None:
    session.info.pop(_NOTED, None)


def _reindex(session: Session) -> None:
    """Before the commit: the noted tickets' entries follow what this transaction did."""
    if any(isinstance(obj, (Event, Message)) for obj in session.new):
        session.flush()
    noted = session.info.pop(_NOTED, None)
    if not noted:
        return
    changed = {n for n in noted if n > 0}
    answered = {-n for n in noted if n < 0} - changed
    found = session.scalars(select(Ticket).where(Ticket.id.in_(changed | answered))).all()
    index(session, [t for t in found if t.id in changed or t.status in CLOSED_STATUSES])


def install() -> None:
    """Listen to every session of the process (once): the index changes in the same transaction."""
    if not event.contains(Session, "after_flush", _noted):
        event.listen(Session, "after_flush", _noted)
        event.listen(Session, "before_commit", _reindex)
        event.listen(Session, "after_rollback", _forget)
