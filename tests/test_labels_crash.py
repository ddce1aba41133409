"""``kill -9`` while labels go to Gmail, at random moments, then a last run: every open ticket's thread
carries exactly its labels and no label request is left (a change committed is never lost)."""

from __future__ import annotations

import os
import random
import subprocess
import time

import pytest
from helpers import MAILBOX, http, make_email, postdesk_command
from helpers import run_postdesk as run
from sqlalchemy import create_engine, text

KILLS = 8
TICKETS = 30


@pytest.mark.slow
def test_no_label_change_is_lost_whatever_kills_the_worker(tmp_path, gmail, database_url):
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    env = {**os.environ, "POSTDESK_DATABASE_URL": database_url, "POSTDESK_INSTANCE_PATH": str(tmp_path / "i")}
    settings = tmp_path / "settings.yaml"
    settings.write_text("gmail_labels: {enabled: true}\n")
    assert run(["init-db"], env).returncode == 0
    assert run(["mailbox", "add", MAILBOX, "--sandbox", gmail.url], env).returncode == 0
    assert run(["mailbox", "settings", MAILBOX, str(settings)], env).returncode == 0
    assert run(["sync", "--once"], env).returncode == 0
    for i in range(TICKETS):
        gmail.sandbox.deliver(
            MAILBOX, make_email(f"Question {i}", "Hello", sender=f"customer{i}@example.org")
        )
    held = run(["sync", "--once", "--no-send"], env)  # the tickets are made and their labels asked for
    assert held.returncode == 0, held.stderr

    # Every label call takes a while, so kills land before, during and after Gmail changes a thread.
    http("POST", f"{gmail.url}sandbox/faults",
         {"latency_ms": 120, "methods": ["threads.modify", "messages.batchModify", "labels.create"]})  # fmt: skip
    killed_while_running = 0
    for _ in range(KILLS):
        process = subprocess.Popen([postdesk_command(), "labels", "sync", "--mailbox", MAILBOX], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rng.uniform(0.2, 1.5))
        killed_while_running += process.poll() is None
        process.kill()
        process.wait()
    http("DELETE", f"{gmail.url}sandbox/faults")
    final = run(["labels", "sync", "--mailbox", MAILBOX], env)
    assert final.returncode == 0, final.stderr

    engine = create_engine(database_url)
    with engine.connect() as connection:
        left = connection.execute(
            text("SELECT COUNT(*) FROM tickets WHERE labels_wanted_at IS NOT NULL")
        ).scalar()
        threads = [row[0] for row in connection.execute(text("SELECT gmail_thread_id FROM tickets"))]
    engine.dispose()
    user = gmail.sandbox.user(MAILBOX)
    names = {label_id: label["name"] for label_id, label in user.labels.items()}
    for thread in threads:
        on_thread = {names[x] for m in user.messages.values() if m.thread_id == thread for x in m.label_ids}
        assert {n for n in on_thread if n.startswith("Postdesk/")} == {
            "Postdesk/Open",
            "Postdesk/Unassigned",
        }, f"seed {seed}"
    assert killed_while_running >= 2, f"seed {seed}"
    assert left == 0 and len(threads) == TICKETS
    assert len([n for n in names.values() if n == "Postdesk/Open"]) == 1  # made once, whatever the kills
