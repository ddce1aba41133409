"""A busy week of a shared mailbox in minutes, under faults, then every promise checked (issue 30).

Real processes on this machine: the Gmail sandbox (in the driver's process, with its fault injection and
its signed push), PostgreSQL, ``postdesk web`` (gunicorn, two workers, Gmail push into the task queue),
two ``postdesk worker`` processes sharing the queue, and a webhook receiver that is sometimes slow,
failing or down. The driver plays customers (Russian and English: new questions, replies in their
thread, forwarded mail; out-of-office replies, bounces and another helpdesk's auto-replies), agents
working through the API (taking, assigning to a colleague, replying by text and by template, notes with
@mentions, snoozing for a few minutes, solving, merging a customer's duplicate) and an admin changing
the priority rule and the SLA policy mid-run; CSAT links in the team's mail are clicked. Faults land at
instants drawn from the seed: Gmail answering 429 and 503, slow, history expired (404), push
notifications duplicated, out of order and held back (posted late, after newer ones and after a poll), a
worker killed with SIGKILL (several times), the web restarted, PostgreSQL restarted once (when the
driver owns it), the webhook receiver down for a while. Every action and fault is logged with its
instant (JSON lines).

The oracle (tests/soak_oracle.py) reads the database, the sandbox's mailbox and the log, plainly — no
Postdesk code decides what is right:

- every customer message filed exactly once, in the right ticket (its thread's, or the survivor of a
  merge the driver made);
- no automatic mail answered (nothing in SENT answers an out-of-office, a bounce or a helpdesk);
- every Outbox row in Gmail's SENT exactly once (acknowledgements, agents' replies, notifications);
  one acknowledgement per customer's new question, none for automatic mail;
- every webhook event delivered at least once, each time with the same delivery id and a valid
  signature;
- nothing stuck: no task running, no Outbox row or webhook delivery left unsent;
- no 5xx answered outside the announced restart windows;
- the report's count of new tickets equals the oracle's, and its count of CSAT ratings (one per ticket
  whose rating link a customer clicked; a merged ticket leaves the reports with its rating);
- no reminder twice (the clock is moved through the next day at the end, two scans at each instant);
- each thread's labels equal to its ticket's state.

``make soak`` runs the full version (``--minutes 15``), ``make soak SEED=…`` replays one; a short one
runs in ``make test`` on PostgreSQL (tests/test_soak.py), which also plants faults into a finished
run's evidence and shows the invariant that should catch each one does.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import hmac
import json
import os
import random
import re
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as email_policy
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from fleet import PUSH_ACCOUNT, Fleet, worker_env  # noqa: E402
from helpers import MAILBOX, Process, http  # noqa: E402
from soak_oracle import check, gather, report  # noqa: E402
from sqlalchemy import create_engine, func, select, text  # noqa: E402

from server.gmail.sandbox import SandboxServer  # noqa: E402
from server.gmail.sandbox.faults import FaultPlan, Window  # noqa: E402

#: How long the finished work must stay unchanged before the oracle reads it.
STABLE_SECONDS = 8
#: A week's mail arrives here in minutes, hundreds of times denser than a real mailbox's: at Gmail's
#: own per-minute quota the sandbox would throttle the run (429s for a minute at a time) where a real
#: week never is. The quota stays enforced, ten times larger; 429s come from the faults on purpose.
QUOTA_SCALE = 10
LANGUAGES = ("en", "ru")
QUESTIONS = {
    "en": ["My invoice shows the wrong amount", "I cannot sign in since this morning", "How do I export my data?",
           "The app is very slow today", "Please cancel my order", "Where is my parcel?"],
    "ru": ["Не могу войти в личный кабинет", "Счёт выставлен с ошибкой", "Как выгрузить мои данные?",
           "Приложение сильно тормозит", "Отмените, пожалуйста, заказ", "Где моя посылка?"],
}  # fmt: skip


@dataclass
class Sent:
    """A message the driver delivered to the mailbox."""

    message_id: str
    kind: str  # question | reply | forward | out_of_office | bounce | helpdesk
    root: str  # Message-ID of the thread's first message
    customer: str
    at: float


@dataclass
class Log:
    """Every action and fault with its instant (seconds since the start), written as JSON lines."""

    path: Path
    started: float = field(default_factory=time.monotonic)
    lines: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, kind: str, **what: Any) -> None:
        entry = {"t": round(time.monotonic() - self.started, 3), "kind": kind, **what}
        with self.lock:
            self.lines.append(entry)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [line for line in self.lines if line["kind"] == kind]


class Receiver:
    """The webhook receiver: answers 204, or slowly, or 503, or is down (nothing listens)."""

    def __init__(self, secret_of: Callable[[], str]) -> None:
        self.secret_of = secret_of
        self.mode = "ok"
        self.seen: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server: ThreadingHTTPServer | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.record(dict(self.headers), body)
                if receiver.mode == "slow":
                    time.sleep(2)
                self.send_response(503 if receiver.mode == "fail" else 204)
                self.end_headers()

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def record(self, headers: dict[str, str], body: bytes) -> None:
        stamp = dict(
            part.split("=", 1) for part in headers.get("Postdesk-Signature", "").split(",") if "=" in part
        )
        expected = hmac.new(self.secret_of().encode(), stamp.get("t", "").encode() + b"." + body,
                            hashlib.sha256).hexdigest()  # fmt: skip
        try:
            document = json.loads(body)
        except ValueError:
            document = {}
        with self.lock:
            self.seen.append({"delivery": headers.get("Postdesk-Delivery"), "event": headers.get("Postdesk-Event"),
                              "body_id": document.get("id"), "signed": hmac.compare_digest(expected, stamp.get("v1", "")),
                              "mode": self.mode})  # fmt: skip


@dataclass
class Setup:
    mailbox_id: int
    tokens: dict[str, str]  # agent email -> API secret
    agent_ids: dict[str, int]
    webhook_secret: str
    template_ids: list[int]  # the mailbox's shared templates (its defaults)


_CSAT_LINK = re.compile(r"https?://[^\s\"'<>]+/csat/[A-Za-z0-9._\-]+")


def csat_links(raw: bytes) -> tuple[str, list[str]]:
    """The Message-ID and the rating links of an email, read as a mail client shows it (quoted-printable
    undone)."""
    message = message_from_bytes(raw, policy=email_policy)
    found: list[str] = []
    for part in message.walk():
        if part.get_content_maintype() == "text":
            try:
                found += _CSAT_LINK.findall(part.get_content())
            except (LookupError, ValueError):  # a part the soak's mail reader cannot decode
                continue
    return str(message.get("Message-ID", "")).strip(), found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare(
    database_url: str, instance_path: str, gmail: SandboxServer, receiver: Receiver, agents: int
) -> Setup:
    """The mailbox with its default rules, the agents with API tokens, the webhook subscription."""
    from server import create_app
    from server.base.db import get_engine, get_session, init_db
    from server.base.models import AuthKind, Template
    from server.services import api_tokens
    from server.services.accounts import AgentChange, MailboxSpec, add_agent, add_mailbox
    from server.services.defaults import REMINDER_TEMPLATES, install_defaults
    from server.services.sla_policies import check as check_policies
    from server.services.sla_policies import save as save_policies
    from server.services.webhooks import EVENT_TYPES
    from server.services.webhooks.subscriptions import Settings, subscribe

    app = create_app({"DATABASE_URL": database_url, "INSTANCE_PATH": instance_path,
                      "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8"})  # fmt: skip
    with app.app_context():
        init_db()
        db = get_session()
        box = add_mailbox(db, MailboxSpec(MAILBOX, AuthKind.SANDBOX, gmail.url, None, "Support"))
        install_defaults(db, box)
        # The replies an agent may send a customer (not the team's own reminder and digest templates).
        templates = list(db.scalars(select(Template.id).where(
            Template.mailbox_id == box.id, Template.owner_id.is_(None),
            Template.name.not_in({name for name, *_ in REMINDER_TEMPLATES}))))  # fmt: skip
        # Labels mirror each ticket's state; an SLA around the clock (the moved clock at the end passes
        # its deadlines within hours, whatever the weekday), the reminders' defaults.
        box.settings = {**(box.settings or {}), "gmail_labels": {"enabled": True}}
        save_policies(db, box, check_policies({"policies": [{
            "name": "Standard", "default": True, "calendar": {"timezone": "UTC", "hours": "always"},
            "targets": {p: {"first_response": 60, "resolution": 240} for p in ("urgent", "high", "normal", "low")},
        }]}), batch=500)  # fmt: skip
        gmail.sandbox.user(MAILBOX)
        db.commit()
        now = datetime.now(UTC)
        admin = add_agent(
            db, "lead@example.com", AgentChange(name="Lead", role="admin", mailboxes=(MAILBOX,))
        )
        team = [add_agent(db, f"agent{n}@example.com", AgentChange(name=f"Agent {n}", role="agent",
                                                                   mailboxes=(MAILBOX,)))
                for n in range(agents)]  # fmt: skip
        db.commit()
        tokens, ids = {}, {}
        for person in [admin, *team]:
            scopes = ["tickets:read", "tickets:write", "reports:read"] + (
                ["settings:write"] if person is admin else []
            )
            _token, secret = api_tokens.create(db, owner=person, name="soak", scopes=scopes, expires_at=None,
                                               by=admin, now=now)  # fmt: skip
            tokens[person.email], ids[person.email] = secret, person.id
        # Plain http to a loopback receiver, as an operator allows an inside one.
        allowed = dataclasses.replace(Settings.from_config(app.config), allow_http=True)
        _hook, hook_secret = subscribe(
            db, box, url=receiver.url, events=list(EVENT_TYPES), by=admin, settings=allowed, now=now
        )
        db.commit()
        mailbox_id = box.id
    get_engine(app).dispose()
    return Setup(mailbox_id, tokens, ids, hook_secret, templates)


#: Deliberately broken builds (``--broken KIND``): a ``sitecustomize`` put first on the web's and the
#: workers' PYTHONPATH changes Postdesk as a bug would, and the invariant named beside it must catch it.
BROKEN: dict[str, tuple[str, str]] = {
    "send_twice": (
        "every Outbox email in SENT exactly once",
        "from server.gmail.client import GmailClient\n"
        "_send = GmailClient.send\n"
        "def send(self, raw, thread_id=None):\n"
        "    _send(self, raw, thread_id=thread_id)\n"
        "    return _send(self, raw, thread_id=thread_id)\n"
        "GmailClient.send = send\n",
    ),
    "skip_message": (
        "every customer message filed exactly once",
        "import server.gmail.sync as sync\n"
        "_fetch = sync._fetch\n"
        "def fetch(client, ids):\n"
        "    return [m for m in _fetch(client, ids) if not m.gmail_id.endswith('7')]\n"
        "sync._fetch = fetch\n",
    ),
}


def broken_build(kind: str, work: Path) -> dict[str, str]:
    """The environment that makes the web and the workers the broken build ``kind``."""
    folder = work / f"broken-{kind}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(BROKEN[kind][1], encoding="utf-8")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH", "")]))}


class Soak:
    """The run: processes, actors, faults, and the log of all of them."""

    def __init__(self, *, database_url: str, instance_path: str, gmail: SandboxServer, work: Path, seed: int,
                 seconds: float, restart_postgres: Callable[[], None] | None = None,
                 customers: int = 30, agents: int = 8, broken: str | None = None,
                 stall_seconds: float = 90) -> None:  # fmt: skip
        self.database_url, self.instance_path, self.gmail = database_url, instance_path, gmail
        self.seed, self.seconds, self.rng = seed, seconds, random.Random(seed)
        self.restart_postgres = restart_postgres
        self.log = Log(work / f"soak-{seed}.jsonl")
        self.customers = [f"{'olga' if n % 2 else 'sam'}{n}@{'mail.ru' if n % 2 else 'shop.test'}"
                          for n in range(customers)]  # fmt: skip
        self.language = {c: LANGUAGES[n % 2] for n, c in enumerate(self.customers)}
        self.sent: dict[str, Sent] = {}
        self.threads: dict[str, list[str]] = defaultdict(list)  # root -> message ids
        self.merges: dict[int, int] = {}  # merged ticket id -> survivor id
        #: Gmail id of an email in SENT -> its Message-ID and its rating links
        self.rating_links: dict[str, tuple[str, list[str]]] = {}
        self._driver_app: Any = None  # the driver's own Postdesk app, for the moved clocks
        self.windows: list[tuple[float, float]] = []  # restart windows: 5xx allowed there
        self.answers: list[tuple[float, str, int]] = []  # (instant, what, status) of every API call
        with gmail.gate.lock:
            gmail.gate.meter.user_units_per_minute *= QUOTA_SCALE
            gmail.gate.meter.project_units_per_minute *= QUOTA_SCALE
        self.receiver = Receiver(lambda: self.setup.webhook_secret)
        self.setup = prepare(database_url, instance_path, gmail, self.receiver, agents)
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        push = f"{self.base}/gmail/push"
        common = {"DATABASE_URL": database_url, "INSTANCE_PATH": instance_path, "TASKS": "procrastinate",
                  "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8", "WEBHOOK_BACKOFF_SECONDS": "0.25",
                  "PUBLIC_URL": self.base, "PUSH_AUDIENCE": push, "PUSH_SERVICE_ACCOUNT": PUSH_ACCOUNT,
                  "PUSH_CERTS_URL": f"{gmail.url}sandbox/push/certs", "LOG_FORMAT": "text"}  # fmt: skip
        self.broken, self.stall_seconds = broken, stall_seconds
        build = broken_build(broken, work) if broken else {}
        self.web_env = {**{f"POSTDESK_{k}": str(v) for k, v in common.items()}, **build}
        self.fleet = Fleet({**worker_env(database_url, instance_path, CLOCK_SECONDS=1, POLL_SECONDS=5,
                                         OUTBOX_CLAIM_SECONDS=5, **{k: v for k, v in common.items()
                                                                    if k not in ("DATABASE_URL", "INSTANCE_PATH", "TASKS")}),
                            **build})  # fmt: skip
        self.web: Process | None = None
        http(
            "POST",
            f"{gmail.url}sandbox/push",
            {"url": push, "audience": push, "service_account": PUSH_ACCOUNT},
        )

    # --- processes -------------------------------------------------------------------------------

    def start_web(self) -> None:
        self.web = Process(["web", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "2"],
                           env=self.web_env)  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("postdesk web did not start:\n" + self.web.output()[-3000:])

    def restart_web(self) -> None:
        started = time.monotonic() - self.log.started
        assert self.web is not None
        self.web.proc.send_signal(signal.SIGTERM)  # gunicorn's graceful stop, as a deploy does it
        self.web.proc.wait(timeout=60)
        self.web.stop()  # its output's pipe closed
        self.start_web()
        self.windows.append((started, time.monotonic() - self.log.started + 1))

    # --- the actors ------------------------------------------------------------------------------

    def deliver(self, raw: bytes, sent: Sent) -> None:
        self.gmail.sandbox.deliver(MAILBOX, raw)
        self.sent[sent.message_id] = sent
        self.threads[sent.root].append(sent.message_id)
        self.log(
            "deliver", message_id=sent.message_id, what=sent.kind, root=sent.root, customer=sent.customer
        )

    def email(
        self, sender: str, subject: str, body: str, *, parent: str | None = None, extra: str = ""
    ) -> tuple[bytes, str]:
        message_id = f"<soak-{self.seed}-{len(self.sent)}@{sender.split('@')[1]}>"
        lines = [f"From: {sender}", f"To: {MAILBOX}", f"Subject: {subject}", f"Message-ID: {message_id}",
                 f"Date: {formatdate()}", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]  # fmt: skip
        if parent:
            lines += [f"In-Reply-To: {parent}", f"References: {parent}"]
        if extra:
            lines += extra.splitlines()
        return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode(), message_id

    def customer_question(self) -> None:
        customer = self.rng.choice(self.customers)
        subject = self.rng.choice(QUESTIONS[self.language[customer]])
        raw, message_id = self.email(customer, subject, f"{subject}. {self.rng.randrange(10**6)}")
        self.deliver(raw, Sent(message_id, "question", message_id, customer, time.monotonic()))

    def _a_thread(self) -> Sent | None:
        roots = [
            s for s in self.sent.values() if s.kind in ("question", "forward") and s.message_id == s.root
        ]
        return self.rng.choice(roots) if roots else None

    def customer_reply(self) -> None:
        root = self._a_thread()
        if root is None:
            return
        last = self.threads[root.root][-1]
        raw, message_id = self.email(root.customer, "Re: your ticket", "Any news? " + str(self.rng.random()),
                                     parent=last)  # fmt: skip
        self.deliver(raw, Sent(message_id, "reply", root.root, root.customer, time.monotonic()))

    def customer_forward(self) -> None:
        customer = self.rng.choice(self.customers)
        raw, message_id = self.email(customer, "Fwd: Order confirmation", "---------- Forwarded message ---------\n"
                                     "From: shop@store.test\nYour order 1234 is confirmed.")  # fmt: skip
        self.deliver(raw, Sent(message_id, "forward", message_id, customer, time.monotonic()))

    def automatic(self) -> None:
        """Automatic mail in a customer's thread: their out-of-office, a bounce of the team's mail, or
        their own helpdesk's auto-reply to it."""
        root = self._a_thread()
        if root is None:
            return
        kind = self.rng.choice(["out_of_office", "bounce", "helpdesk"])
        parent = self.threads[root.root][-1]
        sender, subject, body, extra = {
            "out_of_office": (root.customer, "Out of office", "I am away until Monday.",
                              "Auto-Submitted: auto-replied\nX-Autoreply: yes"),
            "bounce": ("MAILER-DAEMON@mx.shop.test", "Undelivered Mail Returned to Sender", "Delivery failed.",
                       "Auto-Submitted: auto-replied"),
            "helpdesk": (root.customer, "[Ticket #4411] We received your request",
                         "This is an automatic reply from our helpdesk.",
                         "Auto-Submitted: auto-generated\nPrecedence: auto_reply\nX-Autoreply: yes"),
        }[kind]  # fmt: skip
        raw, message_id = self.email(sender, subject, body, parent=parent, extra=extra)
        self.deliver(raw, Sent(message_id, kind, root.root, root.customer, time.monotonic()))

    def api(self, method: str, path: str, body: Any = None, *, agent: str | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
        agent = agent or self.rng.choice([a for a in self.setup.tokens if a != "lead@example.com"])
        request = urllib.request.Request(
            f"{self.base}/api/v1{path}", method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.setup.tokens[agent]}", "Content-Type": "application/json",
                     **(headers or {})},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                status, data = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, data = error.code, error.read()
        except OSError:
            status, data = 0, b""  # refused: the web is restarting
        self.answers.append((time.monotonic() - self.log.started, f"{method} {path}", status))
        if status >= 500 and self.web is not None:  # what the web said about it (the traceback)
            time.sleep(0.2)
            self.log(
                "server_error",
                what=f"{method} {path}",
                status=status,
                said=self.web.output().splitlines()[-40:],
            )
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            return status, None

    def _open_ticket(self) -> dict[str, Any] | None:
        status, page = self.api("GET", "/tickets?status=open&limit=50")
        items = (page or {}).get("items") or [] if status == 200 else []
        return self.rng.choice(items) if items else None

    def agent_work(self) -> None:
        ticket = self._open_ticket()
        if ticket is None:
            return
        agent = self.rng.choice([a for a in self.setup.tokens if a != "lead@example.com"])
        choice = self.rng.random()
        path = f"/tickets/{ticket['id']}"
        if choice < 0.22:
            status, _ = self.api("PATCH", path, {"assignee_id": self.setup.agent_ids[agent]}, agent=agent)
            self.log("take", ticket=ticket["id"], agent=agent, status=status)
        elif choice < 0.3:
            other = self.rng.choice([a for a in self.setup.tokens if a != agent])
            status, _ = self.api("PATCH", path, {"assignee_id": self.setup.agent_ids[other]}, agent=agent)
            self.log("assign", ticket=ticket["id"], agent=agent, to=other, status=status)
        elif choice < 0.45:
            status, _ = self.api("POST", f"{path}/replies",
                                 {"text": f"Hello, we are on it ({self.rng.randrange(1000)})."}, agent=agent)  # fmt: skip
            self.log("reply", ticket=ticket["id"], agent=agent, status=status)
        elif choice < 0.55 and self.setup.template_ids:
            template = self.rng.choice(self.setup.template_ids)
            status, _ = self.api("POST", f"{path}/replies", {"template_id": template}, agent=agent)
            self.log("reply_template", ticket=ticket["id"], agent=agent, template=template, status=status)
        elif choice < 0.67:
            other = self.rng.choice([a for a in self.setup.tokens if a != agent])
            status, _ = self.api("POST", f"{path}/notes",
                                 {"body": f"@{other.split('@')[0]} please have a look"}, agent=agent)  # fmt: skip
            self.log("note", ticket=ticket["id"], agent=agent, mentioned=other, status=status)
        elif choice < 0.75:
            # Snoozed for a few minutes: it wakes within the run (or by the customer's reply, or the moved clock).
            until = datetime.now(UTC) + timedelta(minutes=self.rng.uniform(1, 20))
            status, _ = self.api("PATCH", path, {"snoozed_until": until.isoformat()}, agent=agent)
            self.log("snooze", ticket=ticket["id"], agent=agent, until=until.isoformat(), status=status)
        elif choice < 0.95:
            status, _ = self.api("PATCH", path, {"status": "solved"}, agent=agent)
            self.log("solve", ticket=ticket["id"], agent=agent, status=status)
        else:
            self.merge_duplicate(agent)

    def merge_duplicate(self, agent: str) -> None:
        status, page = self.api("GET", "/tickets?status=open&limit=100", agent=agent)
        by_customer: dict[str, list[int]] = defaultdict(list)
        for item in (page or {}).get("items") or [] if status == 200 else []:
            email = ((item.get("customer") or {}).get("email")) or ""
            by_customer[email].append(item["id"])
        pairs = [ids for ids in by_customer.values() if len(ids) > 1]
        if not pairs:
            return
        ids = self.rng.choice(pairs)
        merged, survivor = max(ids), min(ids)
        status, _ = self.api("POST", f"/tickets/{merged}/merge", {"into": survivor}, agent=agent)
        self.log("merge", ticket=merged, into=survivor, agent=agent, status=status)
        if status == 200:
            self.merges[merged] = survivor

    def csat_click(self) -> None:
        for gmail_id, message in list(self.gmail.sandbox.user(MAILBOX).messages.items()):
            if gmail_id not in self.rating_links and "SENT" in message.label_ids:
                self.rating_links[gmail_id] = csat_links(message.raw)  # each email read once
        links = [(email, link) for email, found in self.rating_links.values() for link in found]
        if not links:
            return
        email, url = self.rng.choice(links)
        if not url.startswith(self.base):
            return
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            status = 0
        self.answers.append((time.monotonic() - self.log.started, "GET /csat", status))
        self.log("csat", status=status, email=email)

    def admin_change(self, what: str) -> None:
        """The admin changes a rule (urgent tickets become high instead) or adds an SLA policy mid-run,
        through the command line's import, while mail and agents keep going."""
        from helpers import run_postdesk

        env = {**os.environ, **self.web_env}
        folder = self.log.path.parent
        if what == "rule":
            exported = run_postdesk(["rules", "export", "--mailbox", MAILBOX], env, timeout=120)
            changed = folder / "rules.yaml"
            changed.write_text(
                exported.stdout.replace("set_priority: urgent", "set_priority: high"), encoding="utf-8"
            )
            done = run_postdesk(["rules", "import", str(changed), "--mailbox", MAILBOX], env, timeout=120)
        else:
            policy = folder / "sla.yaml"
            policy.write_text("policies:\n  - name: Standard\n    default: true\n    calendar: {timezone: UTC, hours: always}\n"
                              "    targets:\n      urgent: {first_response: 30, resolution: 240}\n"
                              "      high: {first_response: 120, resolution: 960}\n", encoding="utf-8")  # fmt: skip
            done = run_postdesk(["sla", "policy-import", str(policy), "--mailbox", MAILBOX], env, timeout=120)
        self.log(f"admin_{what}", code=done.returncode, output=(done.stdout + done.stderr)[-300:])

    # --- faults ----------------------------------------------------------------------------------

    def fault(self, kind: str) -> None:
        self.log("fault", what=kind)
        gate = self.gmail.gate
        if kind == "gmail_errors":
            gate.set_plan(FaultPlan((429, 503), 0.3, frozenset(), None, 0, None))
            threading.Timer(4, lambda: gate.set_plan(FaultPlan())).start()
        elif kind == "gmail_slow":
            gate.set_plan(FaultPlan((), 0.0, frozenset(), None, 300, None))
            threading.Timer(4, lambda: gate.set_plan(FaultPlan())).start()
        elif kind == "history_expired":
            self.gmail.sandbox.expire_history(MAILBOX)
        elif kind in ("push_duplicate", "push_out_of_order"):
            pusher = self.gmail.sandbox.pusher
            with pusher.lock:
                old = [entry["envelope"] for entry in pusher.sent[-5:]]
            if pusher.target is not None and old:
                chosen = old if kind == "push_duplicate" else list(reversed(old))[:3]
                for envelope in chosen:
                    threading.Thread(target=pusher._post, args=(pusher.target, envelope), daemon=True).start()
        elif kind == "push_delayed":  # for a while each one posted late: after newer ones, after a poll
            pusher = self.gmail.sandbox.pusher
            pusher.delay_seconds = self.rng.uniform(5, 20)
            threading.Timer(self.seconds / 10, lambda: setattr(pusher, "delay_seconds", 0.0)).start()
        elif kind == "worker_kill":
            alive = [w for w in self.fleet.workers if w.proc.poll() is None]
            if alive:
                self.fleet.kill(self.rng.choice(alive))
                self.fleet.start()
        elif kind == "web_restart":
            self.restart_web()
        elif kind == "postgres_restart" and self.restart_postgres is not None:
            started = time.monotonic() - self.log.started
            self.restart_postgres()
            self.windows.append((started, time.monotonic() - self.log.started + 5))
        elif kind == "receiver_down":
            self.receiver.down()
            threading.Timer(self.seconds / 10, self.receiver.up).start()
        elif kind == "receiver_failing":
            self.receiver.mode = "fail"
            threading.Timer(5, lambda: setattr(self.receiver, "mode", "ok")).start()
        elif kind == "receiver_slow":
            self.receiver.mode = "slow"
            threading.Timer(5, lambda: setattr(self.receiver, "mode", "ok")).start()

    def plan(self) -> list[tuple[float, str]]:
        """The faults and the admin's changes, at instants drawn from the seed."""
        span = self.seconds
        kinds = (["gmail_errors"] * 3 + ["gmail_slow"] * 2 + ["history_expired", "push_duplicate", "push_out_of_order",
                  "push_delayed", "worker_kill", "worker_kill", "worker_kill", "web_restart", "receiver_down", "receiver_failing",
                  "receiver_slow"] + (["postgres_restart"] if self.restart_postgres else []))  # fmt: skip
        plan = [(self.rng.uniform(0.1 * span, 0.85 * span), kind) for kind in kinds]
        plan += [(self.rng.uniform(0.3 * span, 0.6 * span), "admin_rule"),
                 (self.rng.uniform(0.3 * span, 0.6 * span), "admin_sla")]  # fmt: skip
        return sorted(plan)

    # --- the run ---------------------------------------------------------------------------------

    def run(self) -> None:
        self.start_web()
        self.fleet.start()
        self.fleet.start()
        self.log("started", seed=self.seed, seconds=self.seconds)
        plan = self.plan()
        actions: list[tuple[float, Callable[[], None]]] = [
            (0.35, self.customer_question), (0.15, self.customer_reply), (0.03, self.customer_forward),
            (0.07, self.automatic), (0.35, self.agent_work), (0.05, self.csat_click),
        ]  # fmt: skip
        weights = [w for w, _ in actions]
        try:
            while (elapsed := time.monotonic() - self.log.started) < self.seconds:
                while plan and plan[0][0] <= elapsed:
                    _at, kind = plan.pop(0)
                    if kind.startswith("admin_"):
                        self.admin_change(kind.removeprefix("admin_"))
                    else:
                        self.fault(kind)
                self.rng.choices([a for _, a in actions], weights)[0]()
                time.sleep(self.rng.uniform(0.05, 0.25))
            self.quiesce()
            self.clock_forward()
            self.quiesce()
        finally:
            self.stop()

    def clock_forward(self, hours: int = 18, step_minutes: int = 30) -> None:
        """The rest of the day in seconds: the clock's reminder scan at moved instants (every half hour of
        the next ``hours``; at each, two scans at once, as two workers' clocks would), then the mail
        they queued sent at that instant — as the reminder tests move the clock. Every deadline of the
        run passes: warnings, overdue, escalations, unassigned tickets, digests."""
        from server.base.db import get_session
        from server.base.models import Mailbox
        from server.flows.reminders import run_reminders
        from server.gmail.client import client_for_mailbox
        from server.gmail.send import deliver_due

        app = self.driver_app()
        failures: list[str] = []

        def scan(moved: datetime) -> None:
            try:
                with app.app_context():
                    run_reminders(get_session(), now=moved)
            except Exception as exc:  # a lost race is the oracle's business, not the driver's
                failures.append(f"{type(exc).__name__}: {exc}")

        # Gmail's rate limit is per real minute; each step passes ``step_minutes`` of them in seconds, so
        # the sandbox's per-minute quota grows by as much more while the clock is moved (a real day's
        # reminders would pass it unthrottled; at the real rate two thousand tickets' reminders take
        # half an hour of waiting for the quota).
        meter = self.gmail.gate.meter
        limits = meter.user_units_per_minute, meter.project_units_per_minute
        with self.gmail.gate.lock:
            meter.user_units_per_minute, meter.project_units_per_minute = (n * step_minutes for n in limits)
        start, began = datetime.now(UTC), time.monotonic()
        sent = 0
        try:
            for step in range(1, hours * 60 // step_minutes + 1):
                moved = start + timedelta(minutes=step * step_minutes)
                scans = [threading.Thread(target=scan, args=(moved,)) for _ in range(2)]
                for thread in scans:
                    thread.start()
                for thread in scans:
                    thread.join()
                with app.app_context():
                    session = get_session()
                    mailbox = session.get(Mailbox, self.setup.mailbox_id)
                    assert mailbox is not None
                    with client_for_mailbox(mailbox) as client:
                        sent += deliver_due(session, mailbox.id, client, now=moved, limit=10_000).sent
        finally:
            with self.gmail.gate.lock:  # the units spent were the moved minutes': they leave the window too
                meter.user_units_per_minute, meter.project_units_per_minute = limits
                meter.user_windows.clear()
                meter.project_window = Window()
        self.log("clock_forward", hours=hours, sent=sent, failures=failures[:3],
                 seconds=round(time.monotonic() - began, 1))  # fmt: skip

    def driver_app(self) -> Any:
        """The driver's own Postdesk app (made once), for what it does at a moved clock."""
        from server import create_app

        if self._driver_app is None:
            self._driver_app = create_app({"DATABASE_URL": self.database_url, "INSTANCE_PATH": self.instance_path,
                                           "WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8", "WEBHOOK_BACKOFF_SECONDS": "0.25"})  # fmt: skip
        return self._driver_app

    def webhooks_forward(self) -> None:
        """Only webhook deliveries are left, waiting out their backoff (doubling, up to an hour, after the
        receiver was down) or the two-minute claim of a worker killed while sending them: the clock is
        moved past the last of those instants and the due ones are sent from here, as a worker's clock
        would then (time runs faster where the code allows it)."""
        from server.base.db import get_session
        from server.base.models import WebhookDelivery
        from server.services.webhooks.sending import deliver_due
        from server.services.webhooks.subscriptions import Settings

        app = self.driver_app()
        with app.app_context():
            session = get_session()
            waits = session.execute(
                select(
                    func.max(WebhookDelivery.next_attempt_at), func.max(WebhookDelivery.claimed_until)
                ).where(WebhookDelivery.state == "pending")
            ).one()
            instants = [moment for moment in waits if moment is not None]
            moved = max(instants) + timedelta(milliseconds=1) if instants else None
            tried = (
                deliver_due(session, Settings.from_config(app.config), now=moved, limit=10_000)
                if moved
                else 0
            )
        self.log("webhooks_forward", to=str(moved), tried=tried)

    def quiesce(self, timeout: float = 240) -> None:
        """Faults off, the receiver up; then wait until the work is done (or the timeout says not)."""
        self.gmail.gate.set_plan(FaultPlan())
        self.receiver.mode = "ok"
        if self.receiver.server is None:
            self.receiver.up()
        meter = self.gmail.gate.meter
        with self.gmail.gate.lock:  # Gmail's per-minute quota left for the mailbox (429s while it is spent)
            room = meter.user_windows[MAILBOX].room(self.gmail.gate.clock(), meter.user_units_per_minute)
        self.log("quiesce", quota_room=room)
        engine = create_engine(self.database_url)
        began = time.monotonic()
        deadline = began + timeout
        done = False
        last: tuple[int, ...] | None = None
        trail: list[list[float]] = []  # each change of the state, with its instant
        calm_since = time.monotonic()
        try:
            # Done: every delivered message filed, nothing unsent, no delivery pending — and nothing new
            # queued for STABLE_SECONDS (the clock's time rules, surveys and reminders come a tick after
            # what caused them). The queue itself always holds the clock's next jobs: not a sign.
            while time.monotonic() < deadline:
                with engine.connect() as db:
                    state = tuple(
                        int(db.execute(text(query)).scalar() or 0)
                        for query in (
                            "SELECT count(DISTINCT rfc822_message_id) FROM messages WHERE direction = 'inbound'",
                            "SELECT count(*) FROM outbox WHERE state <> 'sent'",
                            "SELECT count(*) FROM webhook_deliveries WHERE state <> 'delivered'",
                            "SELECT count(*) FROM outbox",
                            "SELECT count(*) FROM webhook_deliveries",
                            "SELECT count(*) FROM tickets WHERE labels_wanted_at IS NOT NULL",
                        )
                    )
                if state != last:
                    last, calm_since = state, time.monotonic()
                    trail.append([round(calm_since - began, 1), *state])
                done = state[0] >= len(self.sent) and not state[1] and not state[2] and not state[5]
                calm = time.monotonic() - calm_since
                if (done and calm >= STABLE_SECONDS) or calm >= self.stall_seconds:
                    break  # finished, or stuck: nothing moved for stall_seconds (the oracle says what)
                if state[2] and state[0] >= len(self.sent) and not state[1] and not state[5] and calm >= 3:
                    self.webhooks_forward()
                time.sleep(1)
        finally:
            engine.dispose()
        # How long it took and what it saw last (filed, unsent, undelivered, outbox, deliveries, labels
        # wanted): a quiet that was not "done" is a stall the oracle then names.
        self.log("quiet", seconds=round(time.monotonic() - began, 1), done=done, state=list(last or ()),
                 trail=trail[-12:])  # fmt: skip
        if not done:  # what the processes said last, for whoever reads the log of a stalled run
            self.log("stalled", workers=[{"alive": w.proc.poll() is None, "said": w.output().splitlines()[-20:]}
                                         for w in self.fleet.workers[-4:]],
                     web=self.web.output().splitlines()[-20:] if self.web is not None else [])  # fmt: skip

    def stop(self) -> None:
        if self._driver_app is not None:
            from server.base.db import get_engine

            get_engine(self._driver_app).dispose()
            self._driver_app = None
        self.fleet.stop()
        if self.web is not None:
            self.web.stop()
        self.receiver.down()


def main() -> int:
    # A SIGTERM (a timeout, CI cancelled) still stops the soak's own PostgreSQL and processes via ``finally``.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--broken", choices=sorted(BROKEN), help="run a deliberately broken build")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    import tempfile

    from matrix import RESTARTS, postgres_binaries, throwaway_postgres

    binaries = postgres_binaries()
    if binaries is None:
        print("make soak needs PostgreSQL's binaries (Debian: apt-get install postgresql)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="postdesk-soak-"))
    with throwaway_postgres(binaries) as url:
        gmail = SandboxServer(seed=seed).start()
        try:
            soak = Soak(database_url=url, instance_path=str(work / "instance"), gmail=gmail, work=work, seed=seed,
                        seconds=args.minutes * 60, restart_postgres=RESTARTS[url], broken=args.broken)  # fmt: skip
            soak.run()
            evidence = gather(soak)
        finally:
            gmail.stop()
    results = check(evidence)
    print(report(results, soak, evidence))
    print(f"log: {soak.log.path}")
    if args.broken:
        expected = BROKEN[args.broken][0]
        caught = [name for name, problem in results if problem is not None]
        print(
            f"broken build {args.broken}: "
            + ("caught by" if expected in caught else "NOT caught by")
            + f" «{expected}»"
        )
        return 0 if expected in caught else 1
    return 0 if all(problem is None for _name, problem in results) else 1


if __name__ == "__main__":
    sys.exit(main())
