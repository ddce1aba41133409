"""Gmail push: ``POST /gmail/push`` accepts only the push subscription's Google-signed tokens, ignores
what it need not act on, and a message delivered to the sandbox becomes a ticket through the push
path with the poll an hour away (the sandbox watches and posts signed notifications itself)."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from addon_support import GoogleKeys
from helpers import MAILBOX, http, make_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from werkzeug.serving import make_server

from server.base.db import get_session
from server.base.models import Mailbox, Ticket

AUDIENCE = "https://desk.example/gmail/push"
ACCOUNT = "gmail-push@postdesk-project.iam.gserviceaccount.com"


@pytest.fixture
def keys():
    made = GoogleKeys()
    yield made
    made.close()


def _envelope(address: str = MAILBOX, history_id: int | str = 999_999) -> dict:
    data = base64.b64encode(json.dumps({"emailAddress": address, "historyId": history_id}).encode()).decode()
    return {"message": {"data": data, "messageId": "1", "publishTime": "2026-11-23T10:00:00Z"},
            "subscription": "projects/p/subscriptions/s"}  # fmt: skip


def _post(client, token: str | None, body: dict | str):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if isinstance(body, str):
        return client.post("/gmail/push", data=body, headers=headers, content_type="application/json")
    return client.post("/gmail/push", json=body, headers=headers)


@pytest.fixture
def pushing(app, keys, session, mailbox):
    app.config.update(PUSH_AUDIENCE=AUDIENCE, PUSH_SERVICE_ACCOUNT=ACCOUNT, PUSH_CERTS_URL=keys.url)
    mailbox.history_id = 5000
    session.commit()
    return app.test_client()


def _wanted(session) -> bool:
    session.expire_all()
    return session.scalar(select(Mailbox.sync_wanted_at).where(Mailbox.address == MAILBOX)) is not None


@pytest.mark.parametrize(
    ("case", "status"),
    [("none", 401), ("forged", 401), ("expired", 401), ("audience", 401), ("issuer", 401),
     ("unverified", 401), ("account", 403)],
)  # fmt: skip
def test_a_push_without_the_subscriptions_own_token_starts_nothing(pushing, keys, session, case, status):
    now = int(time.time())
    token = {
        "none": None,
        "forged": keys.token(ACCOUNT, forged=True, aud=AUDIENCE),
        "expired": keys.token(ACCOUNT, aud=AUDIENCE, iat=now - 7200, exp=now - 3600),
        "audience": keys.token(ACCOUNT, aud="https://elsewhere.example/gmail/push"),
        "issuer": keys.token(ACCOUNT, aud=AUDIENCE, iss="https://evil.example"),
        "unverified": keys.token(ACCOUNT, aud=AUDIENCE, email_verified=False),
        "account": keys.token("someone@other-project.iam.gserviceaccount.com", aud=AUDIENCE),
    }[case]

    answer = _post(pushing, token, _envelope())

    assert answer.status_code == status
    assert not _wanted(session)


def test_a_good_push_asks_for_a_sync_and_what_need_not_be_acted_on_is_acknowledged(pushing, keys, session):
    token = keys.token(ACCOUNT, aud=AUDIENCE)

    unknown = _post(pushing, token, _envelope("stranger@example.com"))
    stale = _post(pushing, token, _envelope(history_id=4000))  # we synced past it already
    assert (unknown.status_code, stale.status_code) == (204, 204) and not _wanted(session)
    for junk in ("not json", {"message": {}}, {"message": {"data": "@@@"}}, _envelope(history_id="x1")):
        assert _post(pushing, token, junk).status_code == 400
    assert not _wanted(session)

    fresh = _post(pushing, token, _envelope(history_id="6001"))  # Gmail sends it as a number; strings too
    again = _post(pushing, token, _envelope(history_id=6002))  # duplicates are harmless
    assert (fresh.status_code, again.status_code) == (204, 204) and _wanted(session)

    from server.services.watches import wanted_syncs

    assert wanted_syncs(session) == [session.scalar(select(Mailbox.id))]
    assert wanted_syncs(session) == [] and not _wanted(session)  # taken once


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_mail_becomes_a_ticket_through_push_with_the_poll_an_hour_away(app, gmail, session, mailbox):
    from server.flows.clock.scheduler import run_worker

    web = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{web.server_address[1]}"
    threading.Thread(target=web.serve_forever, daemon=True).start()
    app.config.update(PUSH_TOPIC="projects/postdesk/topics/gmail", PUSH_AUDIENCE=f"{base}/gmail/push",
                      PUSH_SERVICE_ACCOUNT=ACCOUNT, PUSH_CERTS_URL=f"{gmail.url}sandbox/push/certs",
                      POLL_SECONDS=3600, PUSH_CHECK_SECONDS=0.2, CLOCK_SECONDS=3600)  # fmt: skip
    http("POST", f"{gmail.url}sandbox/push", {"url": f"{base}/gmail/push", "audience": f"{base}/gmail/push",
                                               "service_account": ACCOUNT})  # fmt: skip
    stop = threading.Event()
    worker = threading.Thread(
        target=run_worker, args=(app,), kwargs={"stop": stop, "holder": "push-test"}, daemon=True
    )
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the worker's first round: the first sync, the watch
            session.expire_all()
            box = session.scalar(select(Mailbox))
            if box.watch_expires_at is not None and box.history_id is not None:
                break
            time.sleep(0.1)
        assert box.watch_expires_at > datetime.now(UTC) + timedelta(days=6)
        sent_at = time.monotonic()
        gmail.sandbox.deliver(MAILBOX, make_email("Pushed", "Arrives by push", sender="pia@customer.test"))
        ticket = None
        while time.monotonic() - sent_at < 20 and ticket is None:
            session.expire_all()
            ticket = session.scalar(select(Ticket).where(Ticket.subject == "Pushed"))
            time.sleep(0.1)
        took = time.monotonic() - sent_at
    finally:
        stop.set()
        worker.join(timeout=30)
        web.shutdown()
    assert ticket is not None, "no ticket: the push path did not work"
    assert took < 10  # seconds, with the poll an hour away
    pushed = http("GET", f"{gmail.url}sandbox/push/sent")[1]["sent"]
    assert pushed and {p["status"] for p in pushed} <= {204}
    with app.app_context():
        assert get_session().scalar(select(Mailbox.sync_wanted_at)) is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
                             ["message", "data", "emailAddress", "historyId", "subscription"]), inner, max_size=3),
                         max_leaves=8))  # fmt: skip
def test_nonsense_with_a_valid_token_gets_a_400_or_is_acknowledged_never_a_500(pushing, keys, body):
    answer = _post(pushing, keys.token(ACCOUNT, aud=AUDIENCE), body)
    assert answer.status_code in (204, 400)


@pytest.mark.parametrize("delay", [-1, 601, "5", True, None])
def test_the_sandbox_refuses_a_hold_it_cannot_keep(gmail, delay):
    status, answer, _ = http("POST", f"{gmail.url}sandbox/push", {"url": "http://127.0.0.1:9/push",
                             "audience": AUDIENCE, "service_account": ACCOUNT, "delay_seconds": delay})  # fmt: skip
    assert status == 400 and "delay_seconds" in json.dumps(answer)
    assert gmail.sandbox.pusher.target is None


def test_the_sandbox_holds_each_push_back_as_long_as_asked(gmail):
    """Pub/Sub may deliver a notification late (the soak's "push delayed" fault): the sandbox holds each
    one back ``delay_seconds``, stamped with the time of the change, not of the post."""
    status, answer, _ = http("POST", f"{gmail.url}sandbox/push", {"url": "http://127.0.0.1:9/push",
                             "audience": AUDIENCE, "service_account": ACCOUNT, "delay_seconds": 1.5})  # fmt: skip
    assert status == 200 and answer["delay_seconds"] == 1.5
    pusher = gmail.sandbox.pusher
    changed = datetime.now(UTC)
    began = time.monotonic()
    pusher(MAILBOX, 42)
    assert pusher.sent == []  # held, not posted at once
    while not pusher.sent and time.monotonic() - began < 20:
        time.sleep(0.05)
    held = time.monotonic() - began
    assert len(pusher.sent) == 1 and held >= 1.4
    message = pusher.sent[0]["envelope"]["message"]
    published = datetime.fromisoformat(message["publishTime"].replace("Z", "+00:00"))
    assert abs((published - changed).total_seconds()) < 1
    data = json.loads(base64.b64decode(message["data"]))
    assert data["emailAddress"] == MAILBOX and int(data["historyId"]) == 42
