"""``make bench``: the reports read one period through indexes, not the whole history; the CSV streams.

Two PostgreSQL databases side by side (a throw-away server, as tests/matrix.py starts it): one with a
year of history (100,000 tickets), one with 10,000 tickets, both with the same last 30 days (8,219
tickets: a year's volume spread evenly). The 30-day overview page's figures (``page_figures``, every
query the page runs) are timed in turns; the big history may take at most 2x the small one.
Then the CSV of all 100,000 tickets streams through the export view in a child process whose peak
memory (RSS) growth is measured: under 50 MB.

Without PostgreSQL the timing runs on SQLite and says so.
"""

from __future__ import annotations

import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import verdict  # noqa: E402
from matrix import postgres_binaries, throwaway_postgres  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

from server import create_app  # noqa: E402
from server.base.db import get_engine, get_session, init_db  # noqa: E402
from server.base.models import AuthKind, CsatRating, Customer, Event, Message, Role, Ticket, TicketTag  # noqa: E402
from server.services.accounts import MailboxSpec, add_mailbox, ensure_agent  # noqa: E402

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
YEAR, RECENT_DAYS = 100_000, 30
RECENT = YEAR * RECENT_DAYS // 365
TARGET_RATIO = 2.0
CSV_LIMIT_MB = 50
ROUNDS = 5


def _rows(total: int, seed: int) -> dict[str, list[dict[str, Any]]]:
    """``total`` tickets: the last 30 days' RECENT the same in every database, the rest older."""
    rng = random.Random(seed)
    recent_rng = random.Random(1)  # the same recent tickets everywhere
    rows: dict[str, list[dict[str, Any]]] = {
        "tickets": [],
        "messages": [],
        "events": [],
        "tags": [],
        "csat": [],
    }
    older_span = 365 if total == YEAR else RECENT_DAYS + 8
    for n in range(1, total + 1):
        recent = n <= RECENT
        r = recent_rng if recent else rng
        age = timedelta(minutes=r.randrange(0, RECENT_DAYS * 1440)) if recent else timedelta(
            minutes=r.randrange(RECENT_DAYS * 1440, older_span * 1440))  # fmt: skip
        created = NOW - age
        answered = created + timedelta(minutes=r.randrange(5, 600))
        # Most of the last month is solved, nearly all of the months before (the backlog is today's).
        solved = (
            answered + timedelta(minutes=r.randrange(30, 3000))
            if r.random() < (0.85 if recent else 0.995)
            else None
        )
        if solved is not None and solved > NOW:
            solved = None
        answered = answered if answered <= NOW else None
        status = "solved" if solved else r.choice(("open", "open", "pending", "on_hold"))
        rated = solved + timedelta(hours=2) if solved and r.random() < 0.25 else None
        rows["tickets"].append({
            "id": n, "mailbox_id": 1, "number": n, "subject": f"Question {n % 40}", "customer_id": 1 + n % 500,
            "status": status, "priority": r.choice(("low", "normal", "normal", "high", "urgent")),
            "assignee_id": 1 + n % 5, "created_at": created, "updated_at": max(t for t in (created, answered, solved, rated) if t),
            "first_responded_at": answered, "solved_at": solved,
            "first_response_minutes": (answered - created).total_seconds() / 60 if answered else None,
            "first_response_business_minutes": (answered - created).total_seconds() / 120 if answered else None,
            "first_response_breached": r.random() < 0.2 if answered else None,
            "resolution_minutes": (solved - created).total_seconds() / 60 if solved else None,
            "resolution_business_minutes": (solved - created).total_seconds() / 120 if solved else None,
            "resolution_breached": r.random() < 0.1 if solved else None,
            "agent_replies": 1 + r.randrange(3) if answered else 0, "reopens": 0,
            "due_at": None if solved else created + timedelta(hours=9),
            "first_response_due_at": None if answered or solved else created + timedelta(hours=9),
            "resolution_due_at": None if solved else created + timedelta(days=5),
            "resolution_paused_minutes": 0.0,
        })  # fmt: skip
        rows["messages"].append({"mailbox_id": 1, "ticket_id": n, "gmail_id": f"in{n}", "gmail_thread_id": f"t{n}",
                                 "direction": "inbound", "sent_at": created})  # fmt: skip
        if answered:
            rows["messages"].append({"mailbox_id": 1, "ticket_id": n, "gmail_id": f"out{n}",
                                     "gmail_thread_id": f"t{n}", "direction": "outbound", "sent_at": answered})  # fmt: skip
        rows["events"].append({"mailbox_id": 1, "ticket_id": n, "actor_kind": "system", "kind": "ticket_created",
                               "created_at": created})  # fmt: skip
        if solved:
            rows["events"].append({"mailbox_id": 1, "ticket_id": n, "actor_kind": "agent", "kind": "status_changed",
                                   "before": {"status": "open"}, "after": {"status": "solved"}, "created_at": solved})  # fmt: skip
            if rated:
                score = r.choice((1, 3, 5, 5))
                rows["csat"].append({"ticket_id": n, "mailbox_id": 1, "value": {1: "bad", 3: "okay", 5: "good"}[score],
                                     "score": score, "comment": "", "rated_at": rated, "changes": 0})  # fmt: skip
        if n % 3 == 0:
            rows["tags"].append({"ticket_id": n, "name": r.choice(("billing", "bug", "login", "refund"))})
    return rows


def build(url: str, total: int) -> Any:
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": tempfile.mkdtemp(prefix="postdesk-bench-")})
    with app.app_context():
        init_db(app)
        db = get_session()
        box = add_mailbox(
            db, MailboxSpec("support@example.com", AuthKind.SANDBOX, "http://127.0.0.1:9/", None, "S")
        )
        box.settings = {"calendar": {"timezone": "UTC", "hours": "always"}}
        for n in range(5):
            ensure_agent(db, f"agent{n}@example.com", f"Agent {n}", mailbox=box)
        ensure_agent(db, "lead@example.com", "Lead", role=Role.MANAGER)
        db.commit()
        db.execute(
            insert(Customer),
            [{"mailbox_id": box.id, "email": f"c{n}@shop{n % 50}.example"} for n in range(500)],
        )
        rows = _rows(total, seed=total)
        for model, key in ((Ticket, "tickets"), (Message, "messages"), (Event, "events"), (TicketTag, "tags"),
                           (CsatRating, "csat")):  # fmt: skip
            for start in range(0, len(rows[key]), 20_000):
                db.execute(insert(model), rows[key][start : start + 20_000])
        db.commit()
        if db.get_bind().dialect.name == "postgresql":
            with get_engine(app).connect() as connection:
                connection.execute(text("ANALYZE"))
                connection.commit()
    return app


def overview_seconds(app: Any) -> float:
    from server.faces.reports.views import page_figures
    from server.services.figures.metrics import Period, Scope

    with app.app_context():
        db = get_session()
        period = Period.last_days(RECENT_DAYS, NOW.date(), ZoneInfo("Europe/Moscow"))
        started = time.perf_counter()
        figures = page_figures(db, Scope((1,)), period, NOW, per_agent=True)
        elapsed = time.perf_counter() - started
        assert figures["current"].counts["new"] > 0
        db.rollback()
    return elapsed


CHILD = """
import sys, time
from datetime import UTC, datetime
from flask import g
from sqlalchemy import select
from server import create_app
from server.base.db import get_session
from server.base.models import Agent
app = create_app({"DATABASE_URL": sys.argv[1], "INSTANCE_PATH": sys.argv[2]})

def export(days):
    with app.test_request_context(f"/reports/export.csv?days={days}&table=tickets&set=new"):
        g.agent = get_session().scalar(select(Agent).where(Agent.email == "lead@example.com"))
        response = app.view_functions["reports.export"]()
        lines = size = 0
        for chunk in response.response:
            lines += chunk.count("\\r\\n") if isinstance(chunk, str) else chunk.count(b"\\r\\n")
            size += len(chunk)
        response.close()
    return lines, size

def buffered(days):  # what a view that built the whole file first would hold
    with app.test_request_context(f"/reports/export.csv?days={days}&table=tickets&set=new"):
        g.agent = get_session().scalar(select(Agent).where(Agent.email == "lead@example.com"))
        response = app.view_functions["reports.export"]()
        whole = list(response.response)
        response.close()
    return len(whole)

def peak_kb():  # this process's own high-water mark (ru_maxrss would carry the parent's over exec)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

export(1)  # warm: imports, templates, the first connection
before = peak_kb()
started = time.perf_counter()
lines, size = export(366)
seconds = time.perf_counter() - started
streamed = peak_kb()
buffered(366)
held = peak_kb()
print(lines, size, (streamed - before) / 1024, seconds, (held - before) / 1024, before / 1024)
"""


def csv_memory(url: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, url, tempfile.mkdtemp(prefix="postdesk-bench-")],
                         check=True, capture_output=True, text=True, cwd=HERE.parent.parent)  # fmt: skip
    lines, size, growth, seconds, held, base = out.stdout.split()
    return {"rows": int(lines) - 1, "bytes": int(size), "rss_before_mb": round(float(base), 1),
            "rss_growth_mb": round(float(growth), 1), "seconds": round(float(seconds), 2),
            "rss_growth_if_held_in_memory_mb": round(float(held), 1)}  # fmt: skip


def main() -> int:
    with ExitStack() as stack:
        binaries = postgres_binaries()
        if binaries is not None:
            server = stack.enter_context(throwaway_postgres(binaries))
            admin = create_engine(server, isolation_level="AUTOCOMMIT")
            for name in ("bench_small", "bench_year"):
                with admin.connect() as connection:
                    connection.execute(text(f"CREATE DATABASE {name}"))
            admin.dispose()
            urls = {name: server.rsplit("/", 1)[0] + f"/bench_{name}" for name in ("small", "year")}
            backend = "postgresql"
        else:
            print(
                "!!! PostgreSQL not found: the reports bench runs on SQLite (install postgresql for the real figure)"
            )
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            urls = {name: f"sqlite:///{folder / name}.sqlite3" for name in ("small", "year")}
            backend = "sqlite"
        started = time.perf_counter()
        apps = {"small": build(urls["small"], 10_000), "year": build(urls["year"], YEAR)}
        built = time.perf_counter() - started
        for app in apps.values():
            overview_seconds(app)  # warm each: caches, plans
        times: dict[str, list[float]] = {"small": [], "year": []}
        for _ in range(ROUNDS):
            for name in ("small", "year"):
                times[name].append(overview_seconds(apps[name]))
        memory = csv_memory(urls["year"])
        for app in apps.values():
            get_engine(app).dispose()
    small, year = statistics.median(times["small"]), statistics.median(times["year"])
    ratio = year / small
    figures = {
        "backend": backend,
        "tickets": {"small": 10_000, "year": YEAR, "in_the_30_days": RECENT},
        "build_seconds": round(built, 1),
        "overview_30_days_seconds": {"small": round(small, 3), "year": round(year, 3)},
        "ratio": round(ratio, 2),
        "csv_export_of_a_year": memory,
        "bench_process_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    code = verdict(figures, f"reports: 30-day overview, a year of history vs 10,000 tickets: {ratio:.2f}x "
                   f"(target <= {TARGET_RATIO}x); CSV of {memory['rows']:,} tickets: +{memory['rss_growth_mb']} MB "
                   f"(target < {CSV_LIMIT_MB} MB)", ratio, TARGET_RATIO,
                   "the overview reads more than its period")  # fmt: skip
    if memory["rows"] != YEAR:
        print(f"FAIL: the CSV had {memory['rows']} rows, not {YEAR}")
        code = 1
    if memory["rss_growth_mb"] >= CSV_LIMIT_MB:
        print("FAIL: the CSV export does not stream: memory grew with the rows")
        code = 1
    return code


if __name__ == "__main__":
    os.environ.setdefault("POSTDESK_LOG_LEVEL", "WARNING")
    sys.exit(main())
