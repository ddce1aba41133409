"""Ticket state mirrored in Gmail labels (server.services.labels) against the sandbox with the real client:
each ticket action gives exactly the expected labels on the thread, names follow the agent and the
mailbox's language, a change made after the labels were read is applied again, and `postdesk labels
sync` brings back a label deleted in Gmail."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from helpers import MAILBOX, make_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.models import Agent, Event, Priority, Ticket, TicketStatus
from server.flows.reminders import run_reminders
from server.services import tickets
from server.services.labels import apply_wanted


def _enable(session, box, **options):
    box.settings = {**(box.settings or {}), "gmail_labels": {"enabled": True, **options}}
    session.commit()


def _thread_labels(helpdesk, ticket) -> set[str]:
    """The names of the labels on the ticket's thread, as Gmail shows them (any message carrying one)."""
    user = helpdesk.gmail.sandbox.user(MAILBOX)
    names = {label_id: label["name"] for label_id, label in user.labels.items()}
    return {
        names[x] for m in user.messages.values() if m.thread_id == ticket.gmail_thread_id for x in m.label_ids
    }


def _ours(labels: set[str]) -> set[str]:
    return {name for name in labels if name.startswith("Postdesk/")}


def _apply(helpdesk, session, now=None):
    return apply_wanted(session, helpdesk.mailboxes[MAILBOX], helpdesk.clients[MAILBOX], now=now)


def test_each_ticket_action_gives_exactly_the_expected_labels(helpdesk, deliver, session):
    box = helpdesk.connect(MAILBOX, agents=["anna@example.com", "boris@example.com"])
    _enable(session, box)
    deliver(make_email("Printer on fire", "Smoke everywhere", sender="alice@customer.test"))
    helpdesk.cycle()
    ticket = session.scalar(select(Ticket))
    owner = session.get(Agent, ticket.assignee_id)  # the default rules spread new tickets round-robin
    boris = session.scalar(select(Agent).where(Agent.email == "boris@example.com"))
    assert ticket.labels_wanted_at is not None  # asked for in the transaction that made the ticket
    _apply(helpdesk, session)
    assert _ours(_thread_labels(helpdesk, ticket)) == {"Postdesk/Open", f"Postdesk/Mine/{owner.name}"}

    now = datetime.now(UTC)
    steps = [
        (lambda: tickets.assign(session, ticket, boris.id, at=now), {"Postdesk/Open", "Postdesk/Mine/Boris"}),
        (lambda: tickets.assign(session, ticket, None, at=now), {"Postdesk/Open", "Postdesk/Unassigned"}),
        (lambda: tickets.set_priority(session, ticket, Priority.URGENT, at=now),
         {"Postdesk/Open", "Postdesk/Unassigned", "Postdesk/Urgent"}),
        (lambda: tickets.set_status(session, ticket, TicketStatus.PENDING, at=now),
         {"Postdesk/Pending", "Postdesk/Unassigned", "Postdesk/Urgent"}),
        (lambda: tickets.snooze(session, ticket, now + timedelta(days=1), at=now),
         {"Postdesk/Pending", "Postdesk/Unassigned", "Postdesk/Urgent", "Postdesk/Snoozed"}),
        (lambda: tickets.snooze(session, ticket, None, at=now),
         {"Postdesk/Pending", "Postdesk/Unassigned", "Postdesk/Urgent"}),
        (lambda: tickets.set_status(session, ticket, TicketStatus.SOLVED, at=now), {"Postdesk/Solved"}),
    ]  # fmt: skip
    for step, expected in steps:
        step()
        session.commit()
        _apply(helpdesk, session)
        assert _ours(_thread_labels(helpdesk, ticket)) == expected
        assert "INBOX" in _thread_labels(helpdesk, ticket)  # archiving is an option, off here


def test_overdue_by_the_clock_and_archive_on_solve(helpdesk, deliver, session):
    box = helpdesk.connect(MAILBOX, agents=["anna@example.com"])
    _enable(session, box, archive_on_solve=True)
    box.settings = {**box.settings, "calendar": {"timezone": "UTC", "hours": "always"}}
    session.commit()
    deliver(
        make_email("Invoice", "Where is it?", sender="bob@customer.test", message_id="<inv@customer.test>")
    )
    helpdesk.cycle()
    ticket = session.scalar(select(Ticket))
    _apply(helpdesk, session)
    assert "Postdesk/Overdue" not in _thread_labels(helpdesk, ticket)

    later = ticket.first_response_due_at + timedelta(minutes=1)
    with time_machine.travel(later, tick=False):
        run_reminders(session, now=later)  # records the breach: the ticket changed, its labels too
        _apply(helpdesk, session, now=later)
    assert "Postdesk/Overdue" in _thread_labels(helpdesk, ticket)

    tickets.set_status(session, ticket, TicketStatus.SOLVED, at=datetime.now(UTC))
    session.commit()
    _apply(helpdesk, session)
    assert _ours(_thread_labels(helpdesk, ticket)) == {"Postdesk/Solved"}
    assert "INBOX" not in _thread_labels(helpdesk, ticket)  # archived on solve

    deliver(
        make_email(
            "Re: Invoice", "Still nothing", sender="bob@customer.test", in_reply_to="<inv@customer.test>"
        )
    )
    helpdesk.cycle()
    session.expire_all()
    _apply(helpdesk, session)
    assert ticket.status == "open" and "INBOX" in _thread_labels(helpdesk, ticket)  # back in the inbox
    assert _ours(_thread_labels(helpdesk, ticket)) >= {"Postdesk/Open"}


def test_a_change_while_labels_are_applied_is_applied_again_and_names_follow_the_agent(
    helpdesk, deliver, session
):
    box = helpdesk.connect(MAILBOX, agents=["anna@example.com"])
    _enable(session, box)
    deliver(make_email("Login", "Cannot sign in", sender="carol@customer.test"))
    helpdesk.cycle()
    ticket = session.scalar(select(Ticket))
    anna = session.scalar(select(Agent).where(Agent.email == "anna@example.com"))
    tickets.assign(session, ticket, anna.id, at=datetime.now(UTC))
    session.commit()

    # Someone changes the ticket while its labels are on their way to Gmail: that request stays.
    client = helpdesk.clients[MAILBOX]
    plain = client.modify_thread

    def racing(thread_id, add=(), remove=()):
        with Session(session.get_bind()) as other:
            tickets.set_priority(other, other.get(Ticket, ticket.id), Priority.URGENT, at=datetime.now(UTC))
            other.commit()
        client.modify_thread = plain
        return plain(thread_id, add=add, remove=remove)

    client.modify_thread = racing
    first = _apply(helpdesk, session)
    session.expire_all()
    assert (first.tickets, first.stale) == (0, 1) and ticket.labels_wanted_at is not None
    second = _apply(helpdesk, session)
    assert (second.tickets, second.stale) == (1, 0)
    assert "Postdesk/Urgent" in _thread_labels(helpdesk, ticket)

    anna.name = "Anna K."
    tickets.set_priority(session, ticket, Priority.HIGH, at=datetime.now(UTC))
    session.commit()
    _apply(helpdesk, session)
    assert "Postdesk/Mine/Anna K." in _thread_labels(helpdesk, ticket)
    assert "Postdesk/Mine/Anna" not in {label["name"] for label in helpdesk.clients[MAILBOX].labels()}


def test_labels_sync_brings_back_a_label_deleted_in_gmail(helpdesk, deliver, session, app):
    box = helpdesk.connect(MAILBOX, agents=["anna@example.com"])
    _enable(session, box)
    for n in range(7):  # enough threads with the same change for one batchModify
        deliver(make_email(f"Question {n}", "Hello", sender=f"c{n}@customer.test"))
    helpdesk.cycle()
    _apply(helpdesk, session)
    client = helpdesk.clients[MAILBOX]
    open_label = next(label for label in client.labels() if label["name"] == "Postdesk/Open")
    client.call("labels.delete", client.users.labels().delete(userId="me", id=open_label["id"]))

    result = app.test_cli_runner().invoke(args=["labels", "sync", "--mailbox", MAILBOX])

    assert result.exit_code == 0, result.output
    assert "7 of 7 open tickets labelled" in result.output
    for ticket in session.scalars(select(Ticket)):
        assert "Postdesk/Open" in _thread_labels(helpdesk, ticket)
    off = app.test_cli_runner().invoke(args=["labels", "sync", "--mailbox", "nobody@example.com"])
    assert off.exit_code == 2


def _gmail_change(helpdesk, ticket, add=(), remove=()):
    """Someone in Gmail changes the labels of the ticket's thread (another client of the mailbox)."""
    client = helpdesk.clients[MAILBOX]
    ids = {label["name"]: label["id"] for label in client.labels()}
    client.modify_thread(
        ticket.gmail_thread_id, add=[ids.get(n, n) for n in add], remove=[ids.get(n, n) for n in remove]
    )


def _events(session, ticket, kind):
    session.expire_all()
    return session.scalars(select(Event).where(Event.ticket_id == ticket.id, Event.kind == kind)).all()


def test_label_changes_made_in_gmail_become_ticket_actions_and_ours_never_echo(helpdesk, deliver, session):
    box = helpdesk.connect(MAILBOX, agents=["anna@example.com", "boris@example.com"])
    _enable(session, box, archive_on_solve=True)
    deliver(make_email("Printer", "Jammed", sender="dora@customer.test"))
    helpdesk.cycle()
    ticket = session.scalar(select(Ticket))
    _apply(helpdesk, session)
    tickets.assign(session, ticket, None, at=datetime.now(UTC))
    session.commit()
    _apply(helpdesk, session)
    helpdesk.cycle()  # reads back the history of our own changes: nothing happens
    assert _events(session, ticket, "changed_in_gmail") == [] and ticket.assignee_id is None

    # Boris takes it in Gmail: his label on, "Unassigned" off.
    boris = session.scalar(select(Agent).where(Agent.email == "boris@example.com"))
    _gmail_change(helpdesk, ticket, add=["Postdesk/Mine/Boris"], remove=["Postdesk/Unassigned"])
    helpdesk.cycle()
    session.expire_all()
    assert ticket.assignee_id == boris.id
    assert [e.after["added"] for e in _events(session, ticket, "changed_in_gmail")] == [f"agent:{boris.id}"]
    _apply(helpdesk, session)
    assert _ours(_thread_labels(helpdesk, ticket)) == {"Postdesk/Open", "Postdesk/Mine/Boris"}

    # Solved in Gmail by putting the label on; then archived: nothing more to do.
    _gmail_change(helpdesk, ticket, add=["Postdesk/Solved"])
    helpdesk.cycle()
    session.expire_all()
    assert ticket.status == "solved"
    _apply(helpdesk, session)
    assert _ours(_thread_labels(helpdesk, ticket)) == {"Postdesk/Solved"}  # "Open" taken off by us
    helpdesk.cycle()
    changed = [
        e.after for e in _events(session, ticket, "changed_in_gmail")
    ]  # our clean-up did not come back
    assert changed == [{"added": f"agent:{boris.id}", "by": "someone in Gmail"},
                       {"added": "status:solved", "by": "someone in Gmail"}]  # fmt: skip


def test_archiving_in_gmail_solves_when_the_mailbox_archives_solved_tickets(helpdesk, deliver, session):
    box = helpdesk.connect(MAILBOX, agents=["anna@example.com"])
    _enable(session, box, archive_on_solve=True)
    deliver(make_email("Refund", "Please", sender="erin@customer.test"))
    helpdesk.cycle()
    ticket = session.scalar(select(Ticket))
    _apply(helpdesk, session)
    _gmail_change(helpdesk, ticket, remove=["INBOX"])
    helpdesk.cycle()
    session.expire_all()
    assert ticket.status == "solved"
    assert _events(session, ticket, "changed_in_gmail")[0].after == {
        "removed": "inbox",
        "by": "someone in Gmail",
    }


def test_a_gmail_label_that_changes_nothing_is_put_right_again(helpdesk, deliver, session):
    """ "Urgent" put on a solved urgent ticket, "Open" taken off an open one: the ticket is already so (or
    the label is Postdesk's to say), so nothing happens to it, and the thread gets its labels back
    (found by the random test below, seed 660833)."""
    box = helpdesk.connect(MAILBOX, agents=["anna@example.com"])
    _enable(session, box)
    deliver(make_email("Outage", "Down", sender="gus@customer.test"))
    helpdesk.cycle()
    ticket = session.scalar(select(Ticket))
    tickets.set_priority(session, ticket, Priority.URGENT, at=datetime.now(UTC))
    session.commit()
    _apply(helpdesk, session)
    _gmail_change(helpdesk, ticket, remove=["Postdesk/Open"])
    helpdesk.cycle()
    _apply(helpdesk, session)
    assert "Postdesk/Open" in _thread_labels(helpdesk, ticket)

    tickets.set_status(session, ticket, TicketStatus.SOLVED, at=datetime.now(UTC))
    session.commit()
    _apply(helpdesk, session)
    assert _ours(_thread_labels(helpdesk, ticket)) == {"Postdesk/Solved"}  # urgency shows on active tickets
    _gmail_change(helpdesk, ticket, add=["Postdesk/Urgent"])
    helpdesk.cycle()
    _apply(helpdesk, session)
    session.expire_all()
    assert ticket.priority == "urgent" and ticket.status == "solved"
    assert _events(session, ticket, "changed_in_gmail") == []
    assert _ours(_thread_labels(helpdesk, ticket)) == {"Postdesk/Solved"}


def test_a_gmail_change_loses_to_a_newer_ticket_change(helpdesk, deliver, session):
    box = helpdesk.connect(MAILBOX, agents=["anna@example.com"])
    _enable(session, box)
    deliver(make_email("Login", "Locked out", sender="fay@customer.test"))
    helpdesk.cycle()
    ticket = session.scalar(select(Ticket))
    _apply(helpdesk, session)
    tickets.set_status(session, ticket, TicketStatus.PENDING, at=datetime.now(UTC))  # not in Gmail yet
    session.commit()
    _gmail_change(helpdesk, ticket, add=["Postdesk/Solved"])
    helpdesk.cycle()  # sync reads the Gmail change before the worker put the newer labels
    session.expire_all()
    assert ticket.status == "pending"
    ignored = _events(session, ticket, "gmail_label_ignored")
    assert [e.after["added"] for e in ignored] == ["status:solved"]
    _apply(helpdesk, session)
    assert _ours(_thread_labels(helpdesk, ticket)) >= {"Postdesk/Pending"}
    assert "Postdesk/Solved" not in _thread_labels(helpdesk, ticket)


#: A fixed seed (a case that once failed) and a fresh one each run, one per pass for the suite's time:
#: the SQLite pass replays the fixed case, the PostgreSQL pass draws a fresh one.
_SEEDS = [None] if os.environ.get("POSTDESK_TEST_DATABASE_URL", "").startswith("postgresql") else [660833]


@pytest.mark.parametrize("seed", _SEEDS, ids=lambda seed: "random" if seed is None else f"seed-{seed}")
def test_a_thousand_random_changes_from_both_sides_end_in_agreement(helpdesk, deliver, session, seed):
    """Postdesk and people in Gmail change the same tickets at random; the worker syncs and labels in
    between. Each cycle, no ticket gets more Gmail actions than Gmail changes were made to it (ours never
    echo, none is applied twice); at the end every thread's labels are exactly its ticket's."""
    import random

    from server.services.labels import label_name, wanted_keys

    seed = random.randrange(1_000_000) if seed is None else seed
    rng = random.Random(seed)
    box = helpdesk.connect(MAILBOX, agents=["anna@example.com", "boris@example.com"])
    _enable(session, box)
    for n in range(4):
        deliver(make_email(f"Case {n}", "Help", sender=f"p{n}@customer.test"))
    helpdesk.cycle()
    _apply(helpdesk, session)
    all_tickets = session.scalars(select(Ticket).order_by(Ticket.id)).all()
    agents = session.scalars(select(Agent).order_by(Agent.id)).all()
    client = helpdesk.clients[MAILBOX]
    names = {label["name"]: label["id"] for label in client.labels()}
    statuses = ("Open", "Pending", "On hold", "Solved")
    made: dict[int, int] = {t.id: 0 for t in all_tickets}
    seen = 0
    for step in range(1000):
        ticket = rng.choice(all_tickets)
        if rng.random() < 0.5:  # in Postdesk (the add-on, a rule)
            now = datetime.now(UTC)
            what = rng.randrange(3)
            if what == 0:
                tickets.assign(session, ticket, rng.choice([None, *[a.id for a in agents]]), at=now)
            elif what == 1:
                tickets.set_status(
                    session,
                    ticket,
                    TicketStatus(rng.choice(["open", "pending", "on_hold", "solved"])),
                    at=now,
                )
            else:
                tickets.set_priority(session, ticket, rng.choice([Priority.URGENT, Priority.NORMAL]), at=now)
            session.commit()
        else:  # in Gmail, by someone of the team
            what = rng.randrange(3)
            if what == 0:
                add = [f"Postdesk/{rng.choice(statuses)}"]
            elif what == 1:
                add = [rng.choice(["Postdesk/Unassigned", *(f"Postdesk/Mine/{a.name}" for a in agents)])]
            else:
                add = ["Postdesk/Urgent"]
            remove = ["Postdesk/Urgent"] if add == ["Postdesk/Urgent"] and rng.random() < 0.5 else []
            add = [] if remove else add
            client.modify_thread(
                ticket.gmail_thread_id, add=[names[n] for n in add], remove=[names[n] for n in remove]
            )
            made[ticket.id] += 1
        if rng.random() < 0.35 or step == 999:
            helpdesk.cycle()
            events = session.scalars(
                select(Event).where(Event.kind == "changed_in_gmail", Event.id > seen)
            ).all()
            for t in all_tickets:
                assert sum(e.ticket_id == t.id for e in events) <= made[t.id], f"seed {seed} step {step}"
            seen = max([seen, *(e.id for e in events)])
            made = dict.fromkeys(made, 0)
            _apply(helpdesk, session)
    for _ in range(3):  # the last Gmail changes read, their labels put, nothing left
        helpdesk.cycle()
        _apply(helpdesk, session)
    session.expire_all()
    kinds = [
        e.kind
        for e in session.scalars(
            select(Event).where(Event.kind.in_(["changed_in_gmail", "gmail_label_ignored"]))
        )
    ]
    print(
        f"seed {seed}: {kinds.count('changed_in_gmail')} Gmail actions, {kinds.count('gmail_label_ignored')} ignored"
    )
    assert kinds.count("changed_in_gmail") > 50, f"seed {seed}"  # the Gmail side really acted
    now = datetime.now(UTC)
    people = {a.id: a.name for a in agents}
    for ticket in all_tickets:
        expected = {label_name(k, "Postdesk", "en", people) for k in wanted_keys(ticket, now)}
        assert _ours(_thread_labels(helpdesk, ticket)) == expected, f"seed {seed}: #{ticket.number}"
        assert ticket.labels_wanted_at is None, f"seed {seed}"


def test_turning_labels_on_asks_for_them_on_every_open_ticket_and_the_worker_puts_them(
    helpdesk, deliver, session
):
    from server.services.mailbox_settings import save

    box = helpdesk.connect(MAILBOX, agents=["anna@example.com"])
    for n in range(3):
        deliver(make_email(f"Case {n}", "Help", sender=f"q{n}@customer.test"))
    helpdesk.cycle()
    assert all(t.labels_wanted_at is None for t in session.scalars(select(Ticket)))  # off: nothing asked

    save(session, box, {**(box.settings or {}), "gmail_labels": {"enabled": True, "root": "Desk"}}, batch=2)
    session.expire_all()
    assert all(t.labels_wanted_at is not None for t in session.scalars(select(Ticket)))
    done = _apply(helpdesk, session)
    assert done.tickets == 3
    names = {label["name"] for label in helpdesk.clients[MAILBOX].labels()}
    assert {"Desk", "Desk/Open", "Desk/Pending", "Desk/On hold", "Desk/Solved", "Desk/Mine/Anna"} <= names

    save(
        session,
        box,
        {**box.settings, "locale": "ru", "gmail_labels": {"enabled": True, "root": "Desk"}},
        batch=2,
    )
    _apply(helpdesk, session)
    names = {label["name"] for label in helpdesk.clients[MAILBOX].labels()}
    assert {"Desk/Открыт", "Desk/Решён"} <= names and "Desk/Open" not in names  # renamed, not duplicated
