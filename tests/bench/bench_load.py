"""``make bench``: 50 agents working in the add-on at once, against gunicorn and PostgreSQL while a worker syncs.

A throw-away PostgreSQL; the sandbox with a shared mailbox of 400 customer emails (synced into 400
tickets before the clock starts) and more mail arriving all the while (2 a second, synced by a
``postdesk worker`` on the task queue); ``postdesk web`` (gunicorn, 4 processes) with the add-on's
ID tokens signed by a local stand-in for Google. locust (headless) plays the agents: each opens the
card of a random ticket and now and then acts on it (status, take it, a note), thinking 1–3 s
between clicks. After a warm-up, first one agent alone for 30 s (clicking every 0.2–0.4 s, for
enough samples: the single-user latency), then 50 for 60 s. Figures: the
card's p95 under load beside the single user's, and errors (target: none, and p95 ≤ 3×).
"""

from __future__ import annotations

import csv
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from addon_support import CLIENT_ID, GoogleKeys
from fleet import worker_env
from helpers import Process, make_email, postdesk_command
from matrix import postgres_binaries, throwaway_postgres
from sqlalchemy import create_engine, select, text

from server import create_app
from server.base.db import get_engine, get_session, init_db
from server.base.models import AuthKind, Message, Ticket
from server.flows.sync_runner import SyncRunner
from server.gmail.sandbox import SandboxServer
from server.services.accounts import MailboxSpec, add_mailbox, ensure_agent
from server.services.defaults import install_defaults

AGENTS = 50
TICKETS = 400
TARGET = 3.0
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def locust(
    host: str, users: int, seconds: int, data: Path, folder: Path, label: str, think: str = "1,3"
) -> dict[str, dict[str, float]]:
    """Run locust headless; per request name: requests, failures, median and p95 in ms."""
    prefix = folder / label
    command = [str(Path(sys.executable).parent / "locust"), "-f", str(HERE / "locustfile.py"), "--headless",
               "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--host", host, "--csv", str(prefix),
               "--only-summary", "--loglevel", "WARNING"]  # fmt: skip
    subprocess.run(command, check=False, env={"BENCH_LOAD_DATA": str(data), "BENCH_LOAD_THINK": think, "PATH": "/usr/bin:/bin"},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=seconds + 120)  # fmt: skip
    rows = {}
    with open(f"{prefix}_stats.csv", encoding="utf-8") as stats:
        for row in csv.DictReader(stats):
            rows[row["Name"]] = {"requests": float(row["Request Count"]), "failures": float(row["Failure Count"]),
                                 "median_ms": float(row["50%"]), "p95_ms": float(row["95%"])}  # fmt: skip
    return rows


def main() -> int:
    binaries = postgres_binaries()
    if binaries is None:
        print("!!! SKIPPED: the load bench needs PostgreSQL (apt install postgresql)")
        return 0
    if shutil.which("locust", path=str(Path(sys.executable).parent)) is None:
        print("!!! SKIPPED: the load bench needs locust (make bench installs it: pip install -e '.[bench]')")
        return 0
    keys = GoogleKeys()
    processes: list[Process] = []
    web: subprocess.Popen[bytes] | None = None
    stop = threading.Event()
    with tempfile.TemporaryDirectory() as tmp, throwaway_postgres(binaries) as server, \
            SandboxServer(enforce_rate_limit=False) as gmail:  # fmt: skip
        folder = Path(tmp)
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text('CREATE DATABASE "load"'))
        admin.dispose()
        url = server.rsplit("/", 1)[0] + "/load"
        app = create_app({"DATABASE_URL": url, "INSTANCE_PATH": str(folder / "instance")})
        with app.app_context():
            init_db(app)
            session = get_session()
            box = add_mailbox(
                session, MailboxSpec("support@example.com", AuthKind.SANDBOX, gmail.url, None, "S")
            )
            emails = [f"agent{n:02d}@example.com" for n in range(AGENTS)]
            for email in emails:
                ensure_agent(session, email, email.split("@")[0].title(), mailbox=box)
            install_defaults(session, box)
            session.commit()
            box_id = box.id
            for n in range(TICKETS):
                gmail.sandbox.deliver("support@example.com", make_email(f"Order {n}", "Where is my parcel?",
                                      sender=f"c{n}@shop.test", message_id=f"<order{n}@shop.test>"))  # fmt: skip
            SyncRunner(app, echo=lambda *_a, **_k: None).run_once([box_id])
            tickets = [{"id": t.id, "message_id": m, "thread_id": t.gmail_thread_id} for t, m in session.execute(
                select(Ticket, Message.rfc822_message_id).join(Message, Message.ticket_id == Ticket.id))]  # fmt: skip
        get_engine(app).dispose()
        data = folder / "load.json"
        data.write_text(json.dumps({"tokens": [keys.token(e) for e in emails], "tickets": tickets}))
        port = free_port()
        env = {**worker_env(url, str(folder / "instance"), PUSH_TOPIC="", POLL_SECONDS=2, LOG_FORMAT=""),
               "POSTDESK_ADDON_CLIENT_ID": CLIENT_ID, "POSTDESK_ADDON_CERTS_URL": keys.url}  # fmt: skip
        try:
            web = subprocess.Popen([postdesk_command(), "web", "--port", str(port), "--workers", "4"],
                                   env={**env, "PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)  # fmt: skip
            processes.append(Process(["worker"], env=env))
            processes[-1].wait_for("running queued tasks")
            host = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.2)

            def arrive() -> None:  # new mail all the while: the worker syncs it
                n = 0
                while not stop.wait(0.5):
                    gmail.sandbox.deliver(
                        "support@example.com", make_email(f"New {n}", "Hi", sender=f"n{n}@shop.test")
                    )
                    n += 1

            threading.Thread(target=arrive, daemon=True).start()
            locust(host, 8, 10, data, folder, "warm", think="0.1,0.2")  # each gunicorn process warm
            single = locust(host, 1, 30, data, folder, "single", think="0.2,0.4")
            loaded = locust(host, AGENTS, 60, data, folder, "fifty")
        finally:
            stop.set()
            for process in processes:
                process.stop()
            if web is not None:
                web.terminate()
                web.wait(timeout=30)
            keys.close()
    one, fifty = single["card"], loaded["card"]
    errors = sum(row["failures"] for row in (*single.values(), *loaded.values()) if row)
    ratio = fifty["p95_ms"] / max(one["p95_ms"], 1.0)
    figures = {
        "single_agent": single,
        "fifty_agents": loaded,
        "card_p95_ratio": round(ratio, 2),
        "errors": errors,
    }
    print(json.dumps(figures, indent=2))
    print(f"add-on under load: card p95 {one['p95_ms']:.0f} ms for one agent, {fifty['p95_ms']:.0f} ms for {AGENTS} "
          f"({ratio:.2f}x; target <= {TARGET}x), {loaded['Aggregated']['requests']:.0f} requests in 60 s, "
          f"{errors:.0f} errors")  # fmt: skip
    if errors or ratio > TARGET:
        print("FAIL: errors under load, or the card slows down more than the target")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
