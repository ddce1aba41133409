"""``make bench``: the REST API's ticket list costs the same with 100,000 tickets as with 1,000.

Two PostgreSQL databases side by side (a throw-away server, as tests/matrix.py starts it), one with
1,000 tickets and one with 100,000, the same team and mailboxes. In turns, the same requests go to
``GET /api/v1/tickets`` through the whole Flask app (token check, rate limit, validation, the
answer's schema): the first page, the next twenty pages by cursor, and first pages filtered by
status, tag, priority and assignee, as an admin (every mailbox) and as an agent (one mailbox). The
95th percentile of the big database may be at most 1.5x the small one's. Beside it, for scale, the
same page read by OFFSET deep in the history (what cursor pages avoid).

Without PostgreSQL it runs on SQLite and says so.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import verdict  # noqa: E402
from matrix import postgres_binaries, throwaway_postgres  # noqa: E402
from sqlalchemy import create_engine, insert, select, text  # noqa: E402

from server import create_app  # noqa: E402
from server.base.db import get_engine, get_session, init_db  # noqa: E402
from server.base.models import Agent, AuthKind, Customer, Role, Ticket, TicketTag  # noqa: E402
from server.services import api_tokens  # noqa: E402
from server.services.accounts import MailboxSpec, add_mailbox, ensure_agent  # noqa: E402

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
SIZES = {"small": 1_000, "large": 100_000}
TARGET_RATIO = 1.5
ROUNDS = 5
PAGES = 20


def build(url: str, total: int) -> tuple[Any, dict[str, str]]:
    """The database with ``total`` tickets over two mailboxes, and a token for an admin and an agent."""
    app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": tempfile.mkdtemp(prefix="postdesk-bench-"),
                      "API_RATE_LIMIT": "10000000 per minute"})  # fmt: skip
    rng = random.Random(total)
    with app.app_context():
        init_db(app)
        db = get_session()
        boxes = [
            add_mailbox(db, MailboxSpec(address, AuthKind.SANDBOX, "http://127.0.0.1:9/", None, address[:5]))
            for address in ("support@example.com", "sales@example.com")
        ]
        agents = [
            ensure_agent(db, f"agent{n}@example.com", f"Agent {n}", mailbox=boxes[n % 2]) for n in range(6)
        ]
        admin = ensure_agent(db, "admin@example.com", "Admin", role=Role.ADMIN)
        db.commit()
        db.execute(
            insert(Customer),
            [{"mailbox_id": boxes[n % 2].id, "email": f"c{n}@shop.example"} for n in range(1000)],
        )
        tickets, tags = [], []
        for n in range(1, total + 1):
            created = NOW - timedelta(minutes=rng.randrange(0, 365 * 1440))
            box = boxes[n % 2]
            solved = rng.random() < 0.9
            tickets.append({
                "id": n, "mailbox_id": box.id, "number": n, "subject": f"Question {n % 40}", "customer_id": 1 + n % 1000,
                "status": "solved" if solved else rng.choice(("open", "pending", "on_hold")),
                "priority": rng.choice(("low", "normal", "normal", "high", "urgent")),
                "assignee_id": agents[(n % 3) * 2 + (n % 2)].id if rng.random() < 0.8 else None,
                "created_at": created, "updated_at": created + timedelta(minutes=rng.randrange(0, 3000)),
                "due_at": None if solved else created + timedelta(hours=9), "resolution_paused_minutes": 0.0,
            })  # fmt: skip
            if n % 4 == 0:
                tags.append({"ticket_id": n, "name": rng.choice(("billing", "bug", "login", "refund"))})
        for start in range(0, total, 20_000):
            db.execute(insert(Ticket), tickets[start : start + 20_000])
        db.execute(insert(TicketTag), tags)
        db.commit()
        if db.get_bind().dialect.name == "postgresql":
            with get_engine(app).connect() as connection:
                connection.execute(text("ANALYZE"))
                connection.commit()
        tokens = {}
        for name, person, scopes in (
            ("admin", admin, ["tickets:read"]),
            ("agent", agents[0], ["tickets:read"]),
        ):
            _row, tokens[name] = api_tokens.create(
                db,
                owner=person,
                name="bench",
                scopes=scopes,
                expires_at=None,
                by=admin,
                now=datetime.now(UTC),
            )
        db.commit()
        assignee = db.scalar(select(Agent.id).where(Agent.email == "agent0@example.com"))
    tokens["assignee"] = str(assignee)
    return app, tokens


def one_round(app: Any, tokens: dict[str, str]) -> list[float]:
    """Every request of a round, each timed through the whole app."""
    client = app.test_client()
    spent: list[float] = []

    def get(who: str, query: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        answer = client.get(
            "/api/v1/tickets", query_string=query, headers={"Authorization": f"Bearer {tokens[who]}"}
        )
        spent.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.json  # type: ignore[no-any-return]

    for who in ("admin", "agent"):
        cursor = None
        for _ in range(PAGES):
            page = get(who, {"limit": 50} | ({"cursor": cursor} if cursor else {}))
            cursor = page["next_cursor"]
            if cursor is None:
                break
        for query in ({"status": "open"}, {"tag": "billing"}, {"priority": "urgent"},
                      {"assignee": tokens["assignee"]}, {"sort": "created_at"}):  # fmt: skip
            get(who, query | {"limit": 50})
    return spent


def offset_seconds(app: Any, total: int) -> float:
    """The same page by OFFSET near the end of the history (for scale; the API never does this)."""
    with app.app_context():
        db = get_session()
        started = time.perf_counter()
        db.execute(
            select(Ticket.id)
            .order_by(Ticket.updated_at.desc(), Ticket.id.desc())
            .offset(max(0, total - 100))
            .limit(50)
        ).all()
        elapsed = time.perf_counter() - started
        db.rollback()
    return elapsed


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


def main() -> int:
    with ExitStack() as stack:
        binaries = postgres_binaries()
        if binaries is not None:
            server = stack.enter_context(throwaway_postgres(binaries))
            admin = create_engine(server, isolation_level="AUTOCOMMIT")
            for name in SIZES:
                with admin.connect() as connection:
                    connection.execute(text(f"CREATE DATABASE bench_api_{name}"))
            admin.dispose()
            urls = {name: server.rsplit("/", 1)[0] + f"/bench_api_{name}" for name in SIZES}
            backend = "postgresql"
        else:
            print(
                "!!! PostgreSQL not found: the API bench runs on SQLite (install postgresql for the real figure)"
            )
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            urls = {name: f"sqlite:///{folder / name}.sqlite3" for name in SIZES}
            backend = "sqlite"
        started = time.perf_counter()
        built = {name: build(urls[name], total) for name, total in SIZES.items()}
        build_seconds = time.perf_counter() - started
        for app, tokens in built.values():
            one_round(app, tokens)  # warm: imports, plans, caches
        times: dict[str, list[float]] = {name: [] for name in SIZES}
        for _ in range(ROUNDS):
            for name, (app, tokens) in built.items():
                times[name] += one_round(app, tokens)
        offsets = {name: offset_seconds(built[name][0], SIZES[name]) for name in SIZES}
        for app, _tokens in built.values():
            get_engine(app).dispose()
    small, large = p95(times["small"]), p95(times["large"])
    ratio = large / small
    figures = {
        "backend": backend,
        "tickets": SIZES,
        "requests_per_database": len(times["small"]),
        "build_seconds": round(build_seconds, 1),
        "p95_ms": {name: round(p95(values) * 1000, 1) for name, values in times.items()},
        "median_ms": {name: round(statistics.median(values) * 1000, 1) for name, values in times.items()},
        "ratio_p95": round(ratio, 2),
        "for_scale_offset_page_near_the_end_ms": {name: round(s * 1000, 1) for name, s in offsets.items()},
    }
    return verdict(
        figures,
        f"api: ticket list p95 with {SIZES['large']:,} tickets vs {SIZES['small']:,}: {ratio:.2f}x (target <= {TARGET_RATIO}x)",
        ratio,
        TARGET_RATIO,
        "the ticket list reads more than its page",
    )


if __name__ == "__main__":
    sys.exit(main())
