"""``kill -9`` of the sender at random moments, then a restart: every Outbox email is in Gmail once."""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections import Counter

import pytest
from helpers import MAILBOX, http, make_email, postdesk_command
from helpers import run_postdesk as run
from sqlalchemy import create_engine, text

#: Kills per run: 15 in the SQLite pass, 8 in the PostgreSQL pass (the soak, tests/soak.py, also kills
#: senders on PostgreSQL and checks every Outbox email in SENT exactly once), for the suite's time.
KILLS = 8 if os.environ.get("POSTDESK_TEST_DATABASE_URL", "").startswith("postgresql") else 15
TICKETS = 60


@pytest.mark.slow
def test_every_outbox_email_is_sent_exactly_once_whatever_kills_the_sender(tmp_path, gmail, database_url):
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    env = {
        **os.environ,
        "POSTDESK_DATABASE_URL": database_url,
        "POSTDESK_INSTANCE_PATH": str(tmp_path / "instance"),
        # One sender at a time here: a killed sender's claim may be checked and retried at once.
        "POSTDESK_OUTBOX_CLAIM_SECONDS": "0",
    }
    assert run(["init-db"], env).returncode == 0
    assert run(["mailbox", "add", MAILBOX, "--sandbox", gmail.url], env).returncode == 0
    assert run(["sync", "--once"], env).returncode == 0  # the first full sync of the empty mailbox
    for i in range(TICKETS):
        gmail.sandbox.deliver(
            MAILBOX, make_email(f"Question {i}", f"Body {i}", sender=f"customer{i}@example.org")
        )
    held = run(["sync", "--once", "--no-send"], env)  # decide: one acknowledgement per new ticket
    assert held.returncode == 0, held.stderr

    # Every send takes a while, so kills land before, during and after Gmail accepts a message.
    http("POST", f"{gmail.url}sandbox/faults", {"latency_ms": 150, "methods": ["messages.send"]})
    killed_while_running = 0
    for _ in range(KILLS):
        process = subprocess.Popen(
            [postdesk_command(), "sync", "--once"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 2.5))
        killed_while_running += process.poll() is None
        process.kill()
        process.wait()
    http("DELETE", f"{gmail.url}sandbox/faults")
    final = run(["sync", "--once"], env)
    assert final.returncode == 0, final.stderr

    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT message_id, state FROM outbox")).all()
    engine.dispose()
    user = gmail.sandbox.user(MAILBOX)
    in_gmail = Counter(m.rfc822_id for m in user.messages.values() if "SENT" in m.label_ids)
    assert killed_while_running >= 3, f"seed {seed}"
    assert len(rows) == TICKETS
    assert {state for _, state in rows} == {"sent"}, f"seed {seed}"
    assert all(in_gmail[message_id] == 1 for message_id, _ in rows), f"seed {seed}: {in_gmail}"
    assert sum(in_gmail.values()) == TICKETS
