"""Crash safety with real processes: ``kill -9`` of ``postdesk sync`` at 20 random moments, then a
clean run, gives the same tickets and messages as one uninterrupted run."""

from __future__ import annotations

import os
import random
import subprocess
import time
from typing import Any

import pytest
from helpers import MAILBOX, http, make_email, postdesk_command
from sqlalchemy import create_engine, text

#: Kill moments per run: the SQLite pass draws 20; the PostgreSQL pass 12 (the same code under the
#: other database, and the soak, tests/soak.py, kills workers on PostgreSQL too), for the suite's time.
KILLS = 12 if os.environ.get("POSTDESK_TEST_DATABASE_URL", "").startswith("postgresql") else 20


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [postdesk_command(), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def environment(database_url: str, tmp_path) -> dict[str, str]:
    return {
        **os.environ,
        "POSTDESK_DATABASE_URL": database_url,
        "POSTDESK_INSTANCE_PATH": str(tmp_path / "instance"),
        "POSTDESK_GMAIL_BACKOFF_BASE": "0.01",
    }


def prepare(env: dict[str, str], sandbox_url: str) -> None:
    for args in (["init-db"], ["mailbox", "add", MAILBOX, "--sandbox", sandbox_url, "--no-default-rules"]):
        result = run(args, env)
        assert result.returncode == 0, result.stderr


def snapshot(database_url: str) -> dict[str, Any]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        tickets = connection.execute(
            text(
                "SELECT t.number, t.subject, t.status, c.email, t.gmail_thread_id, t.first_responded_at, t.created_at "
                "FROM tickets t LEFT JOIN customers c ON c.id = t.customer_id ORDER BY t.number"
            )
        ).all()
        messages = connection.execute(
            text(
                "SELECT m.gmail_id, t.number, m.direction, m.from_email, m.subject, m.text, m.sent_at, m.is_auto "
                "FROM messages m LEFT JOIN tickets t ON t.id = m.ticket_id ORDER BY m.gmail_id"
            )
        ).all()
        events = connection.execute(
            text(
                "SELECT t.number, e.kind, COUNT(*) FROM events e JOIN tickets t ON t.id = e.ticket_id "
                "GROUP BY t.number, e.kind ORDER BY t.number, e.kind"
            )
        ).all()
        mailbox = connection.execute(
            text("SELECT history_id, next_ticket_number, sync_state FROM mailboxes")
        ).one()
    engine.dispose()
    return {
        "tickets": [tuple(row) for row in tickets],
        "messages": [tuple(row) for row in messages],
        "events": [tuple(row) for row in events],
        "mailbox": tuple(mailbox),
    }


def deliver_threads(gmail, start: int, count: int, replies_to: range = range(0)) -> None:
    for i in range(start, start + count):
        sender = f"customer{i % 17}@example.org"
        gmail.sandbox.deliver(
            MAILBOX, make_email(f"Problem {i}", f"Details {i}", sender=sender, message_id=f"<p{i}@x>")
        )
    for i in replies_to:
        if i % 3 == 0:
            body = make_email(
                f"Re: Problem {i}",
                "We are on it",
                sender=MAILBOX,
                to="c@example.org",
                in_reply_to=f"<p{i}@x>",
            )
        else:
            body = make_email(
                f"Re: Problem {i}",
                f"Any news on {i}?",
                sender=f"customer{i % 17}@example.org",
                in_reply_to=f"<p{i}@x>",
            )
        gmail.sandbox.deliver(MAILBOX, body)


@pytest.mark.slow
@pytest.mark.timeout(300)  # twenty kills and restarts of real processes: about a minute, more under load
def test_kill_9_at_random_moments_then_a_clean_run_equals_one_uninterrupted_run(
    tmp_path, gmail, database_url, second_database_url
):
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    http("POST", f"{gmail.url}sandbox/faults", {"latency_ms": 4, "methods": ["messages.get"]})
    deliver_threads(gmail, 0, 160)
    crashed, reference = environment(database_url, tmp_path), environment(second_database_url, tmp_path)
    prepare(crashed, gmail.url)
    prepare(reference, gmail.url)

    # How long does one uninterrupted run take here? Kill moments are spread over that span.
    scratch_env = environment(f"sqlite:///{tmp_path / 'scratch.sqlite3'}", tmp_path)
    prepare(scratch_env, gmail.url)
    started = time.monotonic()
    assert run(["sync", "--once"], scratch_env).returncode == 0
    span = time.monotonic() - started

    killed_mid_run = 0
    for kill in range(KILLS):
        if (
            kill == KILLS // 2
        ):  # new mail arrives half-way: later runs are incremental or resume the full sync
            deliver_threads(gmail, 160, 40, replies_to=range(0, 160, 4))
        process = subprocess.Popen(
            [postdesk_command(), "sync", "--once"],
            env=crashed,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.05, span * 0.9))
        if process.poll() is None:
            killed_mid_run += 1
        process.kill()  # SIGKILL: no cleanup, no rollback by the process itself
        process.wait()

    clean = run(["sync", "--once"], crashed)
    uninterrupted = run(["sync", "--once"], reference)

    assert clean.returncode == 0, clean.stderr
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    assert killed_mid_run >= 3, (
        f"seed {seed}: only {killed_mid_run} kills landed while sync ran (span {span:.2f}s)"
    )
    after_crashes, expected = snapshot(database_url), snapshot(second_database_url)
    assert len(expected["messages"]) == 160 + 40 + 40
    assert after_crashes == expected, f"seed {seed}"
