"""``make bench``: emails filed per second across 30 mailboxes by 1 worker and by 2 workers, side by side.

A throw-away PostgreSQL (as tests/matrix.py starts it), the sandbox in this process, and real
``postdesk worker`` processes on the task queue (``TASKS=procrastinate``). Each run: 30 mailboxes,
first synced empty; then emails from new customers land in each (40 each, 1,200 in all: as many new
tickets and acknowledgements to send; 15 each with the slow Gmail below), and the clock runs from the
first delivery until the last email is filed. Twice per worker count: with the sandbox answering at once (Postdesk's own CPU is all
there is), and with 50 ms per Gmail call (Gmail answers in 50–200 ms, so a worker mostly waits for
it; that is where a second worker pays). The figure beside it: the share of Gmail's per-project
ceiling (1,200,000 units a minute, about 4,000 new emails a second) one worker reaches.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet import Fleet, add_mailboxes, worker_env
from helpers import make_email
from matrix import postgres_binaries, throwaway_postgres
from sqlalchemy import create_engine, func, select, text

from server import create_app
from server.base.db import get_engine, get_session, init_db
from server.base.models import Mailbox
from server.gmail.sandbox import SandboxServer
from server.gmail.sandbox.faults import FaultPlan

MAILBOXES = 30
#: Emails per mailbox: fewer where each Gmail call waits 50 ms, so both runs take about a minute.
PER_MAILBOX = {0: 40, 50: 15}
#: Gmail's per-project ceiling in new emails a second (1,200,000 units a minute, ~5 units an email).
CEILING = 4000
TARGET = 1.6


def run(server_url: str, folder: Path, workers: int, latency_ms: int) -> float:
    """Emails filed per second by ``workers`` worker processes; a fresh database each run."""
    name = f"bench_w{workers}_l{latency_ms}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    instance = folder / name
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": str(instance)})
    with app.app_context():
        init_db(app)
    with SandboxServer(enforce_rate_limit=False) as gmail, app.app_context():
        session = get_session()
        addresses = add_mailboxes(session, gmail, MAILBOXES)
        fleet = Fleet(worker_env(url, str(instance), PUSH_TOPIC="", POLL_SECONDS=0.5, LOG_FORMAT=""))
        try:
            for _ in range(workers):
                fleet.start()
            while session.scalar(select(func.count()).where(Mailbox.history_id.is_(None))):
                session.rollback()  # the first (empty) syncs
                time.sleep(0.2)
            gmail.gate.set_plan(FaultPlan(latency_ms=latency_ms))
            total = MAILBOXES * PER_MAILBOX[latency_ms]
            started = time.monotonic()
            for n in range(PER_MAILBOX[latency_ms]):
                for address in addresses:
                    key = f"<b{n}.{address}>"
                    gmail.sandbox.deliver(address, make_email(f"Order {key}", "Where is it?",
                                                              sender=f"c{n}.{address}", message_id=key))  # fmt: skip
            filed = 0
            while filed < total and time.monotonic() - started < 900:
                time.sleep(0.2)
                session.rollback()
                filed = int(
                    session.scalar(text("SELECT count(*) FROM messages WHERE direction = 'inbound'")) or 0
                )
            took = time.monotonic() - started
        finally:
            gmail.gate.set_plan(FaultPlan())
            fleet.stop()
        if filed < total:
            raise SystemExit(f"FAIL: {workers} worker(s) filed {filed} of {total} emails in 15 minutes")
    get_engine(app).dispose()
    return total / took


def main() -> int:
    binaries = postgres_binaries()
    if binaries is None:
        print(
            "!!! SKIPPED: the workers bench needs PostgreSQL (apt install postgresql): the task queue lives there"
        )
        return 0 if os.environ.get("REQUIRE_POSTGRES") != "1" else 1
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder, throwaway_postgres(binaries) as server:
        for latency in (0, 50):
            one = run(server, Path(folder), 1, latency)
            two = run(server, Path(folder), 2, latency)
            figures[f"gmail_latency_{latency}ms"] = {
                "one_worker_emails_per_second": round(one, 1),
                "two_workers_emails_per_second": round(two, 1),
                "ratio": round(two / one, 2),
                "one_worker_share_of_project_ceiling": round(one / CEILING, 4),
            }
    print(json.dumps(figures, indent=2))
    for name, row in figures.items():
        print(f"{name}: 1 worker {row['one_worker_emails_per_second']}/s, 2 workers "
              f"{row['two_workers_emails_per_second']}/s: {row['ratio']}x (target {TARGET}x on 2 cores); "
              f"one worker is {row['one_worker_share_of_project_ceiling']:.1%} of Gmail's per-project ceiling")  # fmt: skip
    realistic = figures["gmail_latency_50ms"]["ratio"]
    if realistic < TARGET:
        print(f"FAIL: 2 workers filed only {realistic}x what 1 did with Gmail's latency (target {TARGET}x)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
