"""Webhooks to a real HTTP receiver on loopback: each event once per change, signed; retried until
delivered; a receiver down for a day turns the subscription off and the admins hear of it; hostile
addresses refused when saved and again when called."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import time_machine
from helpers import make_email
from sqlalchemy import select

from server.base.models import Agent, Outbox, Role, Ticket, Webhook, WebhookAttempt, WebhookDelivery
from server.services import webhooks

SUPPORT = "support@example.com"


class Receiver:
    """A webhook receiver: records every request; answers with the next scripted status (then 200)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.script: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append({"headers": dict(self.headers), "body": body})
                status = receiver.script.pop(0) if receiver.script else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/postdesk"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def types(self) -> Counter[str]:
        found = Counter(json.loads(r["body"])["type"] for r in self.received)
        self.received.clear()
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture
def settings(app: Any) -> webhooks.Settings:
    """Demo mode (plain http) and loopback allowed, as an operator allows an inside receiver."""
    app.config.update(DEMO=True, WEBHOOK_ALLOW_NETWORKS="127.0.0.1/32")
    return webhooks.Settings.from_config(app.config)


def subscribe(
    session: Any, box: Any, url: str, settings: webhooks.Settings, events: list[str] | None = None
) -> tuple[Webhook, str]:
    admin = session.scalar(select(Agent).where(Agent.role == Role.ADMIN.value))
    hook, secret = webhooks.subscribe(
        session,
        box,
        url=url,
        events=events or list(webhooks.EVENT_TYPES),
        by=admin,
        settings=settings,
        now=datetime.now(UTC),
    )
    session.commit()
    return hook, secret


def verified(request: dict[str, Any], secret: str, *, fresh: bool = True) -> dict[str, Any]:
    """The receiver's side of docs/api.md: check the signature and the time, then read the body."""
    header = request["headers"]["Postdesk-Signature"]
    parts = dict(item.split("=", 1) for item in header.split(","))
    expected = hmac.new(
        secret.encode(), parts["t"].encode() + b"." + request["body"], hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(expected, parts["v1"])
    assert not fresh or abs(int(parts["t"]) - datetime.now(UTC).timestamp()) < 300
    body = json.loads(request["body"])
    assert request["headers"]["Postdesk-Delivery"] == body["id"]
    assert request["headers"]["Postdesk-Event"] == body["type"]
    return body


def test_each_event_reaches_the_receiver_once_per_change_and_signed(
    helpdesk: Any, deliver: Any, receiver: Receiver, settings: webhooks.Settings
) -> None:
    from server.base.models import ActorKind
    from server.services import action_kinds, csat, tickets

    session = helpdesk.session
    box = helpdesk.connect(SUPPORT, agents=["admin@example.com", "anna@example.com"])
    hook, secret = subscribe(session, box, receiver.url, settings)

    def delivered() -> Counter[str]:
        requests = list(receiver.received)
        for request in requests:
            verified(request, secret)
        webhooks.deliver_due(session, settings)
        return receiver.types()

    deliver(
        make_email(
            "Printer jammed",
            "Paper everywhere",
            sender="alice@customer.test",
            message_id="<jam@customer.test>",
        )
    )
    helpdesk.cycle(SUPPORT)
    first = delivered()
    assert first["ticket.created"] == 1 and first["message.received"] == 1
    assert set(first) <= {"ticket.created", "message.received", "ticket.updated", "ticket.assigned"}

    ticket = session.scalar(select(Ticket).where(Ticket.mailbox_id == box.id))
    anna = session.scalar(select(Agent).where(Agent.email == "anna@example.com"))
    as_anna = tickets.Actor(ActorKind.AGENT, agent_id=anna.id)

    def act(kind: Any, value: Any) -> Counter[str]:
        ctx = action_kinds.ActionContext(session, box, ticket, as_anna, datetime.now(UTC))
        action_kinds.perform(ctx, kind, value)
        session.commit()
        return delivered()

    from rules import ActionKind

    assert act(ActionKind.ASSIGN, None if ticket.assignee_id == anna.id else anna.id)["ticket.assigned"] == 1
    assert act(ActionKind.SET_PRIORITY, "urgent" if ticket.priority != "urgent" else "low") == Counter(
        {"ticket.updated": 1}
    )
    assert act(ActionKind.SET_STATUS, "solved") == Counter({"ticket.solved": 1})

    deliver(
        make_email(
            "Re: Printer jammed",
            "Still jammed!",
            sender="alice@customer.test",
            in_reply_to="<jam@customer.test>",
        )
    )
    helpdesk.cycle(SUPPORT)
    again = delivered()
    assert again["message.received"] == 1 and again["ticket.reopened"] == 1

    best = next(iter(csat.SCALES[csat.settings_of(box)["scale"]]))
    csat.rate(session, ticket, best, at=datetime.now(UTC), comment="Thanks")
    session.commit()
    assert delivered() == Counter({"csat.received": 1})

    # A rolled-back change sends nothing; an unsubscribed type is not sent.
    ctx = action_kinds.ActionContext(session, box, ticket, as_anna, datetime.now(UTC))
    action_kinds.perform(ctx, ActionKind.ADD_TAG, "never")
    session.rollback()
    assert delivered() == Counter()
    rows = session.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)).all()
    assert rows and all(row.state == "delivered" and row.attempts == 1 for row in rows)


def test_a_receiver_that_fails_three_times_gets_the_delivery_once_recorded_as_delivered(
    app: Any, helpdesk: Any, deliver: Any, receiver: Receiver, settings: webhooks.Settings
) -> None:
    session = helpdesk.session
    box = helpdesk.connect(SUPPORT, agents=["admin@example.com"])
    hook, secret = subscribe(session, box, receiver.url, settings, events=["ticket.created"])
    receiver.script = [500, 500, 500]
    deliver(make_email("Refund", "Please"))
    helpdesk.cycle(SUPPORT)
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False) as clock:
        for _ in range(8):  # the backoff: 30 s, 60 s, 120 s … the fourth try succeeds
            webhooks.deliver_due(session, settings)
            clock.shift(timedelta(minutes=5))
    row = session.scalar(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id))
    attempts = session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id == row.id).order_by(WebhookAttempt.id)
    ).all()
    assert [a.status for a in attempts] == [500, 500, 500, 200]
    assert (row.state, row.attempts, row.last_status) == ("delivered", 4, 200)
    bodies = [verified(r, secret, fresh=False) for r in receiver.received]  # signed at travelled times
    assert (
        len(bodies) == 4 and len({b["id"] for b in bodies}) == 1
    )  # one delivery id: the receiver de-duplicates
    assert session.get(Webhook, hook.id).failing_since is None


def test_a_receiver_down_for_a_day_turns_the_subscription_off_and_the_admins_are_emailed(
    app: Any, helpdesk: Any, deliver: Any, settings: webhooks.Settings
) -> None:
    import socket

    session = helpdesk.session
    box = helpdesk.connect(SUPPORT, agents=["admin@example.com", "anna@example.com"])
    with socket.socket() as probe:  # a port nobody listens on: the receiver is down
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook, _ = subscribe(session, box, f"http://127.0.0.1:{port}/down", settings)
    deliver(make_email("Anyone there?", "Hello"))
    helpdesk.cycle(SUPPORT)
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False) as clock:
        for _ in range(30):  # hourly at most between tries, for 25 hours
            webhooks.deliver_due(session, settings)
            clock.shift(timedelta(hours=1))
        helpdesk.cycle(SUPPORT)  # the mail to the admins goes out through the Outbox, once
        helpdesk.cycle(SUPPORT)
    hook = session.get(Webhook, hook.id)
    assert hook.enabled is False and "failed since" in (hook.disabled_reason or "")
    states = {
        row.state
        for row in session.scalars(select(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id))
    }
    assert states == {"failed"}
    mails = session.scalars(
        select(Outbox).where(Outbox.idempotency_key.like(f"webhook-disabled:{hook.id}:%"))
    ).all()
    assert [m.to for m in mails] == ["admin@example.com"]
    assert "turned off" in mails[0].subject and mails[0].headers == {
        "internal": True
    }  # never filed as a ticket
    sent = [m for m in helpdesk.sent_by(SUPPORT) if "turned off" in m.subject]
    assert len(sent) == 1


HOSTILE = [
    ("http://example.com/hook", "only https"),
    ("https://127.0.0.1/hook", "loopback"),
    ("https://localhost:8443/hook", "loopback"),
    ("https://[::1]/hook", "loopback"),
    ("https://[::ffff:127.0.0.1]/hook", "loopback"),
    ("https://10.1.2.3/hook", "private"),
    ("https://192.168.0.10/hook", "private"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://0.0.0.0/hook", "unspecified"),
    ("https://2130706433/hook", "loopback"),  # 127.0.0.1 written as one number
    ("https://0x7f.1/hook", "loopback"),
    ("https://user:secret@example.com/hook", "user name or password"),
    ("ftp://example.com/hook", "only https"),
    ("https:///nohost", "no host"),
    ("https://example.com:99999/", "not a web address"),
    ("javascript:alert(1)", "only https"),
]


@pytest.mark.parametrize(("url", "why"), HOSTILE)
def test_hostile_addresses_are_refused_when_saved(app: Any, helpdesk: Any, url: str, why: str) -> None:
    box = helpdesk.connect(SUPPORT, agents=["admin@example.com"])
    production = webhooks.Settings.from_config(app.config)  # not demo, nothing allowed inside

    def public_dns(host: str, port: int) -> list[str]:
        if host == "example.com":
            return ["93.184.215.14"]
        import socket

        return sorted({info[4][0] for info in socket.getaddrinfo(host, port)})

    with pytest.raises(webhooks.WebhookError, match=why):
        webhooks.check_address(url, production, resolve=public_dns)
    assert box.id and helpdesk.session.scalars(select(Webhook)).all() == []


def test_a_name_that_resolves_inside_is_refused_when_saved(app: Any) -> None:
    production = webhooks.Settings.from_config(app.config)
    for answer in (["10.0.0.7"], ["93.184.215.14", "127.0.0.1"], ["fe80::1"], ["fd00::5"]):
        with pytest.raises(webhooks.WebhookError, match="leads to"):
            webhooks.check_address(
                "https://hooks.partner.example/in", production, resolve=lambda h, p, a=answer: a
            )


def test_an_address_that_leads_inside_when_called_is_refused_then(
    app: Any, helpdesk: Any, deliver: Any, receiver: Receiver, settings: webhooks.Settings
) -> None:
    """Saved while the operator allowed loopback; the allowance is gone when the delivery goes: the
    connection's own check refuses the peer (what a DNS name turning to 127.0.0.1 would meet)."""
    session = helpdesk.session
    box = helpdesk.connect(SUPPORT, agents=["admin@example.com"])
    hook, _ = subscribe(session, box, receiver.url.replace("127.0.0.1", "localhost"), settings)
    app.config["WEBHOOK_ALLOW_NETWORKS"] = ""
    inside = webhooks.Settings.from_config(app.config)
    deliver(make_email("Hello", "There"))
    helpdesk.cycle(SUPPORT)
    webhooks.deliver_due(session, inside)
    assert receiver.received == []
    attempt = session.scalars(select(WebhookAttempt)).first()
    assert attempt.status is None and attempt.error.startswith("refused:") and "loopback" in attempt.error


def test_send_test_tries_once_and_logs_the_answer(
    app: Any, helpdesk: Any, receiver: Receiver, settings: webhooks.Settings
) -> None:
    session = helpdesk.session
    box = helpdesk.connect(SUPPORT, agents=["admin@example.com"])
    hook, secret = subscribe(session, box, receiver.url, settings)
    receiver.script = [503]
    failed = webhooks.send_test(session, hook, settings, datetime.now(UTC))
    session.commit()
    assert (failed.ok, failed.status) == (False, 503)
    worked = webhooks.send_test(session, hook, settings, datetime.now(UTC))
    session.commit()
    assert worked.ok and [verified(r, secret)["type"] for r in receiver.received] == ["ping", "ping"]
    pings = session.scalars(select(WebhookDelivery).where(WebhookDelivery.event_type == "ping")).all()
    assert sorted(p.state for p in pings) == ["delivered", "failed"]
    assert session.get(Webhook, hook.id).failing_since is None  # a test never counts toward turning it off


def test_finished_deliveries_are_forgotten_after_the_keep_window_and_waiting_ones_stay(
    app: Any, helpdesk: Any, deliver: Any, receiver: Receiver, settings: webhooks.Settings
) -> None:
    session = helpdesk.session
    box = helpdesk.connect(SUPPORT, agents=["admin@example.com"])
    hook, _ = subscribe(session, box, receiver.url, settings, events=["ticket.created", "message.received"])
    deliver(make_email("Old", "One"))
    helpdesk.cycle(SUPPORT)
    webhooks.deliver_due(session, settings)  # both delivered
    receiver.script = [500] * 10
    deliver(make_email("New", "Two"))
    helpdesk.cycle(SUPPORT)
    webhooks.deliver_due(session, settings)  # both waiting for a retry
    later = datetime.now(UTC) + timedelta(days=31)
    assert webhooks.prune(session, now=later, keep=timedelta(days=30)) == 2
    left = session.scalars(select(WebhookDelivery)).all()
    assert {row.state for row in left} == {"pending"} and len(left) == 2
    assert (
        session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id.not_in([r.id for r in left]))
        ).all()
        == []
    )
