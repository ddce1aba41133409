"""``make bench``: the reminder scan over 100,000 tickets against the same scan over 1,000.

Both databases hold the same 60 tickets whose reminders are due; the rest wait for later reminders
(``remind_at`` days ahead) or for none. The scan must read only what is due, so its time may grow at
most 2x when the table grows 100x. The two databases are scanned in turns, in one run, and each
figure is the median of several scans (the due tickets are made due again between scans).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from common import bench_app, support_mailbox, verdict
from sqlalchemy import delete, insert, update

from server.base.db import get_session
from server.base.models import Event, Outbox, ReminderMark, Ticket
from server.flows.reminders import run_reminders

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, inside business hours
DUE = 60
TARGET_RATIO = 2.0


def build(path: Path, total: int) -> object:
    app = bench_app(path)
    with app.app_context():
        session = get_session()
        box, agent = support_mailbox(session)
        box.settings = {"reminders": {"digest": False}}
        session.commit()
        rows = []
        for n in range(1, total + 1):
            due = n <= DUE
            created = NOW - timedelta(hours=3 if due else 1)
            rows.append(
                {
                    "mailbox_id": box.id,
                    "number": n,
                    "subject": f"Ticket {n}",
                    "status": "open",
                    "priority": "normal",
                    "assignee_id": agent.id,
                    "created_at": created,
                    "updated_at": created,
                    "status_changed_at": created,
                    "first_response_due_at": NOW - timedelta(minutes=5) if due else NOW + timedelta(days=2),
                    "resolution_due_at": NOW + timedelta(days=3),
                    "due_at": NOW - timedelta(minutes=5) if due else NOW + timedelta(days=2),
                    "remind_at": NOW - timedelta(minutes=5) if due else NOW + timedelta(days=1 + n % 20),
                    "resolution_paused_minutes": 0.0,
                }
            )
            if len(rows) == 10_000:
                session.execute(insert(Ticket), rows)
                rows = []
        if rows:
            session.execute(insert(Ticket), rows)
        session.commit()
    return app


def reset(app: object) -> None:
    """Make the same tickets due again, as if their reminders had never been done."""
    with app.app_context():  # type: ignore[attr-defined]
        session = get_session()
        session.execute(delete(ReminderMark))
        session.execute(delete(Outbox))
        session.execute(delete(Event))
        session.execute(
            update(Ticket).where(Ticket.number <= DUE).values(remind_at=NOW - timedelta(minutes=5))
        )
        session.commit()


def scan(app: object) -> tuple[float, int]:
    with app.app_context():  # type: ignore[attr-defined]
        session = get_session()
        started = time.perf_counter()
        report = run_reminders(session, now=NOW)
        return time.perf_counter() - started, report.looked_at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postdesk-bench-reminders-") as folder:
        started = time.perf_counter()
        apps = {
            size: build(Path(folder) / str(size) / "db.sqlite3", size)
            for size in (options.small, options.large)
        }
        print(
            f"built {options.small:,} and {options.large:,} tickets in {time.perf_counter() - started:.1f} s"
        )
        timings: dict[int, list[float]] = {size: [] for size in apps}
        for _ in range(options.rounds):
            for size, app in apps.items():  # side by side, in turns
                reset(app)
                seconds, looked_at = scan(app)
                if looked_at != DUE:
                    print(f"FAIL: the scan over {size:,} tickets looked at {looked_at}, not the {DUE} due")
                    return 1
                timings[size].append(seconds)
    small, large = (statistics.median(timings[size]) for size in (options.small, options.large))
    ratio = large / small
    figures = {
        "due_tickets": DUE,
        f"scan_{options.small}_ms": round(small * 1000, 1),
        f"scan_{options.large}_ms": round(large * 1000, 1),
        "ratio": round(ratio, 2),
        "target_ratio": TARGET_RATIO,
    }
    summary = (
        f"reminder scan: {small * 1000:.1f} ms over {options.small:,} tickets, {large * 1000:.1f} ms over "
        f"{options.large:,} ({ratio:.2f}x; target <= {TARGET_RATIO}x)"
    )
    return verdict(
        figures, summary, ratio, TARGET_RATIO, "the reminder scan grows with the table, not with what is due"
    )


if __name__ == "__main__":
    sys.exit(main())
