"""The mailbox pages: connect by service-account key, settings, pause/resume, test the connection."""

from __future__ import annotations

import io
import json
import re

from helpers import MAILBOX, make_email, service_account_key
from sqlalchemy import select
from web_support import csrf_token, sign_in

from server.base.crypto import decrypt_json
from server.base.db import get_session
from server.base.models import Event, Mailbox


def _admin(web, google):
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    return client, csrf_token(client)


def test_a_service_account_key_is_validated_stored_encrypted_and_never_shown(web, google, team):
    client, token = _admin(web, google)
    key = service_account_key()

    not_json = client.post("/settings/mailboxes/add", data={
        "address": "sales@example.com", "key": (io.BytesIO(b"{not json"), "key.json"), "csrf_token": token})  # fmt: skip
    not_a_key = client.post("/settings/mailboxes/add", data={
        "address": "sales@example.com", "key": (io.BytesIO(b'{"type": "authorized_user"}'), "k.json"),
        "csrf_token": token})  # fmt: skip
    broken_key = client.post("/settings/mailboxes/add", data={
        "address": "sales@example.com", "csrf_token": token,
        "key": (io.BytesIO(json.dumps({**key, "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n"}).encode()), "k.json")})  # fmt: skip
    added = client.post("/settings/mailboxes/add", data={
        "address": "Sales@Example.com", "display_name": "Sales", "csrf_token": token,
        "key": (io.BytesIO(json.dumps(key).encode()), "key.json")})  # fmt: skip
    twice = client.post("/settings/mailboxes/add", data={
        "address": "sales@example.com", "csrf_token": token,
        "key": (io.BytesIO(json.dumps(key).encode()), "key.json")})  # fmt: skip

    assert not_json.status_code == not_a_key.status_code == broken_key.status_code == twice.status_code == 400
    assert re.search(r'id="key-error">not a JSON key file', not_json.get_data(as_text=True))
    assert "not a service-account key file" in not_a_key.get_data(as_text=True)
    assert "private key cannot be read" in broken_key.get_data(as_text=True)
    assert "already connected" in twice.get_data(as_text=True)
    assert added.status_code == 302
    with web.app_context():
        db = get_session()
        box = db.scalar(select(Mailbox).where(Mailbox.address == "sales@example.com"))
        assert box.auth_kind == "service_account" and decrypt_json(box.credentials_encrypted) == key
        assert key["private_key"].encode() not in box.credentials_encrypted
        event = db.scalar(select(Event).where(Event.kind == "mailbox_added", Event.mailbox_id == box.id))
        assert event.after == {"mailbox": "sales@example.com", "auth": "service_account"}
        box_id = box.id
    page = client.get(f"/settings/mailboxes/{box_id}").get_data(as_text=True)
    assert "PRIVATE KEY" not in page and key["client_email"] not in page


def test_mailbox_settings_are_saved_whole_or_not_at_all_and_audited(web, google, team):
    client, token = _admin(web, google)
    url = f"/settings/mailboxes/{team['mailbox']}"
    form = {"locale": "ru", "timezone": "Europe/Moscow", "auto_replies_per_sender_per_hour": "5", "csat_scale": "five", "csat_days": "7",
            "team_addresses": "Boss@Partner.example\n\n  colleague@example.net ", "csrf_token": token}  # fmt: skip

    bad = client.post(url, data={**form, "timezone": "Nowhere/Land", "team_addresses": "not-an-address"})
    saved = client.post(url, data=form, follow_redirects=True)

    assert bad.status_code == 400
    html = bad.get_data(as_text=True)
    assert re.search(r'id="timezone-error">unknown time zone', html)
    assert re.search(r'id="team_addresses-error">not an email address', html)
    assert "open tickets got new due times" in saved.get_data(as_text=True)
    with web.app_context():
        db = get_session()
        box = db.get(Mailbox, team["mailbox"])
        assert box.settings["team_addresses"] == ["boss@partner.example", "colleague@example.net"]
        assert (box.settings["locale"], box.settings["auto_replies_per_sender_per_hour"]) == ("ru", 5)
        assert box.settings["csat"] == {
            "enabled": False,
            "scale": "five",
            "days": 7,
            "nps": False,
        }  # unticked
        event = db.scalar(select(Event).where(Event.kind == "mailbox_settings_changed"))
        assert event.actor_agent_id == team["admin"]
        assert event.before["timezone"] is None and event.after["timezone"] == "Europe/Moscow"


def test_a_manager_reads_the_mailbox_settings_and_changes_nothing(web, google, team):
    client = web.test_client()
    sign_in(client, google, "manager@example.com")

    page = client.get(f"/settings/mailboxes/{team['mailbox']}").get_data(as_text=True)

    assert 'id="mailbox-settings"' not in page and 'id="pause"' not in page
    assert "Automatic replies to one sender per hour at most" in page


def test_team_addresses_are_never_answered_automatically(helpdesk, deliver, session):
    from server.base.models import Outbox
    from server.services.mailbox_settings import save

    box = helpdesk.connect(MAILBOX, ["anna@example.com"])
    save(session, box, {"team_addresses": ["partner@example.net"]}, batch=50)
    deliver(make_email("Question from a partner", sender="partner@example.net"))
    deliver(make_email("Question from a customer", sender="customer@example.org"))

    helpdesk.cycle()

    answered = {row.to for row in session.scalars(select(Outbox))}
    assert answered == {"customer@example.org"}


def test_a_paused_mailbox_is_neither_synced_nor_sent_until_resumed(web, google, gmail, deliver):
    from server.base.models import AuthKind
    from server.flows.sync_runner import SyncRunner
    from server.services.accounts import AgentChange, MailboxSpec, add_agent, add_mailbox

    with web.app_context():
        db = get_session()
        box = add_mailbox(db, MailboxSpec(MAILBOX, AuthKind.SANDBOX, gmail.url, None, "Support"))
        add_agent(db, "admin@example.com", AgentChange(role="admin", mailboxes=(MAILBOX,)))
        box_id = box.id
    client, token = _admin(web, google)
    tested = client.post(
        f"/settings/mailboxes/{box_id}/test", data={"csrf_token": token}, follow_redirects=True
    )
    client.post(f"/settings/mailboxes/{box_id}/pause", data={"csrf_token": token})
    deliver(make_email("While paused"))
    lines: list[str] = []
    SyncRunner(web, echo=lambda message, **_: lines.append(message)).run_once([box_id])
    with web.app_context():
        paused_sync = get_session().get(Mailbox, box_id).last_sync_at
    client.post(f"/settings/mailboxes/{box_id}/resume", data={"csrf_token": token})
    SyncRunner(web, echo=lambda message, **_: lines.append(message)).run_once([box_id])

    assert f"Connected: {MAILBOX} holds 0 messages." in tested.get_data(as_text=True)
    assert paused_sync is None and lines[0] == f"{MAILBOX}: paused, not synced"
    with web.app_context():
        db = get_session()
        assert db.get(Mailbox, box_id).last_sync_at is not None
        kinds = db.scalars(
            select(Event.kind).where(Event.mailbox_id == box_id, Event.ticket_id.is_(None)).order_by(Event.id)
        ).all()
        assert kinds == ["mailbox_added", "mailbox_paused", "mailbox_resumed"]


def test_a_refused_connection_is_shown_not_a_500(web, google, team):
    client, token = _admin(web, google)

    page = client.post(f"/settings/mailboxes/{team['mailbox']}/test", data={"csrf_token": token},
                       follow_redirects=True)  # fmt: skip

    assert page.status_code == 200 and "Google refused the connection" in page.get_data(as_text=True)


def test_a_mailboxs_own_admin_manages_that_mailbox_and_no_other(web, google, team):
    from server.base.models import AuthKind
    from server.services.accounts import MailboxSpec, add_mailbox

    with web.app_context():
        other = add_mailbox(
            get_session(), MailboxSpec("sales@example.com", AuthKind.SANDBOX, "http://127.0.0.1:9/")
        )
        other_id = other.id
    client = web.test_client()
    sign_in(client, google, "boxadmin@example.com")
    token = csrf_token(client)

    listed = client.get("/settings/mailboxes").get_data(as_text=True)
    own = client.post(f"/settings/mailboxes/{team['mailbox']}/pause", data={"csrf_token": token})
    foreign_read = client.get(f"/settings/mailboxes/{other_id}")
    foreign_pause = client.post(f"/settings/mailboxes/{other_id}/pause", data={"csrf_token": token})
    people = client.get("/settings/agents")

    assert "support@example.com" in listed and "sales@example.com" not in listed
    assert 'id="add-mailbox"' not in listed  # connecting mailboxes stays with the admins
    assert own.status_code == 302 and foreign_read.status_code == foreign_pause.status_code == 403
    assert people.status_code == 403
    with web.app_context():
        assert get_session().get(Mailbox, team["mailbox"]).paused


def test_an_admin_of_a_mailbox_must_work_in_it(web, google, team, runner):
    from server.services.accounts import AccountError, AgentChange, update_agent

    with web.app_context():
        try:
            update_agent(
                get_session(),
                "agent@example.com",
                AgentChange(mailboxes=(), admin_of=("support@example.com",)),
            )
        except AccountError as exc:
            refused = exc.problems
        else:
            refused = {}
    cli = web.test_cli_runner()
    made = cli.invoke(args=["agent", "set", "agent@example.com", "--mailbox-admin", "support@example.com"])
    listed = json.loads(cli.invoke(args=["agent", "list", "--json"]).output)

    assert "admin only of mailboxes they work in" in refused["admin_of"]
    assert made.exit_code == 0
    assert next(p for p in listed if p["email"] == "agent@example.com")["admin_of"] == ["support@example.com"]


def _connect(client, google, address: str, consenting: str):
    import urllib.parse

    import requests

    start = client.get(
        "/settings/mailboxes/connect", query_string={"address": address, "display_name": "Help"}
    )
    google.person = {"email": consenting}
    consent = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    back = urllib.parse.urlsplit(consent.headers["Location"])
    return start, client.get(f"{back.path}?{back.query}", follow_redirects=True)


def test_connect_gmail_by_the_mailboxs_own_consent_keeps_its_refresh_token_encrypted(web, google, team):
    client, _token = _admin(web, google)

    start, done = _connect(client, google, "Help@Example.com", "help@example.com")

    asked = google.authorize_requests[-1]
    assert start.status_code == 302
    assert "https://www.googleapis.com/auth/gmail.modify" in asked["scope"].split()
    assert (asked["access_type"], asked["prompt"], asked["login_hint"]) == (
        "offline",
        "consent",
        "help@example.com",
    )
    assert "help@example.com is connected" in done.get_data(as_text=True)
    with web.app_context():
        box = get_session().scalar(select(Mailbox).where(Mailbox.address == "help@example.com"))
        secret = decrypt_json(box.credentials_encrypted)
        assert (box.auth_kind, box.display_name) == ("oauth", "Help")
        assert (
            secret["refresh_token"] == "stand-in-refresh-token"
            and secret["client_id"] == web.config["GOOGLE_CLIENT_ID"]
        )
        assert b"stand-in-refresh-token" not in box.credentials_encrypted


def test_connect_gmail_refuses_another_accounts_consent_no_refresh_token_and_a_replay(web, google, team):
    import urllib.parse

    import requests

    client, _token = _admin(web, google)

    _start, wrong = _connect(client, google, "help@example.com", "admin@example.com")
    google.refresh_token = None
    _start, lasting = _connect(client, google, "help@example.com", "help@example.com")
    google.refresh_token = "again"
    start = client.get("/settings/mailboxes/connect", query_string={"address": "help@example.com"})
    google.person = {"email": "help@example.com"}
    back = urllib.parse.urlsplit(
        requests.get(start.headers["Location"], allow_redirects=False, timeout=10).headers["Location"]
    )
    client.get(f"{back.path}?{back.query}")
    replayed = client.get(f"{back.path}?{back.query}", follow_redirects=True)
    no_address = client.get(
        "/settings/mailboxes/connect", query_string={"address": "nonsense"}, follow_redirects=True
    )

    assert "not from help@example.com" in wrong.get_data(as_text=True)
    assert "no refresh token" in lasting.get_data(as_text=True)
    assert "expired or was already used" in replayed.get_data(as_text=True)
    assert "Enter the shared mailbox" in no_address.get_data(as_text=True)
    with web.app_context():
        boxes = get_session().scalars(select(Mailbox.address).order_by(Mailbox.address)).all()
        assert boxes == ["help@example.com", "support@example.com"]  # only the good one was added


def test_mailbox_settings_saved_over_a_newer_version_say_so_and_keep_the_newer(web, google, team):
    from server.services.mailbox_settings import save

    client, token = _admin(web, google)
    url = f"/settings/mailboxes/{team['mailbox']}"
    shown = re.search(
        r'name="version" type="hidden" value="([^"]+)"', client.get(url).get_data(as_text=True)
    )[1]
    with web.app_context():  # meanwhile the command line changes them
        db = get_session()
        save(db, db.get(Mailbox, team["mailbox"]), {"timezone": "Asia/Tokyo"}, batch=50)

    answer = client.post(url, data={"locale": "en", "timezone": "UTC", "auto_replies_per_sender_per_hour": "3", "csat_scale": "three", "csat_days": "14",
                                    "team_addresses": "", "version": shown, "csrf_token": token},
                         follow_redirects=True)  # fmt: skip

    assert "changed elsewhere" in answer.get_data(as_text=True)
    with web.app_context():
        assert get_session().get(Mailbox, team["mailbox"]).settings == {"timezone": "Asia/Tokyo"}


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_mailbox_texts_are_shown_escaped(web, google, team):
    client, token = _admin(web, google)
    client.post("/settings/mailboxes/add", data={
        "address": "evil@example.com", "display_name": HOSTILE, "csrf_token": token,
        "key": (io.BytesIO(json.dumps(service_account_key()).encode()), "key.json")})  # fmt: skip
    refused = client.post(f"/settings/mailboxes/{team['mailbox']}", data={
        "locale": "en", "timezone": HOSTILE, "auto_replies_per_sender_per_hour": "3", "csat_scale": "three", "csat_days": "14",
        "team_addresses": HOSTILE, "csrf_token": token}).get_data(as_text=True)  # fmt: skip
    connect = client.get(
        "/settings/mailboxes/connect", query_string={"address": HOSTILE}, follow_redirects=True
    )

    pages = [refused, connect.get_data(as_text=True), client.get("/settings/mailboxes").get_data(as_text=True),
             client.get("/settings/audit").get_data(as_text=True)]  # fmt: skip
    assert all("<script>alert" not in page and "<img src=x" not in page for page in pages)
    assert "&lt;script&gt;alert" in pages[2]  # the display name, escaped


def test_the_gmail_quota_spent_today_is_counted_and_shown(web, google, gmail, deliver):
    from helpers import http

    from server.base.models import AuthKind, GmailUsage
    from server.flows.sync_runner import SyncRunner
    from server.services.accounts import AgentChange, MailboxSpec, add_agent, add_mailbox

    with web.app_context():
        db = get_session()
        box_id = add_mailbox(db, MailboxSpec(MAILBOX, AuthKind.SANDBOX, gmail.url, None, "Support")).id
        add_agent(db, "admin@example.com", AgentChange(role="admin", mailboxes=(MAILBOX,)))
    for n in range(3):
        deliver(make_email(f"Question {n}"))
    http("DELETE", f"{gmail.url}sandbox/quota")
    runner = SyncRunner(web, echo=lambda *_a, **_k: None)
    runner.run_once([box_id])
    deliver(make_email("One more"))
    runner.run_once([box_id])
    spent = http("GET", f"{gmail.url}sandbox/quota")[1]["units_total"]
    client, _token = _admin(web, google)

    page = client.get("/settings/mailboxes").get_data(as_text=True)

    with web.app_context():
        usage = get_session().scalars(select(GmailUsage)).all()
    assert [(u.mailbox_id, u.units) for u in usage] == [(box_id, spent)] and spent > 0
    assert f"{spent:,} units" in page
