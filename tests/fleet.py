"""Many ``postdesk worker`` processes on one PostgreSQL database sharing many sandbox mailboxes, with
mail arriving all the while: the harness of the scale test (tests/test_task_workers.py) and of
``make bench``'s workers figure (tests/bench/bench_workers.py)."""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from helpers import Process, http, make_email
from sqlalchemy import create_engine, text

from server.gmail.sandbox import SandboxServer


def add_mailboxes(session: Any, gmail: SandboxServer, count: int) -> list[str]:
    """``count`` shared mailboxes on the sandbox, each with an agent and the default rules (which
    acknowledge every new ticket). Committed."""
    from server.base.models import AuthKind
    from server.services.accounts import MailboxSpec, add_mailbox, ensure_agent
    from server.services.defaults import install_defaults

    addresses = [f"desk{n:02d}@example.com" for n in range(count)]
    for n, address in enumerate(addresses):
        box = add_mailbox(session, MailboxSpec(address, AuthKind.SANDBOX, gmail.url, None, f"Desk {n}"))
        ensure_agent(session, f"agent{n:02d}@example.com", f"Agent {n}", mailbox=box)
        install_defaults(session, box)
        gmail.sandbox.user(address)  # the mailbox exists in Gmail, empty
    session.commit()
    return addresses


PUSH_ACCOUNT = "gmail-push@fleet.iam.gserviceaccount.com"


class PushedWeb:
    """The web app in this process, receiving the sandbox's signed Gmail push notifications and
    queueing a sync of the mailbox for any worker: production's path from Gmail to the workers."""

    def __init__(self, gmail: SandboxServer, database_url: str, instance_path: str) -> None:
        from werkzeug.serving import make_server

        from server import create_app

        self.app = create_app({"DATABASE_URL": database_url, "INSTANCE_PATH": instance_path,
                               "TASKS": "procrastinate"})  # fmt: skip
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/gmail/push"
        self.app.config.update(PUSH_AUDIENCE=self.url, PUSH_SERVICE_ACCOUNT=PUSH_ACCOUNT,
                               PUSH_CERTS_URL=f"{gmail.url}sandbox/push/certs")  # fmt: skip
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        http("POST", f"{gmail.url}sandbox/push", {"url": self.url, "audience": self.url,
                                                   "service_account": PUSH_ACCOUNT})  # fmt: skip

    def close(self) -> None:
        from server.base.db import get_engine

        self.server.shutdown()
        self.server.server_close()
        queue = self.app.extensions.get("postdesk_tasks", {}).get("queue")
        if queue is not None:
            queue.close()
        get_engine(self.app).dispose()


def watched(session: Any, count: int) -> bool:
    """Every mailbox has a Gmail push watch (a worker's clock starts them)."""
    from sqlalchemy import func, select

    from server.base.models import Mailbox

    session.rollback()
    return session.scalar(select(func.count()).where(Mailbox.watch_expires_at.is_not(None))) == count


def worker_env(database_url: str, instance_path: str, **settings: Any) -> dict[str, str]:
    """The environment of a worker that works from the task queue, with short clocks for a test:
    syncs come from push notifications (PushedWeb); the poll is the fallback, every 30 s."""
    values = {
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": instance_path,
        "TASKS": "procrastinate",
        "PUSH_TOPIC": "projects/fleet/topics/gmail",
        "POLL_SECONDS": 30,
        "LOG_FORMAT": "text",  # each task's start, end and sync summary: what a failing test prints
        "CLOCK_SECONDS": 3600,
        "WORKER_LEASE_SECONDS": 3,
        "WORKER_RENEW_SECONDS": 0.5,
        "TASK_HEARTBEAT_SECONDS": 0.5,
        "TASK_STALLED_SECONDS": 3,
        "TASK_RECOVER_SECONDS": 0.5,
        "TASK_POLL_SECONDS": 0.5,
        "OUTBOX_CLAIM_SECONDS": 10,  # a killed sender's claimed mail is checked in Gmail and sent after this
        **settings,
    }

    return {f"POSTDESK_{name}": str(value) for name, value in values.items()}


class Fleet:
    """Worker processes started, killed and restarted by the test."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.workers: list[Process] = []

    def start(self) -> Process:
        worker = Process(["worker"], env=self.env)
        worker.wait_for(r"running queued tasks", timeout=60)
        self.workers.append(worker)
        return worker

    def kill(self, worker: Process) -> None:
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(timeout=30)

    def restart(self, worker: Process) -> Process:
        """A rolling restart, as a deploy does it: the new process is up before the old one stops
        (SIGTERM: it finishes the task under way and gives up the clock)."""
        new = self.start()
        worker.proc.send_signal(signal.SIGTERM)
        worker.wait_for(r"stopped", timeout=60)
        worker.proc.wait(timeout=30)
        return new

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


class Traffic:
    """Customers writing to the mailboxes at random, each email a new ticket; and a watch on the
    database that notes when each email was filed (its Message-ID first seen in ``messages``)."""

    def __init__(self, gmail: SandboxServer, addresses: list[str], database_url: str, *, seed: int) -> None:
        self.gmail, self.addresses, self.rng = gmail, addresses, random.Random(seed)
        self.engine = create_engine(database_url)
        self.delivered: dict[str, tuple[str, float]] = {}  # Message-ID -> (mailbox, when)
        self.filed: dict[str, float] = {}
        self._watching = threading.Event()
        self._watch = threading.Thread(target=self._look, daemon=True)

    def send(self, count: int, over_seconds: float, *, during: Callable[[float], None] | None = None) -> None:
        """Deliver ``count`` emails spread over ``over_seconds``; ``during(elapsed)`` runs between them."""
        self._watching.set()
        if not self._watch.is_alive():
            self._watch.start()
        started = time.monotonic()
        for n in range(count):
            time.sleep(max(0.0, started + over_seconds * n / count - time.monotonic()))
            address = self.rng.choice(self.addresses)
            key = f"<load{len(self.delivered)}@shop.test>"
            raw = make_email(
                f"Question {key}", "Hello", sender=f"c{len(self.delivered)}@shop.test", message_id=key
            )
            self.gmail.sandbox.deliver(address, raw)
            self.delivered[key] = (address, time.monotonic())
            if during is not None:
                during(time.monotonic() - started)

    def _look(self) -> None:
        while self._watching.is_set():
            with self.engine.connect() as connection:
                rows = connection.execute(
                    text("SELECT rfc822_message_id FROM messages WHERE direction = 'inbound'")
                ).scalars()
                now = time.monotonic()
                for key in rows:
                    self.filed.setdefault(key, now)
            time.sleep(0.1)

    def wait_filed(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(key in self.filed for key in self.delivered):
                return True
            time.sleep(0.2)
        return False

    def waits(self) -> dict[str, float]:
        """Seconds from delivery to filing, per email filed."""
        return {key: self.filed[key] - at for key, (_box, at) in self.delivered.items() if key in self.filed}

    def close(self) -> None:
        self._watching.clear()
        if self._watch.is_alive():
            self._watch.join(timeout=5)
        self.engine.dispose()
