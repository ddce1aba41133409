"""``make bench``: how long a customer's email takes to become a ticket, with Gmail push and with a 60 s poll.

One Postdesk (web app and worker in this process, SQLite) against the sandbox. With push, the sandbox
posts a signed Pub/Sub notification for each change to ``/gmail/push`` and the worker syncs at once
(the poll an hour away); with polling, the worker syncs every 60 s. 200 messages each, delivered at
random moments (over two minutes for the poll, so every phase of the poll is met); the figure is the
time from delivery to the ticket row, median and p95.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import bench_app
from helpers import http, make_email
from sqlalchemy import select
from werkzeug.serving import make_server

from server.base.db import get_session
from server.base.models import AuthKind, Ticket
from server.flows.clock.scheduler import run_worker
from server.gmail.sandbox import SandboxServer
from server.services.accounts import MailboxSpec, add_mailbox

MESSAGES = 200
ACCOUNT = "gmail-push@bench.iam.gserviceaccount.com"


def measure(folder: Path, *, push: bool, spread: float) -> list[float]:
    rng = random.Random(11 if push else 12)
    with SandboxServer(enforce_rate_limit=False) as gmail:
        app = bench_app(folder / ("push.sqlite3" if push else "poll.sqlite3"))
        web = make_server("127.0.0.1", 0, app, threaded=True)
        base = f"http://127.0.0.1:{web.server_address[1]}"
        threading.Thread(target=web.serve_forever, daemon=True).start()
        app.config.update(POLL_SECONDS=3600 if push else 60, CLOCK_SECONDS=3600, PUSH_CHECK_SECONDS=0.2,
                          WORKER_RENEW_SECONDS=5)  # fmt: skip
        if push:
            app.config.update(PUSH_TOPIC="projects/bench/topics/gmail", PUSH_AUDIENCE=f"{base}/gmail/push",
                              PUSH_SERVICE_ACCOUNT=ACCOUNT, PUSH_CERTS_URL=f"{gmail.url}sandbox/push/certs")  # fmt: skip
            http("POST", f"{gmail.url}sandbox/push", {"url": f"{base}/gmail/push", "audience": f"{base}/gmail/push",
                                                       "service_account": ACCOUNT})  # fmt: skip
        with app.app_context():
            add_mailbox(
                get_session(), MailboxSpec("support@example.com", AuthKind.SANDBOX, gmail.url, None, "S")
            )
        stop = threading.Event()
        worker = threading.Thread(
            target=run_worker, args=(app,), kwargs={"stop": stop, "holder": "bench"}, daemon=True
        )
        worker.start()
        time.sleep(3)  # the worker's first round: the first sync, the watch
        moments = sorted(rng.uniform(0, spread) for _ in range(MESSAGES))
        delivered: dict[str, float] = {}
        seen: dict[str, float] = {}
        started = time.monotonic()

        def deliver() -> None:
            for n, at in enumerate(moments):
                time.sleep(max(0.0, started + at - time.monotonic()))
                subject = f"Latency {n}"
                gmail.sandbox.deliver(
                    "support@example.com", make_email(subject, "Hi", sender=f"c{n}@shop.test")
                )
                delivered[subject] = time.monotonic()

        sender = threading.Thread(target=deliver, daemon=True)
        sender.start()
        with app.app_context():
            db = get_session()
            deadline = started + spread + 120
            while len(seen) < MESSAGES and time.monotonic() < deadline:
                for subject in db.scalars(select(Ticket.subject)):
                    seen.setdefault(subject, time.monotonic())
                db.rollback()
                time.sleep(0.05)
        stop.set()
        worker.join(timeout=60)
        web.shutdown()
    return [seen[s] - delivered[s] for s in delivered if s in seen]


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        pushed = measure(Path(folder), push=True, spread=30)
        polled = measure(Path(folder), push=False, spread=120)

    def figures(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"tickets": len(values), "median_seconds": round(statistics.median(ordered), 2),
                "p95_seconds": round(ordered[int(0.95 * (len(ordered) - 1))], 2)}  # fmt: skip

    push, poll = figures(pushed), figures(polled)
    print({"push": push, "poll_60s": poll})
    print(f"push: email to ticket in {push['median_seconds']} s median, {push['p95_seconds']} s p95; "
          f"60 s poll: {poll['median_seconds']} s median, {poll['p95_seconds']} s p95")  # fmt: skip
    if push["tickets"] != MESSAGES or poll["tickets"] != MESSAGES:
        print("FAIL: not every message became a ticket")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
