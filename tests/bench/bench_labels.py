"""``make bench``: what mirroring tickets in Gmail labels costs in Gmail quota, and how fast a backfill is.

1. Quota per ticket change: 300 tickets labelled, then 1,500 random ticket changes (assign, status,
   priority) in rounds of 30, the worker putting the labels after each round. Target: at most 10 quota
   units per change on average (one threads.modify is 10; changes of one ticket in a round cost one call,
   and five or more threads with the same change share one messages.batchModify).
2. Backfill: 10,000 open tickets labelled from nothing (``postdesk labels sync``'s work) through the
   real client against the sandbox, whose per-minute quota is enforced as Gmail's: the time taken
   against the floor Gmail's quota allows (units spent / 15,000 units per minute), printed as a ratio.
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import bench_app, support_mailbox, verdict
from google.auth.credentials import AnonymousCredentials
from helpers import make_email
from sqlalchemy import insert, select

from server.base.db import get_session
from server.base.models import Agent, Mailbox, Message, Priority, Ticket, TicketStatus
from server.gmail.client import GmailClient
from server.gmail.quota import PER_USER_UNITS_PER_MINUTE
from server.gmail.sandbox import SandboxServer
from server.services import tickets
from server.services.labels import apply_wanted, request_all

TARGET_UNITS = 10.0
CHANGES, ROUND, TICKETS = 1_500, 30, 300
BACKFILL = 10_000


def _mailbox(app, gmail: SandboxServer, count: int):
    """support@ on the sandbox with labels on, two agents, and ``count`` open tickets, each the thread
    of one customer message delivered to the sandbox."""
    with app.app_context():
        db = get_session()
        box, anna = support_mailbox(db)
        box.api_endpoint = gmail.url
        box.settings = {"gmail_labels": {"enabled": True}}
        db.commit()
        rows, messages = [], []
        for n in range(1, count + 1):
            stored = gmail.sandbox.deliver(
                box.address, make_email(f"Question {n}", "Hi", sender=f"c{n}@shop.test")
            )
            now = datetime.now(UTC)
            rows.append({"id": n, "mailbox_id": box.id, "number": n, "subject": f"Question {n}", "status": "open",
                         "priority": "normal", "gmail_thread_id": stored.thread_id, "created_at": now,
                         "updated_at": now})  # fmt: skip
            messages.append({"mailbox_id": box.id, "ticket_id": n, "gmail_id": stored.id,
                             "gmail_thread_id": stored.thread_id, "direction": "inbound", "sent_at": now})  # fmt: skip
        db.execute(insert(Ticket), rows)
        db.execute(insert(Message), messages)
        db.commit()
        return box.id


def _client(gmail: SandboxServer) -> GmailClient:
    return GmailClient("support@example.com", AnonymousCredentials(), gmail.url, sleep=time.sleep)


def per_change(folder: Path) -> dict[str, float]:
    rng = random.Random(7)
    with SandboxServer(enforce_rate_limit=False) as gmail:
        app = bench_app(folder / "changes.sqlite3")
        box_id = _mailbox(app, gmail, TICKETS)
        with app.app_context(), _client(gmail) as client:
            db = get_session()
            box = db.get(Mailbox, box_id)
            request_all(db, box)
            while apply_wanted(db, box, client).tickets:
                pass
            people = [None, *db.scalars(select(Agent.id))]
            all_tickets = db.scalars(select(Ticket)).all()
            before = client.meter.units_total
            for _round in range(CHANGES // ROUND):
                for _ in range(ROUND):
                    ticket, now = rng.choice(all_tickets), datetime.now(UTC)
                    what = rng.randrange(3)
                    if what == 0:
                        tickets.assign(db, ticket, rng.choice(people), at=now)
                    elif what == 1:
                        tickets.set_status(
                            db, ticket, TicketStatus(rng.choice(["open", "pending", "solved"])), at=now
                        )
                    else:
                        tickets.set_priority(
                            db, ticket, rng.choice([Priority.URGENT, Priority.NORMAL]), at=now
                        )
                db.commit()
                while apply_wanted(db, box, client).tickets:
                    pass
            units = client.meter.units_total - before
    return {"changes": CHANGES, "units": units, "units_per_change": round(units / CHANGES, 2)}


def backfill(folder: Path) -> dict[str, float]:
    with SandboxServer(enforce_rate_limit=True) as gmail:
        app = bench_app(folder / "backfill.sqlite3")
        box_id = _mailbox(app, gmail, BACKFILL)
        with app.app_context(), _client(gmail) as client:
            db = get_session()
            box = db.get(Mailbox, box_id)
            started = time.perf_counter()
            wanted = request_all(db, box)
            labelled = 0
            while True:
                step = apply_wanted(db, box, client, limit=1_000)
                labelled += step.tickets
                if not step.tickets and not step.stale:
                    break
            seconds = time.perf_counter() - started
            units = client.meter.units_total
    floor = units / PER_USER_UNITS_PER_MINUTE * 60
    return {"tickets": wanted, "labelled": labelled, "units": units, "seconds": round(seconds, 2),
            "quota_floor_seconds": round(floor, 2), "ratio_to_floor": round(seconds / floor, 1) if floor else 0.0}  # fmt: skip


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        changes = per_change(Path(folder))
        filled = backfill(Path(folder))
    figures = {"per_change": changes, "backfill_10000": filled}
    code = verdict(figures, f"labels: {changes['units_per_change']} quota units per ticket change (target <= "
                   f"{TARGET_UNITS}); backfill of {filled['labelled']:,} tickets in {filled['seconds']} s, "
                   f"{filled['ratio_to_floor']}x the quota floor of {filled['quota_floor_seconds']} s",
                   changes["units_per_change"], TARGET_UNITS, "label changes cost more quota than one call each")  # fmt: skip
    if filled["labelled"] != BACKFILL:
        print(f"FAIL: {filled['labelled']} of {BACKFILL} tickets labelled")
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
