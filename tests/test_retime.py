"""Re-timing a mailbox's open tickets after its settings or SLA policies change: bounded batches, each
its own transaction, resumable after a crash, never a ticket left with a stale deadline."""

from __future__ import annotations

import os
import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
from helpers import MAILBOX, postdesk_command
from sqlalchemy import create_engine, select, text

from server.base.models import Mailbox, SlaPolicy, Ticket, TicketStatus
from server.services import tickets
from server.services.tickets.actions import refresh_due_times

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
POLICIES = (
    "policies:\n  - name: Round the clock\n    default: true\n"
    "    calendar: {timezone: Europe/Moscow, hours: always}\n"
    "    targets: {normal: {first_response: 30, resolution: 240}}\n"
)


class Crash(Exception):
    pass


def open_tickets(session, mailbox, count: int) -> None:
    for n in range(count):
        tickets.open_ticket(
            session,
            mailbox.id,
            subject=f"Problem {n}",
            customer=None,
            gmail_thread_id=f"t{n}",
            created_at=START + timedelta(minutes=n),
        )
    session.commit()


def deadlines(session) -> dict[int, tuple]:
    session.expire_all()
    return {
        t.id: (t.first_response_due_at, t.resolution_due_at, t.due_at)
        for t in session.scalars(select(Ticket).order_by(Ticket.id))
    }


def stale(session) -> list[int]:
    """Tickets whose stored deadlines differ from what their policy gives now."""
    before = deadlines(session)
    for ticket in session.scalars(select(Ticket)):
        refresh_due_times(session, ticket)
    session.flush()
    after = {
        t.id: (t.first_response_due_at, t.resolution_due_at, t.due_at)
        for t in session.scalars(select(Ticket))
    }
    session.rollback()
    return [ticket_id for ticket_id, times in before.items() if after[ticket_id] != times]


def round_the_clock(session, mailbox) -> None:
    session.add(
        SlaPolicy(
            mailbox_id=mailbox.id,
            name="Round the clock",
            is_default=True,
            calendar={"timezone": "UTC", "hours": "always"},
            targets={"normal": {"first_response": 30, "resolution": 240}},
        )
    )


def test_a_crash_between_batches_loses_nothing_and_the_next_run_continues(session, mailbox):
    open_tickets(session, mailbox, 23)
    round_the_clock(session, mailbox)
    tickets.request_retime(mailbox)
    session.commit()

    def crash_after_two(done: int) -> None:
        if done == 10:
            raise Crash

    with pytest.raises(Crash):
        tickets.retime_pending(session, mailbox.id, at=START, batch=5, after_batch=crash_after_two)
    session.rollback()
    stale_midway = stale(session)
    cursor = session.scalar(select(Mailbox.retime_cursor))
    resumed = tickets.retime_pending(session, mailbox.id, at=START, batch=5)

    assert len(stale_midway) == 13 and min(stale_midway) > cursor  # two batches done, committed
    assert resumed == 13 and stale(session) == []
    assert session.scalar(select(Mailbox.retime_cursor)) is None
    assert tickets.retime_pending(session, mailbox.id, at=START, batch=5) == 0  # nothing pending


def test_a_change_during_a_run_restarts_it_from_the_first_ticket(session, mailbox):
    open_tickets(session, mailbox, 12)
    round_the_clock(session, mailbox)
    tickets.request_retime(mailbox)
    session.commit()
    changed: list[int] = []

    def admin_changes_the_policy_again(done: int) -> None:
        if not changed:  # another process commits a new target and asks for a re-timing
            policy = session.scalar(select(SlaPolicy).where(SlaPolicy.name == "Round the clock"))
            policy.targets = {"normal": {"first_response": 10, "resolution": 60}}
            tickets.request_retime(session.get(Mailbox, mailbox.id))
            session.commit()
            changed.append(done)

    done = tickets.retime_pending(
        session, mailbox.id, at=START, batch=5, after_batch=admin_changes_the_policy_again
    )

    assert changed == [5] and done == 5 + 12  # the first batch, then all of them again
    assert stale(session) == []
    first = session.scalar(select(Ticket).order_by(Ticket.id))
    assert first.first_response_due_at == first.created_at + timedelta(minutes=10)


def test_closed_tickets_keep_their_times_and_reminders_look_again(session, mailbox):
    open_tickets(session, mailbox, 3)
    solved = session.scalar(select(Ticket).order_by(Ticket.id))
    tickets.set_status(session, solved, TicketStatus.CLOSED, at=START)
    session.commit()
    round_the_clock(session, mailbox)

    done = tickets.refresh_mailbox(session, session.get(Mailbox, mailbox.id), at=START, batch=2)

    assert done == 2
    rows = session.scalars(select(Ticket).order_by(Ticket.id)).all()
    assert rows[0].due_at is None and [t.remind_at for t in rows[1:]] == [START, START]


def test_mailbox_settings_with_nothing_changed_continue_an_interrupted_run(
    runner, session, mailbox, tmp_path
):
    open_tickets(session, mailbox, 8)
    settings = tmp_path / "settings.yaml"
    settings.write_text("locale: ru\n", encoding="utf-8")
    assert runner.invoke(args=["mailbox", "settings", MAILBOX, str(settings)]).exit_code == 0
    box = session.get(Mailbox, mailbox.id)
    box.retime_cursor = min(deadlines(session)) + 4  # as a crash after five tickets leaves it
    session.commit()

    again = runner.invoke(args=["mailbox", "settings", MAILBOX, str(settings)])
    changed = tmp_path / "changed.yaml"
    changed.write_text("locale: en\n", encoding="utf-8")
    different = runner.invoke(args=["mailbox", "settings", MAILBOX, str(changed)])

    assert again.exit_code == 0 and "3 open tickets re-timed" in again.output  # the five were done
    assert different.exit_code == 0 and "8 open tickets re-timed" in different.output


def test_a_bad_batch_size_is_a_usage_error(app, runner, mailbox, tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text("locale: ru\n", encoding="utf-8")
    app.config["RETIME_BATCH"] = "lots"

    result = runner.invoke(args=["mailbox", "settings", MAILBOX, str(settings)])

    assert result.exit_code == 2 and "POSTDESK_RETIME_BATCH must be a positive whole number" in result.output


@pytest.mark.slow
def test_kill_9_during_policy_import_then_a_second_run_finishes_with_no_stale_deadline(
    app, session, mailbox, database_url, tmp_path
):
    open_tickets(session, mailbox, 1500)
    min_id = min(deadlines(session))
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICIES, encoding="utf-8")
    env = {
        **os.environ,
        "POSTDESK_DATABASE_URL": database_url,
        "POSTDESK_INSTANCE_PATH": app.instance_path,
        "POSTDESK_RETIME_BATCH": "5",
    }
    command = [postdesk_command(), "sla", "policy-import", str(policies), "--mailbox", MAILBOX]
    engine = create_engine(database_url)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    cursor: int | None = None
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        with engine.connect() as connection:
            cursor = connection.execute(text("SELECT retime_cursor FROM mailboxes")).scalar_one()
        if (cursor or 0) >= min_id + 100:  # twenty batches are committed: kill it mid-work
            break
        time.sleep(0.005)
    process.kill()
    _, stderr = process.communicate()
    engine.dispose()

    session.expire_all()
    midway = len(stale(session))
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    assert process.returncode == -9, f"the import ended before it was killed: {stderr.decode()}"
    assert 0 < midway < 1500  # the policy is in, part of the tickets were re-timed
    assert second.returncode == 0, second.stderr
    re_timed = int(second.stdout.split(";")[1].split()[0])
    assert re_timed < 1500  # the second run went on from the cursor, it did not start again
    assert stale(session) == []
    assert session.scalar(select(Mailbox.retime_cursor)) is None
