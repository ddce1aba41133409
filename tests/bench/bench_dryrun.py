"""``make bench``: a rule set's dry run over 10,000 tickets beside a plain query over the same tickets.

The dry run replays each ticket's triggers through the rule engine (the settings page's "Dry run");
the plain query reads the same tickets with their tags and messages, which any dry run must read.
Measured in turns, in one run; each figure is the median of several runs. The ratio says what the
rules themselves cost on top of reading the data. The dry run must never write: the database is
compared before and after.
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
from sqlalchemy import func, insert, select
from sqlalchemy.orm import selectinload

from server.base.db import get_session
from server.base.models import Event, Mailbox, Message, Outbox, Ticket
from server.services import rule_sets

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
TARGET_RATIO = 5.0
RULES = """rules:
  - name: Urgent words
    trigger: ticket_created
    conditions:
      any:
        - {field: subject, op: matches, value: 'срочн|urgent|asap'}
        - {field: body, op: contains, value: не работает}
    actions: [{set_priority: urgent}, {add_tag: urgent}]
  - name: Billing
    trigger: ticket_created
    conditions: {all: [{field: subject, op: contains, value: invoice}, {field: from_domain, op: not_in, value: [example.com]}]}
    actions: [{add_tag: billing}]
  - name: Stale
    trigger: time
    conditions: {field: hours_since_customer_reply, op: gt, value: 48}
    actions: [{add_tag: stale}]
"""
SUBJECTS = ("Срочно: касса не работает", "Invoice copy", "Question about delivery", "URGENT outage", "Hello")


def build(path: Path, total: int) -> object:
    app = bench_app(path)
    with app.app_context():
        session = get_session()
        box, _agent = support_mailbox(session)
        session.commit()
        tickets, messages = [], []
        for n in range(1, total + 1):
            created = NOW - timedelta(hours=n % 200)
            subject = SUBJECTS[n % len(SUBJECTS)]
            tickets.append({"id": n, "mailbox_id": box.id, "number": n, "subject": subject, "status": "open",
                            "priority": "normal", "created_at": created, "updated_at": created,
                            "status_changed_at": created, "resolution_paused_minutes": 0.0})  # fmt: skip
            messages.append({"mailbox_id": box.id, "ticket_id": n, "gmail_id": f"m{n}", "gmail_thread_id": f"t{n}",
                             "direction": "inbound", "from_email": f"c{n % 97}@customer{n % 5}.ru",
                             "subject": subject, "sent_at": created, "text": "Здравствуйте, у нас не работает вход."})  # fmt: skip
        for start in range(0, total, 5_000):
            session.execute(insert(Ticket), tickets[start : start + 5_000])
            session.execute(insert(Message), messages[start : start + 5_000])
        session.commit()
    return app


def counts(app: object) -> tuple[int, ...]:
    with app.app_context():  # type: ignore[attr-defined]
        session = get_session()
        return tuple(
            int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Event, Outbox, Ticket)
        ) + (int(session.scalar(select(func.count()).where(Ticket.priority == "urgent")) or 0),)


def dry_run(app: object, total: int) -> tuple[float, int]:
    with app.app_context():  # type: ignore[attr-defined]
        session = get_session()
        box = session.scalar(select(Mailbox))
        loaded = rule_sets.parse(session, box, RULES)
        started = time.perf_counter()
        report = rule_sets.dry_run(session, box, loaded, last=total)
        return time.perf_counter() - started, len(report.matches)


def plain_query(app: object) -> tuple[float, int]:
    with app.app_context():  # type: ignore[attr-defined]
        session = get_session()
        started = time.perf_counter()
        tickets = session.scalars(select(Ticket).options(selectinload(Ticket.tags))).all()
        messages = session.scalars(
            select(Message).where(Message.ticket_id.in_([t.id for t in tickets]))
        ).all()
        elapsed = time.perf_counter() - started
        session.rollback()
        return elapsed, len(tickets) + len(messages)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postdesk-bench-dryrun-") as folder:
        started = time.perf_counter()
        app = build(Path(folder) / "db.sqlite3", options.tickets)
        print(f"built {options.tickets:,} tickets in {time.perf_counter() - started:.1f} s")
        before = counts(app)
        runs: list[float] = []
        reads: list[float] = []
        matches = 0
        for _ in range(options.rounds):
            seconds, matches = dry_run(app, options.tickets)
            runs.append(seconds)
            reads.append(plain_query(app)[0])
        after = counts(app)
    if after != before:
        print(f"FAIL: the dry run wrote to the database ({before} before, {after} after)")
        return 1
    run, read = statistics.median(runs), statistics.median(reads)
    ratio = run / read
    figures = {
        "tickets": options.tickets,
        "matches": matches,
        "dry_run_ms": round(run * 1000, 1),
        "plain_query_ms": round(read * 1000, 1),
        "ratio": round(ratio, 2),
        "target_ratio": TARGET_RATIO,
        "rows_written": 0,
    }
    summary = (
        f"rules dry run: {run * 1000:.0f} ms over {options.tickets:,} tickets ({matches:,} matches), a plain "
        f"query over them {read * 1000:.0f} ms ({ratio:.1f}x; target <= {TARGET_RATIO:.0f}x); nothing written"
    )
    return verdict(
        figures, summary, ratio, TARGET_RATIO, "the dry run costs far more than reading the tickets"
    )


if __name__ == "__main__":
    sys.exit(main())
