"""Sign in with Google (through a stand-in issuer on loopback), sessions, CSRF, headers, demo sign-in."""

from __future__ import annotations

import re
import time
import urllib.parse
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select
from web_support import csrf_token, sign_in

from server.base.db import get_session
from server.base.models import Agent, WebSession


def session_cookie(client) -> str | None:
    cookie = client.get_cookie("postdesk_session")
    return cookie.value if cookie else None


def test_an_agent_signs_in_with_google_and_lands_on_the_page_asked_for(web, google, team):
    client = web.test_client()
    asked = client.get("/settings/agents")
    landed = sign_in(client, google, "Admin@Example.com", "/settings/agents")
    page = client.get("/settings/agents")

    assert asked.status_code == 302 and asked.headers["Location"].startswith("/auth/sign-in?next=")
    authorize = google.authorize_requests[-1]
    assert authorize["response_type"] == "code" and authorize["code_challenge_method"] == "S256"
    assert {"openid", "email"} <= set(authorize["scope"].split())
    assert len(authorize["state"]) >= 32 and len(authorize["nonce"]) >= 32
    assert authorize["redirect_uri"] == "http://localhost/auth/callback"
    assert google.token_requests[-1]["code_verifier"]  # PKCE: the verifier goes only to the token endpoint
    assert landed.status_code == 302 and landed.headers["Location"] == "/settings/agents"
    assert page.status_code == 200 and "manager@example.com" in page.get_data(as_text=True)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"forge": True}, 401),  # signed with a key Google never published
        ({"claims": {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}}, 401),  # expired
        ({"claims": {"aud": "someone-else.apps.googleusercontent.com"}}, 401),  # another client's token
        ({"claims": {"iss": "https://evil.example.com"}}, 401),
        ({"claims": {"nonce": "another-attempt"}}, 401),
        ({"claims": {"email_verified": False}}, 401),
    ],
)
def test_a_bad_id_token_signs_nobody_in(web, google, team, change, status):
    client = web.test_client()
    for name, value in change.items():
        setattr(google, name, value)

    answer = sign_in(client, google, "admin@example.com")

    assert answer.status_code == status
    assert "could not be verified" in answer.get_data(as_text=True)
    assert client.get("/settings/profile").status_code == 302  # still nobody


def test_a_replayed_callback_is_refused(web, google, team):
    client = web.test_client()
    google.person = {"email": "admin@example.com"}
    start = client.get("/auth/sign-in")
    consent = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    back = urllib.parse.urlsplit(consent.headers["Location"])
    first = client.get(f"{back.path}?{back.query}")
    replayed = client.get(f"{back.path}?{back.query}")
    stranger = web.test_client().get(f"{back.path}?{back.query}")  # another browser with the link

    assert first.status_code == 302
    assert replayed.status_code == stranger.status_code == 400
    assert "expired or was already used" in replayed.get_data(as_text=True)


def test_people_who_are_not_active_members_are_refused_unless_their_domain_may_join(web, google, team):
    from server.services.accounts import AgentChange, update_agent

    with web.app_context():
        update_agent(get_session(), "agent@example.com", AgentChange(active=False))
    stranger = sign_in(web.test_client(), google, "stranger@example.com")
    inactive = sign_in(web.test_client(), google, "agent@example.com")
    web.config["SIGN_IN_DOMAINS"] = "example.org"
    google.claims = {"hd": "example.org"}
    joined = sign_in(web.test_client(), google, "newbie@example.org")
    google.claims = {"hd": "example.com"}
    other_domain = sign_in(web.test_client(), google, "outsider@example.com")

    assert stranger.status_code == inactive.status_code == other_domain.status_code == 403
    assert "not an active member" in stranger.get_data(as_text=True)
    assert joined.status_code == 302
    with web.app_context():
        newbie = get_session().scalar(select(Agent).where(Agent.email == "newbie@example.org"))
        assert newbie.role == "agent" and newbie.active and newbie.is_new
        newbie_id = newbie.id
    admin = web.test_client()
    sign_in(admin, google, "admin@example.com")
    listed = admin.get("/settings/agents").get_data(as_text=True)
    row = re.search(r'<tr class="agent">(?:(?!</tr>).)*newbie@example.org.*?</tr>', listed, re.S)[0]
    form = admin.get(f"/settings/agents/{newbie_id}").get_data(as_text=True)
    version = re.search(r'name="version" type="hidden" value="([^"]+)"', form)[1]
    admin.post(f"/settings/agents/{newbie_id}", data={
        "name": "Newbie", "role": "agent", "locale": "en", "timezone": "UTC", "active": "y", "version": version,
        "csrf_token": csrf_token(admin)})  # fmt: skip
    after = admin.get("/settings/agents").get_data(as_text=True)
    row_after = re.search(r'<tr class="agent">(?:(?!</tr>).)*newbie@example.org.*?</tr>', after, re.S)[0]
    assert "badge new" in row and "badge new" not in row_after


@pytest.mark.parametrize(
    "target",
    ["https://evil.example.com/", "//evil.example.com/x", "/\\evil.example.com", "javascript:alert(1)",
     "http:/evil.example.com", " //evil.example.com", "/%0d%0aSet-Cookie:x=1", "\\\\evil.example.com"],
)  # fmt: skip
def test_next_never_leaves_the_site(web, google, team, target):
    answer = sign_in(web.test_client(), google, "admin@example.com", target)

    location = answer.headers["Location"]
    assert answer.status_code == 302
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert "evil" not in urllib.parse.urlsplit(location).netloc


def test_signing_in_gives_a_new_session_token_and_the_planted_one_is_worthless(web, google, team):
    client = web.test_client()
    client.get("/auth/sign-in")  # the visitor's session exists before sign-in (it holds the state)
    planted = session_cookie(client)

    sign_in(client, google, "admin@example.com")
    fresh = session_cookie(client)
    attacker = web.test_client()
    attacker.set_cookie("postdesk_session", planted)

    assert planted and fresh and planted != fresh
    assert attacker.get("/settings/profile").status_code == 302  # the old token opens nothing
    assert client.get("/settings/profile").status_code == 200
    with web.app_context():
        stored = get_session().scalars(select(WebSession.id)).all()
        assert fresh not in stored and planted not in stored  # only hashes are kept


def test_sessions_end_when_idle_or_too_old(web, google, team):
    import time_machine

    with time_machine.travel(datetime(2026, 11, 23, 9, 0, tzinfo=UTC), tick=False) as clock:
        client = web.test_client()
        sign_in(client, google, "admin@example.com")
        clock.shift(timedelta(minutes=119))
        awake = client.get("/settings/profile").status_code
        clock.shift(timedelta(minutes=121))
        idle = client.get("/settings/profile").status_code
        sign_in(client, google, "admin@example.com")
        for _ in range(13):  # used every hour, never idle: still ends 12 hours after sign-in
            clock.shift(timedelta(minutes=59))
            last = client.get("/settings/profile").status_code
        assert awake == 200 and idle == 302 and last == 302


def test_sign_out_here_and_everywhere(web, google, team):
    laptop, phone = web.test_client(), web.test_client()
    sign_in(laptop, google, "admin@example.com")
    sign_in(phone, google, "admin@example.com")

    token = csrf_token(laptop)
    laptop.post("/auth/sign-out", data={"csrf_token": token, "everywhere": "1"})

    assert laptop.get("/settings/profile").status_code == 302
    assert phone.get("/settings/profile").status_code == 302
    with web.app_context():
        assert get_session().scalars(select(WebSession).where(WebSession.agent_id.is_not(None))).all() == []


def test_a_post_without_a_valid_csrf_token_is_400_and_changes_nothing(web, google, team):
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    form = {"name": "Hacked", "locale": "en", "timezone": "UTC"}

    missing = client.post("/settings/profile", data=form)
    wrong = client.post("/settings/profile", data={**form, "csrf_token": "forged"})
    other = web.test_client()
    sign_in(other, google, "manager@example.com")
    borrowed = client.post("/settings/profile", data={**form, "csrf_token": csrf_token(other)})

    assert missing.status_code == wrong.status_code == borrowed.status_code == 400
    with web.app_context():
        assert get_session().get(Agent, team["admin"]).name == "Admin"


def test_without_a_session_pages_redirect_and_posts_are_401(web, team):
    client = web.test_client()

    assert client.get("/settings/audit").status_code == 302
    assert client.post("/settings/profile", data={"name": "x"}).status_code == 401
    assert client.post(f"/settings/agents/{team['agent']}/reassign").status_code == 401


def test_every_answer_carries_the_security_headers(web, google, team):
    client = web.test_client()
    sign_in(client, google, "admin@example.com")

    for path in ("/settings/profile", "/auth/signed-out", "/healthz", "/settings/nowhere"):
        headers = client.get(path).headers
        policy = headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "same-origin"


def test_the_session_cookie_is_secure_httponly_and_lax_outside_demo(database_url, tmp_path, google):
    from server import create_app
    from server.base.db import get_engine, init_db

    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "i"),
                      **google.config()})  # fmt: skip
    try:
        with app.app_context():
            init_db()
        answer = app.test_client().get("/auth/sign-in", base_url="https://localhost")
    finally:
        get_engine(app).dispose()

    cookie = answer.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_sign_in_attempts_are_rate_limited(web, google, team):
    web.config["SIGN_IN_RATE_LIMIT"] = "5 per minute"
    client = web.test_client()

    statuses = [client.get("/auth/sign-in").status_code for _ in range(7)]

    assert statuses == [302] * 5 + [429] * 2


def test_the_demo_picker_exists_only_in_demo_mode_on_loopback(web, team):
    off = web.test_client().get("/auth/demo")
    web.config["DEMO"] = True
    remote = web.test_client().get("/auth/demo", environ_base={"REMOTE_ADDR": "203.0.113.7"})
    client = web.test_client()
    listed = client.get("/auth/demo")
    page = listed.get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    without_token = client.post("/auth/demo", data={"email": "admin@example.com"})
    signed_in = client.post("/auth/demo", data={"email": "admin@example.com", "csrf_token": token})

    assert off.status_code == remote.status_code == 404
    assert listed.status_code == 200 and "manager@example.com" in page and "Manager" in page
    assert without_token.status_code == 400
    assert signed_in.status_code == 302 and client.get("/settings/audit").status_code == 200


def test_switching_the_language_shows_russian(web, google, team):
    client = web.test_client()
    sign_in(client, google, "agent@example.com")

    client.post(
        "/auth/language", data={"lang": "ru", "csrf_token": csrf_token(client), "next": "/settings/profile"}
    )
    page = client.get("/settings/profile").get_data(as_text=True)

    assert "Ваш профиль" in page and 'lang="ru"' in page
    with web.app_context():
        assert get_session().get(Agent, team["agent"]).locale == "ru"


def test_the_add_ons_logo_is_served(web):
    with web.test_client().get("/static/logo.png") as answer:
        assert answer.status_code == 200 and answer.mimetype == "image/png"
        assert answer.data.startswith(b"\x89PNG\r\n\x1a\n")


def test_the_profile_language_wins_over_an_earlier_switch_in_the_header(web, google, team):
    client = web.test_client()
    sign_in(client, google, "agent@example.com")
    client.post(
        "/auth/language", data={"lang": "ru", "csrf_token": csrf_token(client), "next": "/settings/profile"}
    )

    client.post("/settings/profile", data={"name": "Agent", "locale": "en", "timezone": "UTC",
                                           "csrf_token": csrf_token(client)})  # fmt: skip
    page = client.get("/settings/profile").get_data(as_text=True)

    assert 'lang="en"' in page and "Your profile" in page


def test_deactivating_someone_ends_their_sessions_and_the_worker_forgets_ended_ones(web, google, team):
    import time_machine

    from server.services.accounts import AgentChange, update_agent
    from server.services.sessions import forget_expired

    with time_machine.travel(datetime(2026, 11, 23, 9, 0, tzinfo=UTC), tick=False) as clock:
        agent, visitor = web.test_client(), web.test_client()
        sign_in(agent, google, "agent@example.com")
        visitor.get("/auth/sign-in")  # a sign-in attempt that never comes back
        with web.app_context():
            update_agent(get_session(), "agent@example.com", AgentChange(active=False))
            left = {row.agent_id for row in get_session().scalars(select(WebSession))}
        clock.shift(timedelta(hours=3))
        with web.app_context():
            gone = forget_expired(get_session(), now=datetime.now(UTC), idle_minutes=120, max_hours=12)
            remaining = get_session().scalars(select(WebSession)).all()

    assert left == {None}  # only the anonymous attempt
    assert gone == 1 and remaining == []
