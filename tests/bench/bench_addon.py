"""``make bench``: the add-on's message card with 100,000 tickets against the same with 1,000.

Each database holds N tickets with a customer message each (customers with ten tickets apiece) and
a few events; the same agent opens the card of random tickets through ``POST /addon/v1/message``
with a real, locally signed ID token. Both databases are asked in turns in one run; each figure is
the median time of a request. Target: 100,000 tickets cost at most 1.5x the time of 1,000.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from addon_support import CLIENT_ID, GoogleKeys
from common import bench_app, support_mailbox, verdict
from sqlalchemy import insert

from server.base.db import get_session
from server.base.models import Customer, Event, Message, Ticket

TARGET_RATIO = 1.5
NOW = datetime.now(UTC)


def build(path: Path, total: int, keys: GoogleKeys):
    app = bench_app(path, ADDON_CLIENT_ID=CLIENT_ID, ADDON_CERTS_URL=keys.url)
    with app.app_context():
        session = get_session()
        box, agent = support_mailbox(session)
        session.commit()
        for start in range(0, total, 10_000):
            numbers = range(start + 1, min(total, start + 10_000) + 1)
            session.execute(
                insert(Customer),
                [
                    {"mailbox_id": box.id, "email": f"c{n}@customer.test", "name": f"C {n}"}
                    for n in numbers
                    if n % 10 == 1
                ],
            )
            created = NOW - timedelta(days=1)
            session.execute(
                insert(Ticket),
                [
                    {
                        "mailbox_id": box.id,
                        "number": n,
                        "subject": f"Question {n}",
                        "status": "open",
                        "priority": "normal",
                        "customer_id": (n - 1) // 10 + 1,
                        "assignee_id": agent.id if n % 3 == 0 else None,
                        "gmail_thread_id": f"t{n}",
                        "created_at": created,
                        "updated_at": created,
                        "due_at": NOW + timedelta(hours=n % 48),
                        "resolution_paused_minutes": 0.0,
                    }
                    for n in numbers
                ],
            )
            session.execute(
                insert(Message),
                [
                    {
                        "mailbox_id": box.id,
                        "ticket_id": n,
                        "gmail_id": f"m{n}",
                        "gmail_thread_id": f"t{n}",
                        "rfc822_message_id": f"<m{n}@customer.test>",
                        "direction": "inbound",
                        "from_email": f"c{(n - 1) // 10 + 1}@customer.test",
                        "subject": f"Question {n}",
                        "sent_at": created,
                        "text": "Hello",
                    }
                    for n in numbers
                ],
            )
            session.execute(
                insert(Event),
                [
                    {
                        "mailbox_id": box.id,
                        "ticket_id": n,
                        "actor_kind": "system",
                        "kind": "ticket_created",
                        "created_at": created,
                    }
                    for n in numbers
                ],
            )
        session.commit()
    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    keys = GoogleKeys()
    rng = random.Random(7)
    try:
        with tempfile.TemporaryDirectory(prefix="postdesk-bench-addon-") as folder:
            started = time.perf_counter()
            apps = {
                n: build(Path(folder) / str(n) / "db.sqlite3", n, keys)
                for n in (options.small, options.large)
            }
            print(
                f"built {options.small:,} and {options.large:,} tickets in {time.perf_counter() - started:.1f} s"
            )
            clients = {n: app.test_client() for n, app in apps.items()}
            headers = {"Authorization": f"Bearer {keys.token('anna@example.com')}"}
            timings: dict[int, list[float]] = {n: [] for n in apps}
            for client in clients.values():  # warm: keys fetched, caches filled
                client.post(
                    "/addon/v1/message",
                    json={"postdesk": {"rfc822MessageId": "<m1@customer.test>"}},
                    headers=headers,
                )
            for _ in range(options.rounds):
                for size, client in clients.items():
                    for _ in range(options.requests):
                        number = rng.randint(1, size)
                        body = {
                            "postdesk": {"rfc822MessageId": f"<m{number}@customer.test>"},
                            "gmail": {"threadId": f"t{number}"},
                        }
                        began = time.perf_counter()
                        response = client.post("/addon/v1/message", json=body, headers=headers)
                        timings[size].append(time.perf_counter() - began)
                        if response.status_code != 200 or f"#{number} " not in response.get_data(
                            as_text=True
                        ):
                            print(f"FAIL: ticket #{number} of {size:,}: {response.status_code}")
                            return 1
    finally:
        keys.close()
    small, large = (statistics.median(timings[n]) for n in (options.small, options.large))
    ratio = large / small
    figures = {
        f"message_card_{options.small}_ms": round(small * 1000, 2),
        f"message_card_{options.large}_ms": round(large * 1000, 2),
        "ratio": round(ratio, 2),
        "target_ratio": TARGET_RATIO,
    }
    summary = (
        f"add-on message card: {small * 1000:.1f} ms with {options.small:,} tickets, {large * 1000:.1f} ms with "
        f"{options.large:,} ({ratio:.2f}x; target <= {TARGET_RATIO}x)"
    )
    return verdict(figures, summary, ratio, TARGET_RATIO, "the message card grows with the database")


if __name__ == "__main__":
    sys.exit(main())
