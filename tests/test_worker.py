"""The worker: exactly one process runs the jobs, another takes over when it dies, SIGTERM is graceful."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta

from helpers import Process, make_email, wait_until
from sqlalchemy import create_engine, select, text

from server.base.models import Event, TicketStatus
from server.flows.clock.lease import acquire, release
from server.flows.reminders import run_reminders
from server.services import tickets

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def count_messages(database_url: str) -> int:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        count = int(connection.execute(text("SELECT COUNT(*) FROM messages")).scalar() or 0)
    engine.dispose()
    return count


TTL = timedelta(seconds=60)


def test_one_holder_at_a_time_and_a_take_over_after_expiry(session):
    assert acquire(session, "a", now=T0, ttl=TTL)
    assert not acquire(session, "b", now=T0 + timedelta(seconds=30), ttl=TTL)
    assert acquire(session, "a", now=T0 + timedelta(seconds=45), ttl=TTL)  # renewal
    assert not acquire(session, "b", now=T0 + timedelta(seconds=100), ttl=TTL)  # renewed until 105
    assert acquire(session, "b", now=T0 + timedelta(seconds=106), ttl=TTL)  # a died: b takes over
    assert not acquire(session, "a", now=T0 + timedelta(seconds=107), ttl=TTL)
    release(session, "b", now=T0 + timedelta(seconds=110))
    assert acquire(session, "a", now=T0 + timedelta(seconds=110), ttl=TTL)  # a graceful stop frees it at once


def test_passed_deadlines_become_one_breach_event_each(session, mailbox):
    ticket = tickets.open_ticket(
        session, mailbox.id, subject="s", customer=None, gmail_thread_id="t", created_at=T0
    )
    solved = tickets.open_ticket(
        session, mailbox.id, subject="done", customer=None, gmail_thread_id="u", created_at=T0
    )
    tickets.set_status(session, solved, TicketStatus.SOLVED, at=T0)
    session.commit()
    first_due, resolution_due = ticket.first_response_due_at, ticket.resolution_due_at

    before = run_reminders(session, now=first_due - timedelta(minutes=1)).breaches
    at_first = run_reminders(session, now=first_due + timedelta(minutes=1)).breaches
    again = run_reminders(session, now=first_due + timedelta(minutes=2)).breaches
    at_resolution = run_reminders(session, now=resolution_due + timedelta(minutes=1)).breaches

    breaches = session.scalars(select(Event).where(Event.kind == "sla_breached")).all()
    assert (before, at_first, again, at_resolution) == (0, 1, 0, 1)
    assert [(e.ticket_id, e.after["deadline"]) for e in breaches] == [
        (ticket.id, "first_response"),
        (ticket.id, "resolution"),
    ]
    assert breaches[0].created_at == first_due


def test_two_workers_one_runs_the_jobs_and_the_other_takes_over(
    tmp_path, gmail, database_url, app, mailbox, deliver
):
    env = {
        "POSTDESK_DATABASE_URL": database_url,
        "POSTDESK_INSTANCE_PATH": app.instance_path,
        "POSTDESK_POLL_SECONDS": "0.3",
        "POSTDESK_WORKER_LEASE_SECONDS": "2",
        "POSTDESK_WORKER_RENEW_SECONDS": "0.2",
    }
    first = Process(["worker"], env=env)
    second = None
    try:
        first.wait_for(r"running the jobs")
        second = Process(["worker"], env=env)
        second.wait_for(r"another worker holds the lease; waiting")
        deliver(make_email("Picked up by the worker", sender="w@example.org"))
        assert wait_until(lambda: count_messages(database_url) == 1), "the worker never synced the new mail"
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        second.wait_for(r"running the jobs", timeout=30)
        second.proc.send_signal(signal.SIGTERM)
        second.wait_for(r"stopped", timeout=30)
        assert second.proc.wait(timeout=30) == 0
    finally:
        first.stop()
        if second is not None:
            second.stop()
