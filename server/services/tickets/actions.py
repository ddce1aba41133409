"""What can happen to a ticket, each with its audit event (see the package docstring)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.orm import Session

from rules.model import ACTIVE_STATUSES
from server.base.db import memo
from server.base.models import (
    ActorKind,
    Customer,
    Event,
    Mailbox,
    Note,
    Priority,
    SlaPolicy,
    Ticket,
    TicketStatus,
    TicketTag,
)
from server.services.sla import (
    CalendarError,
    Policy,
    business_minutes_between,
    deadlines,
    default_policy,
    policy_from_config,
)


@dataclass(frozen=True)
class Actor:
    """Who makes a change: an agent, a rule, or the system (sync, scheduler)."""

    kind: ActorKind
    agent_id: int | None = None
    rule_id: int | None = None


SYSTEM = Actor(ActorKind.SYSTEM)
#: The longest tag (the width of ``ticket_tags.name``); every face refuses longer ones.
MAX_TAG_LENGTH = 100
#: The furthest a snooze reaches (the same on every face).
MAX_SNOOZE = timedelta(days=366)
CLOSED_STATUSES = frozenset({TicketStatus.SOLVED.value, TicketStatus.CLOSED.value})
#: No more work: solved, closed, or merged into another ticket.
FINISHED_STATUSES = CLOSED_STATUSES | {TicketStatus.MERGED.value}


def record_event(
    session: Session,
    ticket: Ticket | None,
    kind: str,
    *,
    actor: Actor = SYSTEM,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    mailbox_id: int | None = None,
    at: datetime | None = None,
) -> Event:
    event = Event(
        mailbox_id=mailbox_id if mailbox_id is not None else (ticket.mailbox_id if ticket else None),
        ticket=ticket,
        actor_kind=actor.kind.value,
        actor_agent_id=actor.agent_id,
        actor_rule_id=actor.rule_id,
        kind=kind,
        before=before,
        after=after,
    )
    if at is not None:
        event.created_at = at
    session.add(event)
    if ticket is not None:
        look_again(ticket, at or datetime.now(UTC))
        touch(ticket, at or datetime.now(UTC))  # the reports bound a period's tickets by updated_at
        want_labels(ticket)
    return event


def want_labels(ticket: Ticket) -> None:
    """Ask for the thread's Gmail labels to follow the ticket (server.services.labels applies them after the
    commit), when the mailbox mirrors tickets in labels (its ``gmail_labels.enabled`` setting)."""
    labels = (ticket.mailbox.settings or {}).get("gmail_labels") if ticket.mailbox else None
    if isinstance(labels, dict) and labels.get("enabled") is True:
        ticket.labels_version = (ticket.labels_version or 0) + 1
        ticket.labels_wanted_at = datetime.now(UTC)


def look_again(ticket: Ticket, at: datetime) -> None:
    """Ask the reminder scan to look at the ticket from ``at`` on (it changed; its reminders may too)."""
    if ticket.remind_at is None or at < ticket.remind_at:
        ticket.remind_at = at


def _next_number(session: Session, mailbox_id: int) -> int:
    """Take the mailbox's next ticket number atomically (safe across processes)."""
    statement = (
        update(Mailbox)
        .where(Mailbox.id == mailbox_id)
        .values(next_ticket_number=Mailbox.next_ticket_number + 1)
        .returning(Mailbox.next_ticket_number)
    )
    return int(session.execute(statement).scalar_one()) - 1


class TicketNumbers:
    """The ticket numbers of one transaction that opens many tickets (a page of sync): two statements
    for the page instead of one per ticket, and no gaps.

    The first :meth:`take` writes the mailbox's row (``next = next``), which locks it until the
    transaction ends — PostgreSQL's row lock, SQLite's write lock — so no other process can take a
    number meanwhile; :meth:`close` writes back the first number not taken, before anything else of
    the transaction may take one through :func:`_next_number`."""

    def __init__(self, session: Session, mailbox_id: int) -> None:
        self.session = session
        self.mailbox_id = mailbox_id
        self._next: int | None = None
        self._first: int | None = None

    def take(self) -> int:
        if self._next is None:
            statement = (
                update(Mailbox)
                .where(Mailbox.id == self.mailbox_id)
                .values(next_ticket_number=Mailbox.next_ticket_number)
                .returning(Mailbox.next_ticket_number)
            )
            self._next = self._first = int(self.session.execute(statement).scalar_one())
        number = self._next
        self._next += 1
        return number

    def close(self) -> None:
        """Write back the first number not taken (nothing when none was taken)."""
        if self._next is not None and self._next != self._first:
            self.session.execute(
                update(Mailbox).where(Mailbox.id == self.mailbox_id).values(next_ticket_number=self._next)
            )
        self._next = self._first = None


def open_ticket(
    session: Session,
    mailbox_id: int,
    *,
    subject: str,
    customer: Customer | None,
    gmail_thread_id: str | None,
    created_at: datetime,
    actor: Actor = SYSTEM,
    numbers: TicketNumbers | None = None,
) -> Ticket:
    """A new open ticket with the mailbox's next number.

    With ``numbers`` (a page of sync opening many tickets) the number comes from the page's
    reservation and the ticket is not flushed: it and its Event are written by the caller's one flush
    (they are linked by the relationship, so the ticket has no id until then)."""
    ticket = Ticket(
        mailbox_id=mailbox_id,
        mailbox=session.get(Mailbox, mailbox_id),
        number=numbers.take() if numbers is not None else _next_number(session, mailbox_id),
        subject=subject,
        customer=customer,
        gmail_thread_id=gmail_thread_id,
        status=TicketStatus.OPEN.value,
        tags=[],  # known to be empty: the rules' facts read it without a query
        status_changed_at=created_at,
        unassigned_at=created_at,
        created_at=created_at,
        updated_at=created_at,
    )
    session.add(ticket)
    if numbers is None:
        session.flush()
    refresh_due_times(session, ticket)
    record_event(
        session,
        ticket,
        "ticket_created",
        actor=actor,
        after={"number": ticket.number, "subject": subject, "customer": customer.email if customer else None},
        at=created_at,
    )
    return ticket


#: A customer's answer moves these back to ``open``: solved/closed reopen, pending stops waiting for them.
#: ``on_hold`` (waiting on a third party) stays as it is.
REOPENED_BY_CUSTOMER = CLOSED_STATUSES | {TicketStatus.PENDING.value}


def reopen(session: Session, ticket: Ticket, *, reason: str, at: datetime, actor: Actor = SYSTEM) -> None:
    """Back to ``open`` from solved, closed or pending (a customer wrote again)."""
    if ticket.status in REOPENED_BY_CUSTOMER:
        set_status(session, ticket, TicketStatus.OPEN, at=at, actor=actor, reason=reason)


def set_status(
    session: Session,
    ticket: Ticket,
    status: TicketStatus,
    *,
    at: datetime,
    actor: Actor = SYSTEM,
    reason: str | None = None,
) -> None:
    """Change the status; solving stamps ``solved_at``, leaving solved/closed clears it."""
    if ticket.status == status.value:
        return
    before = ticket.status
    ticket.status = status.value
    ticket.status_changed_at = at
    if status.value in CLOSED_STATUSES:
        ticket.solved_at = ticket.solved_at if before in CLOSED_STATUSES else at
    else:
        ticket.solved_at = None
    _move_pause_clock(session, ticket, at)
    if status.value in CLOSED_STATUSES and before not in CLOSED_STATUSES:
        _measure_resolution(session, ticket, at)
    elif before in CLOSED_STATUSES and status.value not in CLOSED_STATUSES:
        ticket.reopens = (ticket.reopens or 0) + 1
        ticket.resolution_minutes = ticket.resolution_business_minutes = ticket.resolution_breached = None
    refresh_due_times(session, ticket)
    touch(ticket, at)
    record_event(
        session,
        ticket,
        "status_changed",
        actor=actor,
        before={"status": before},
        after={"status": status.value} | ({"reason": reason} if reason else {}),
        at=at,
    )


def record_agent_reply(session: Session, ticket: Ticket, *, at: datetime, actor: Actor = SYSTEM) -> None:
    """An agent's reply to the customer (never automatic mail): counted, and the first one answers."""
    ticket.agent_replies = (ticket.agent_replies or 0) + 1
    record_first_response(session, ticket, at=at, actor=actor)


def record_first_response(session: Session, ticket: Ticket, *, at: datetime, actor: Actor = SYSTEM) -> None:
    """The first agent reply: sets ``first_responded_at`` once, with its measures."""
    if ticket.first_responded_at is not None:
        return
    ticket.first_responded_at = at
    policy = policy_for(session, ticket)
    ticket.first_response_minutes = _minutes(ticket.created_at, at)
    business = _business_minutes(policy, ticket.created_at, at)
    ticket.first_response_business_minutes = business
    ticket.first_response_breached = (
        None if business is None else business > policy.target(ticket.priority)[0]
    )
    refresh_due_times(session, ticket)  # the next deadline is the resolution
    touch(ticket, at)
    record_event(session, ticket, "first_response", actor=actor, after={"at": at.isoformat()}, at=at)


def touch(ticket: Ticket, at: datetime) -> None:
    """Move ``updated_at`` forward (never back: mail can be synced out of order)."""
    if ticket.updated_at is None or at > ticket.updated_at:
        ticket.updated_at = at


def _change(
    session: Session,
    ticket: Ticket,
    column: str,
    value: Any,
    kind: str,
    key: str,
    *,
    at: datetime,
    actor: Actor,
) -> bool:
    """Set one column and write its Event (before/after under ``key``); False when nothing changes."""
    before = getattr(ticket, column)
    if before == value:
        return False
    setattr(ticket, column, value)
    touch(ticket, at)
    record_event(session, ticket, kind, actor=actor, before={key: before}, after={key: value}, at=at)
    return True


def assign(
    session: Session, ticket: Ticket, agent_id: int | None, *, at: datetime, actor: Actor = SYSTEM
) -> None:
    """Give the ticket to an agent (``None``: unassign, and the "unassigned for" clock starts)."""
    if _change(session, ticket, "assignee_id", agent_id, "assigned", "agent_id", at=at, actor=actor):
        ticket.unassigned_at = at if agent_id is None else None


def set_priority(
    session: Session, ticket: Ticket, priority: Priority, *, at: datetime, actor: Actor = SYSTEM
) -> None:
    """Change the priority; the due times follow it."""
    if _change(
        session, ticket, "priority", priority.value, "priority_changed", "priority", at=at, actor=actor
    ):
        refresh_due_times(session, ticket)


def add_tag(session: Session, ticket: Ticket, name: str, *, at: datetime, actor: Actor = SYSTEM) -> None:
    name = name.strip()[:MAX_TAG_LENGTH]
    if not name or name in {tag.name for tag in ticket.tags}:
        return
    ticket.tags.append(TicketTag(name=name))
    touch(ticket, at)
    record_event(session, ticket, "tag_added", actor=actor, after={"tag": name}, at=at)


def remove_tag(session: Session, ticket: Ticket, name: str, *, at: datetime, actor: Actor = SYSTEM) -> None:
    kept = [tag for tag in ticket.tags if tag.name != name.strip()]
    if len(kept) == len(ticket.tags):
        return
    ticket.tags = kept
    touch(ticket, at)
    record_event(session, ticket, "tag_removed", actor=actor, before={"tag": name.strip()}, at=at)


def set_sla_policy(
    session: Session, ticket: Ticket, policy: SlaPolicy | None, *, at: datetime, actor: Actor = SYSTEM
) -> None:
    policy_id = policy.id if policy else None
    if _change(
        session, ticket, "sla_policy_id", policy_id, "sla_policy_changed", "policy_id", at=at, actor=actor
    ):
        session.flush()
        session.expire(ticket, ["sla_policy"])
        refresh_due_times(session, ticket)


def snooze(
    session: Session, ticket: Ticket, until: datetime | None, *, at: datetime, actor: Actor = SYSTEM
) -> None:
    """Hide the ticket from the queues until ``until`` (``None``: wake it now); when it wakes by itself
    the assignee hears of it (server.flows.reminders)."""
    before = ticket.snoozed_until
    if before == until:
        return
    ticket.snoozed_until = until
    touch(ticket, at)
    record_event(
        session,
        ticket,
        "snoozed" if until is not None else "unsnoozed",
        actor=actor,
        before={"until": before.isoformat() if before else None},
        after={"until": until.isoformat() if until else None},
        at=at,
    )


def add_note(
    session: Session,
    ticket: Ticket,
    body: str,
    *,
    at: datetime,
    author_id: int | None = None,
    actor: Actor = SYSTEM,
    mentions: list[int] | None = None,
) -> Note:
    """An internal note (never sent to the customer); ``mentions``: the agents it names (their ids)."""
    note = Note(ticket_id=ticket.id, author_id=author_id, body=body, created_at=at, mentions=mentions or [])
    session.add(note)
    touch(ticket, at)
    after = {"body": body[:200], "mentions": mentions or []}
    record_event(session, ticket, "note_added", actor=actor, after=after, at=at)
    return note


def policy_for(session: Session, ticket: Ticket) -> Policy:
    """The ticket's SLA policy, else the mailbox's default one, else the built-in default (read once
    per :func:`server.base.db.memo_scope`, e.g. once per page of sync)."""
    return memo(
        session,
        ("sla_policy", ticket.mailbox_id, ticket.sla_policy_id),
        lambda: _read_policy(session, ticket),
    )


def _read_policy(session: Session, ticket: Ticket) -> Policy:
    row = ticket.sla_policy or session.scalar(
        select(SlaPolicy)
        .where(SlaPolicy.mailbox_id == ticket.mailbox_id, SlaPolicy.is_default.is_(True))
        .limit(1)
    )
    mailbox = session.get(Mailbox, ticket.mailbox_id)
    if row is not None:
        try:
            return policy_from_config(
                {
                    "name": row.name,
                    "calendar": row.calendar,
                    "targets": row.targets,
                    "pausing_statuses": row.pausing_statuses,
                }
            )
        except CalendarError:
            pass  # a stored policy that no longer validates: fall back rather than stop the mail
    return default_policy(mailbox.settings if mailbox else None)


def refresh_due_times(session: Session, ticket: Ticket) -> None:
    """Recompute the deadlines from the policy, priority, status and time spent paused."""
    try:
        result = deadlines(
            policy_for(session, ticket),
            created_at=ticket.created_at,
            priority=ticket.priority,
            status=ticket.status,
            first_responded=ticket.first_responded_at is not None,
            paused_minutes=ticket.resolution_paused_minutes or 0.0,
        )
    except CalendarError:
        return
    if ticket.first_responded_at is None:
        ticket.first_response_due_at = result.first_response_due_at
    ticket.resolution_due_at = result.resolution_due_at
    ticket.due_at = result.next


#: Tickets re-timed per transaction when a mailbox's settings or policies change.
RETIME_BATCH = 200


def request_retime(mailbox: Mailbox) -> None:
    """Ask for the mailbox's open tickets to be re-timed from the start (in the caller's transaction,
    the one that changes the settings or policies, so the request cannot be lost)."""
    mailbox.retime_cursor = 0
    mailbox.retime_generation = Mailbox.retime_generation + 1  # in SQL: atomic across processes


def retime_pending(
    session: Session,
    mailbox_id: int,
    *,
    at: datetime,
    batch: int = RETIME_BATCH,
    after_batch: Callable[[int], None] | None = None,
) -> int:
    """Run the mailbox's requested re-timing to its end: new deadlines for its open tickets, and a
    fresh look by the reminder scan, ``batch`` tickets per committed transaction.

    Each batch commits together with the cursor that says it is done, so a crash loses at most the
    batch in flight and the next run continues after the cursor. A newer request (the settings
    changed again meanwhile) restarts from the first ticket. Returns the tickets re-timed."""
    done = 0
    while True:
        state = session.execute(
            select(Mailbox.retime_cursor, Mailbox.retime_generation).where(Mailbox.id == mailbox_id)
        ).one_or_none()
        if state is None or state.retime_cursor is None:
            session.rollback()
            return done
        chunk = session.scalars(
            select(Ticket)
            .where(
                Ticket.mailbox_id == mailbox_id,
                Ticket.status.not_in(FINISHED_STATUSES),
                Ticket.id > state.retime_cursor,
            )
            .order_by(Ticket.id)
            .limit(batch)
        ).all()
        for ticket in chunk:
            refresh_due_times(session, ticket)
            look_again(ticket, at)
            want_labels(ticket)  # new deadlines, a new language or label root: the labels follow
        finished = len(chunk) < batch
        moved = session.execute(
            update(Mailbox)
            .where(
                Mailbox.id == mailbox_id,
                Mailbox.retime_generation == state.retime_generation,
                Mailbox.retime_cursor == state.retime_cursor,
            )
            .values(retime_cursor=None if finished else chunk[-1].id)
            .execution_options(synchronize_session=False)
        )
        assert isinstance(moved, CursorResult)  # an UPDATE's result has a row count
        if moved.rowcount != 1:  # another run moved on, or the settings changed again: look anew
            session.rollback()
            continue
        session.commit()
        done += len(chunk)
        if after_batch is not None:
            after_batch(done)
        if finished:
            return done


def refresh_mailbox(session: Session, mailbox: Mailbox, *, at: datetime, batch: int = RETIME_BATCH) -> int:
    """Commit the session's pending change of the mailbox's settings or policies together with a
    re-timing request (none when nothing changed: an interrupted re-timing then just continues),
    then run the re-timing in batches. Returns the tickets re-timed."""
    if session.new or any(session.is_modified(row) for row in session.dirty):
        request_retime(mailbox)
    session.commit()
    return retime_pending(session, mailbox.id, at=at, batch=batch)


def _move_pause_clock(session: Session, ticket: Ticket, at: datetime) -> None:
    """Start or stop the resolution clock's pause as the status enters or leaves a pausing status."""
    policy = policy_for(session, ticket)
    paused_now = ticket.status in policy.pausing_statuses
    if paused_now and ticket.paused_at is None:
        ticket.paused_at = at
    elif not paused_now and ticket.paused_at is not None:
        try:
            stood_still = business_minutes_between(policy.calendar, ticket.paused_at, at)
        except CalendarError:
            stood_still = 0.0
        ticket.resolution_paused_minutes = (ticket.resolution_paused_minutes or 0.0) + max(0.0, stood_still)
        ticket.paused_at = None


def _minutes(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds() / 60)


def _business_minutes(policy: Policy, start: datetime, end: datetime) -> float | None:
    try:
        return max(0.0, business_minutes_between(policy.calendar, start, end))
    except CalendarError:
        return None


def _measure_resolution(session: Session, ticket: Ticket, at: datetime) -> None:
    """The solve's measures: calendar minutes since the ticket came in, and business minutes without
    the time the resolution clock stood still (the SLA's own clock), against the resolution target."""
    policy = policy_for(session, ticket)
    ticket.resolution_minutes = _minutes(ticket.created_at, at)
    business = _business_minutes(policy, ticket.created_at, at)
    if business is not None:
        business = max(0.0, business - (ticket.resolution_paused_minutes or 0.0))
    ticket.resolution_business_minutes = business
    ticket.resolution_breached = None if business is None else business > policy.target(ticket.priority)[1]


#: How many unassigned tickets "take the next one" tries before it says there is none left to take.
TAKE_NEXT_TRIES = 20


def take_next(
    session: Session, mailbox_ids: list[int], agent_id: int, *, at: datetime, actor: Actor = SYSTEM
) -> Ticket | None:
    """Assign the oldest unassigned active ticket of these mailboxes to the agent, race-safe.

    Each try is one conditional UPDATE (``… WHERE assignee_id IS NULL``): when two agents press at once,
    the database lets one of them have each ticket and the other moves on to the next one.
    """
    candidates = session.scalars(
        select(Ticket.id)
        .where(
            Ticket.mailbox_id.in_(mailbox_ids or [-1]),
            Ticket.assignee_id.is_(None),
            Ticket.status.in_(ACTIVE_STATUSES),
            or_(Ticket.snoozed_until.is_(None), Ticket.snoozed_until <= at),
        )
        .order_by(Ticket.created_at, Ticket.id)
        .limit(TAKE_NEXT_TRIES)
    ).all()
    for ticket_id in candidates:
        taken = session.execute(
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.assignee_id.is_(None))
            .values(assignee_id=agent_id, unassigned_at=None)
            .execution_options(synchronize_session=False)
        )
        assert isinstance(taken, CursorResult)  # an UPDATE's result has a row count
        if taken.rowcount != 1:
            continue
        ticket = session.get(Ticket, ticket_id, populate_existing=True)
        assert ticket is not None  # we just updated it
        touch(ticket, at)
        record_event(
            session,
            ticket,
            "assigned",
            actor=actor,
            before={"agent_id": None},
            after={"agent_id": agent_id},
            at=at,
        )
        return ticket
    return None


def open_tickets_of(session: Session, agent_id: int) -> list[Ticket]:
    """The agent's tickets that are not solved or closed, oldest first."""
    return list(
        session.scalars(
            select(Ticket)
            .where(Ticket.assignee_id == agent_id, Ticket.status.not_in(FINISHED_STATUSES))
            .order_by(Ticket.created_at, Ticket.id)
        )
    )


def reassign_all(
    session: Session, from_agent_id: int, to_agent_id: int | None, *, at: datetime, actor: Actor = SYSTEM
) -> int:
    """Give every open ticket of one agent to another (None: unassigned), each with its event."""
    moved = open_tickets_of(session, from_agent_id)
    for ticket in moved:
        assign(session, ticket, to_agent_id, at=at, actor=actor)
    return len(moved)
