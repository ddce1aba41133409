"""The settings pages as each role sees them: the route x role matrix, forms, escaping, query counts."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select
from web_support import csrf_token, sign_in

from server.base.db import get_engine, get_session
from server.base.models import Agent, Event, Outbox, Ticket
from server.services import tickets

#: "boxadmin" is an agent who is an admin of support@example.com only.
ROLES = ("admin", "manager", "agent", "boxadmin")
EVERYONE, READERS, ADMINS = set(ROLES), {"admin", "manager"}, {"admin"}
BOX_READERS, BOX_ADMINS = READERS | {"boxadmin"}, ADMINS | {"boxadmin"}


def _key_upload(n: int) -> dict:
    """A service-account key upload (a syntactically real key, it opens nothing at Google)."""
    import io
    import json as json_module

    from helpers import service_account_key

    key = json_module.dumps(service_account_key()).encode()
    return {"address": f"box{n}@example.com", "key": (io.BytesIO(key), "key.json")}


#: Every settings route, what a role may do with it, and a valid request body for the POSTs.
ROUTES = [
    ("GET", "/settings/", EVERYONE, None),
    ("GET", "/settings/profile", EVERYONE, None),
    ("POST", "/settings/profile", EVERYONE, {"name": "Someone", "locale": "en", "timezone": "UTC"}),
    ("GET", "/settings/mailboxes", BOX_READERS, None),
    ("POST", "/settings/mailboxes/add", ADMINS, _key_upload),
    ("GET", "/settings/mailboxes/connect", ADMINS, None),
    ("GET", "/settings/mailboxes/connected", ADMINS, None),
    ("GET", "/settings/mailboxes/{mailbox}", BOX_READERS, None),
    ("POST", "/settings/mailboxes/{mailbox}", BOX_ADMINS,
     {"locale": "ru", "timezone": "Europe/Moscow", "auto_replies_per_sender_per_hour": "3", "csat_scale": "three", "csat_days": "14", "team_addresses": ""}),
    ("POST", "/settings/mailboxes/{mailbox}/pause", BOX_ADMINS, {}),
    ("POST", "/settings/mailboxes/{mailbox}/resume", BOX_ADMINS, {}),
    ("POST", "/settings/mailboxes/{mailbox}/test", BOX_ADMINS, {}),
    ("GET", "/settings/agents", READERS, None),
    ("GET", "/settings/agents/{agent}", READERS, None),
    ("POST", "/settings/agents/invite", ADMINS, {"email": "new{n}@example.com", "role": "agent", "locale": "en"}),
    ("POST", "/settings/agents/{agent}", ADMINS,
     {"name": "Agent", "role": "agent", "locale": "en", "timezone": "UTC", "active": "y",
      "mailboxes": "support@example.com"}),
    ("POST", "/settings/agents/{agent}/reassign", ADMINS, {"to": ""}),
    ("GET", "/settings/audit", ADMINS, None),
    ("GET", "/settings/system", ADMINS, None),
    ("GET", "/settings/rules?mailbox={mailbox}", EVERYONE, None),
    ("POST", "/settings/rules/dry-run?mailbox={mailbox}", BOX_ADMINS, {"text": "rules: []", "last": "5"}),
    ("GET", "/settings/rules/export?mailbox={mailbox}", EVERYONE, None),
    ("POST", "/settings/rules/{rule}/disable?mailbox={mailbox}", BOX_ADMINS, {}),
    ("POST", "/settings/rules?mailbox={mailbox}", BOX_ADMINS, {"text": "rules: []"}),
    ("GET", "/settings/sla?mailbox={mailbox}&priority=high&at=2026-11-23T10:00", EVERYONE, None),
    ("POST", "/settings/sla?mailbox={mailbox}", BOX_ADMINS,
     {"text": "policies:\n  - name: P\n    calendar: {{timezone: UTC, hours: always}}\n"}),
    ("GET", "/settings/rules/builder?mailbox={mailbox}&rule=0", EVERYONE, None),
    ("POST", "/settings/rules/builder?mailbox={mailbox}", EVERYONE,
     {"name": "X", "trigger": "time", "enabled": "y", "a.0.kind": "add_tag", "a.0.value": "x", "edit": "add-leaf:c"}),
    ("GET", "/settings/reminders?mailbox={mailbox}", EVERYONE, None),
    ("POST", "/settings/reminders?mailbox={mailbox}", BOX_ADMINS,
     {"enabled": "y", "warn_minutes": "30", "escalate_minutes": "60", "unassigned_minutes": "60",
      "pending_followup_days": "3", "pending_autosolve_days": "0", "digest_time": "09:00"}),
    ("GET", "/settings/templates?mailbox={mailbox}", EVERYONE, None),
    ("GET", "/settings/templates/edit?mailbox={mailbox}&name=Hello", EVERYONE, None),
    ("POST", "/settings/templates/preview?mailbox={mailbox}", BOX_ADMINS, {"en-subject": "Hi", "en-text": "Hello"}),
    ("POST", "/settings/templates/edit?mailbox={mailbox}&name=Hello", BOX_ADMINS,
     {"en-subject": "Hi", "en-text": "Hello {{{{ customer.name }}}}", "en-version": "", "ru-subject": "",
      "ru-text": ""}),
    ("GET", "/settings/articles?mailbox={mailbox}", EVERYONE, None),
    ("GET", "/settings/articles/edit?mailbox={mailbox}", EVERYONE, None),
    ("POST", "/settings/articles/preview?mailbox={mailbox}", BOX_READERS, {"body": "# Hello"}),
    ("POST", "/settings/articles/edit?mailbox={mailbox}", BOX_READERS,
     {"title": "Article {n}", "body": "Hello", "language": "en", "category": "", "translation_of": "", "version": ""}),
    ("POST", "/settings/articles/from-template?mailbox={mailbox}", BOX_READERS, {"template": "0"}),
    ("POST", "/settings/articles/delete?mailbox={mailbox}", BOX_READERS, {}),
    ("GET", "/settings/articles/candidates?mailbox={mailbox}", EVERYONE, None),
    ("POST", "/settings/articles/from-ticket?mailbox={mailbox}", BOX_READERS, {"ticket": "0"}),
    ("GET", "/settings/signals?mailbox={mailbox}&sample=Site down, urgent!", EVERYONE, None),
    ("POST", "/settings/signals?mailbox={mailbox}", BOX_ADMINS, {"en_urgent": "pager alarm", "ru_calm": "не горит"}),
    ("GET", "/settings/customers", ADMINS, None),
    ("POST", "/settings/customers", ADMINS, {"email": "gone{n}@example.com", "confirm": "y"}),
    ("GET", "/settings/api-tokens", EVERYONE, None),
    ("POST", "/settings/api-tokens", EVERYONE, {"name": "Script {n}", "scopes": "tickets:read"}),
    ("POST", "/settings/api-tokens/{token}/revoke", ADMINS, {}),
    ("GET", "/settings/webhooks?mailbox={mailbox}", BOX_READERS, None),
    ("POST", "/settings/webhooks?mailbox={mailbox}", BOX_ADMINS,
     {"url": "https://93.184.215.14/hook/{n}", "events": "ticket.created"}),
    ("GET", "/settings/webhooks/{webhook}", BOX_READERS, None),
    ("POST", "/settings/webhooks/{webhook}", BOX_ADMINS,
     {"url": "https://93.184.215.14/hook", "events": "ticket.solved", "enabled": "y"}),
    ("POST", "/settings/webhooks/{webhook}/test", BOX_ADMINS, {}),
    ("POST", "/settings/webhooks/{webhook}/delete", BOX_ADMINS, {}),
    ("GET", "/reports?days=7&mailbox={mailbox}", EVERYONE, None),
    ("GET", "/reports/tickets?set=overdue", EVERYONE, None),
    ("GET", "/reports/help?days=30", EVERYONE, None),
    ("GET", "/reports/export.csv?table=tickets&set=new", EVERYONE, None),
]  # fmt: skip
#: Routes anyone may open (the sign-in machinery) and what covers them.
PUBLIC = {
    "/auth/sign-in",
    "/auth/callback",
    "/auth/sign-out",
    "/auth/signed-out",
    "/auth/language",
    "/auth/demo",
    "/",  # the front page: where things are (and, in the demo, who to sign in as)
}


def route_ids(team: dict[str, int]) -> dict[str, int]:
    """The ids the routes above name, from the team fixture."""
    return {name: team[name] for name in ("agent", "mailbox", "rule", "token", "webhook")}


def test_the_matrix_lists_every_settings_route(web):
    rules = {
        (method, rule.rule)
        for rule in web.url_map.iter_rules()
        if rule.endpoint.startswith(("admin.", "web.", "reports."))
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    listed = {
        (
            m,
            path.split("?")[0]
            .replace("{agent}", "<int:agent_id>")
            .replace("{mailbox}", "<int:mailbox_id>")
            .replace("{rule}/disable", "<int:rule_id>/<any(up, down, enable, disable):change>")
            .replace("{token}", "<int:token_id>")
            .replace("{webhook}", "<int:hook_id>"),
        )
        for m, path, _, _ in ROUTES
    }

    assert {r for r in rules if r[1] not in PUBLIC} == listed


@pytest.mark.parametrize("role", [*ROLES, None])
def test_every_route_answers_each_role_exactly_as_allowed(web, google, team, role):
    client = web.test_client()
    if role:
        sign_in(client, google, f"{role}@example.com")
        token = csrf_token(client)
    outcomes = {}
    for n, (method, path, allowed, body) in enumerate(ROUTES):
        url = path.format(**route_ids(team))
        if method == "GET":
            status = client.get(url).status_code
        else:
            fields = body(n) if callable(body) else {k: v.format(n=n) for k, v in body.items()}
            data = fields | ({"csrf_token": token} if role else {})
            status = client.post(url, data=data).status_code
        outcomes[(method, path)] = status
        if role is None:
            assert status == (302 if method == "GET" else 401), (method, path, status)
        elif role in allowed:
            assert status in (200, 302), (role, method, path, status)
        else:
            assert status == 403, (role, method, path, status)
    assert len(outcomes) == len(ROUTES)


def _admin(web, google):
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    return client, csrf_token(client)


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_every_text_a_person_enters_is_shown_escaped(web, google, team):
    client, token = _admin(web, google)
    client.post("/settings/agents/invite", data={"email": "evil@example.com", "name": HOSTILE, "role": "agent",
                                                 "locale": "en", "csrf_token": token})  # fmt: skip
    with web.app_context():
        evil = get_session().scalar(select(Agent).where(Agent.email == "evil@example.com"))
        evil_id = evil.id
    client.post(
        "/settings/profile", data={"name": HOSTILE, "locale": "en", "timezone": "UTC", "csrf_token": token}
    )

    pages = [client.get(p).get_data(as_text=True) for p in
             ("/settings/agents", f"/settings/agents/{evil_id}", "/settings/audit", "/settings/profile",
              "/settings/audit?kind=" + HOSTILE + "&who=" + HOSTILE)]  # fmt: skip
    assert all("<script>alert" not in page and "<img src=x" not in page for page in pages)
    assert "&lt;script&gt;alert" in pages[0]


def test_invite_adds_the_person_and_sends_an_invitation_in_their_language(web, google, team):
    client, token = _admin(web, google)

    answer = client.post("/settings/agents/invite", data={
        "email": "Ivan@Example.com", "name": "Иван", "role": "manager", "locale": "ru",
        "mailboxes": "support@example.com", "csrf_token": token})  # fmt: skip
    again = client.post("/settings/agents/invite", data={"email": "ivan@example.com", "role": "agent",
                                                          "locale": "en", "csrf_token": token})  # fmt: skip

    assert answer.status_code == 302
    assert again.status_code == 400 and "already exists" in again.get_data(as_text=True)
    with web.app_context():
        db = get_session()
        ivan = db.scalar(select(Agent).where(Agent.email == "ivan@example.com"))
        mail = db.scalar(select(Outbox).where(Outbox.to == "ivan@example.com"))
        added = db.scalar(select(Event).where(Event.kind == "agent_added").order_by(Event.id.desc()))
        assert (ivan.role, ivan.locale, [m.address for m in ivan.mailboxes]) == (
            "manager",
            "ru",
            ["support@example.com"],
        )
        assert "Приглашение" in mail.subject and "http://localhost/auth/sign-in" in mail.body_text
        assert added.actor_agent_id == team["admin"] and added.after["email"] == "ivan@example.com"


def test_a_bad_value_is_shown_next_to_its_field_and_nothing_is_saved(web, google, team):
    client, token = _admin(web, google)

    page = client.post("/settings/profile", data={"name": "Changed", "locale": "en", "timezone": "Mars/Base",
                                                  "csrf_token": token})  # fmt: skip
    html = page.get_data(as_text=True)

    assert page.status_code == 200
    assert re.search(r'id="timezone-error">unknown time zone', html)
    with web.app_context():
        assert get_session().get(Agent, team["admin"]).name == "Admin"


def test_the_last_admin_cannot_demote_themself_from_the_page(web, google, team):
    client, token = _admin(web, google)
    form = client.get(f"/settings/agents/{team['admin']}").get_data(as_text=True)
    version = re.search(r'name="version" type="hidden" value="([^"]+)"', form)[1]

    page = client.post(f"/settings/agents/{team['admin']}", data={
        "name": "Admin", "role": "agent", "locale": "en", "timezone": "UTC", "active": "y",
        "version": version, "csrf_token": token})  # fmt: skip

    assert page.status_code == 400 and "last active admin" in page.get_data(as_text=True)
    with web.app_context():
        assert get_session().get(Agent, team["admin"]).role == "admin"


def test_a_form_saved_over_a_newer_version_says_so_and_keeps_the_newer(web, google, team):
    from server.services.accounts import AgentChange, update_agent

    client, token = _admin(web, google)
    form = client.get(f"/settings/agents/{team['agent']}").get_data(as_text=True)
    version = re.search(r'name="version" type="hidden" value="([^"]+)"', form)[1]
    with web.app_context():  # meanwhile another admin renames the agent
        update_agent(get_session(), "agent@example.com", AgentChange(name="Renamed elsewhere"))

    answer = client.post(f"/settings/agents/{team['agent']}", data={
        "name": "Mine", "role": "agent", "locale": "en", "timezone": "UTC", "active": "y",
        "version": version, "csrf_token": token}, follow_redirects=True)  # fmt: skip

    assert "changed by someone else" in answer.get_data(as_text=True)
    with web.app_context():
        assert get_session().get(Agent, team["agent"]).name == "Renamed elsewhere"


def test_deactivating_lists_their_open_tickets_and_one_action_reassigns_them(web, google, team):
    with web.app_context():
        db = get_session()
        mailbox_id = db.get(Agent, team["agent"]).mailboxes[0].id
        for n in range(3):
            ticket = tickets.open_ticket(db, mailbox_id, subject=f"Case {n}", customer=None,
                                         gmail_thread_id=f"t{n}", created_at=datetime.now(UTC))  # fmt: skip
            tickets.assign(db, ticket, team["agent"], at=datetime.now(UTC))
        db.commit()
    client, token = _admin(web, google)
    version = re.search(r'name="version" type="hidden" value="([^"]+)"',
                        client.get(f"/settings/agents/{team['agent']}").get_data(as_text=True))[1]  # fmt: skip

    client.post(f"/settings/agents/{team['agent']}", data={
        "name": "Agent", "role": "agent", "locale": "en", "timezone": "UTC", "version": version,
        "mailboxes": "support@example.com", "csrf_token": token})  # fmt: skip  # "active" unticked
    listed = client.get(f"/settings/agents/{team['agent']}").get_data(as_text=True)
    moved = client.post(f"/settings/agents/{team['agent']}/reassign",
                        data={"to": str(team["manager"]), "csrf_token": token}, follow_redirects=True)  # fmt: skip

    assert all(f"Case {n}" in listed for n in range(3)) and 'id="reassign"' in listed
    assert "3 open tickets reassigned" in moved.get_data(as_text=True)
    with web.app_context():
        db = get_session()
        assert not db.get(Agent, team["agent"]).active
        assert {t.assignee_id for t in db.scalars(select(Ticket))} == {team["manager"]}
        assert len(db.scalars(select(Event).where(Event.kind == "assigned")).all()) == 6


def test_the_audit_log_shows_who_changed_what_and_filters(web, google, team):
    client, token = _admin(web, google)
    client.post("/settings/profile", data={"name": "Chief", "locale": "en", "timezone": "Europe/Moscow",
                                           "csrf_token": token})  # fmt: skip

    everything = client.get("/settings/audit").get_data(as_text=True)
    changes = client.get("/settings/audit?kind=agent_changed&who=admin@example.com").get_data(as_text=True)
    nobody = client.get("/settings/audit?who=ghost@example.com").get_data(as_text=True)

    assert (
        everything.count('class="event"') == 8
    )  # the mailbox, four people, the rules, an API token; one change
    assert (
        changes.count('class="event"') == 1 and "Europe/Moscow" in changes and "admin@example.com" in changes
    )
    assert "No changes recorded yet" in nobody


def test_pages_answer_in_at_most_15_statements_and_1000_agents_are_paginated(web, google, team):
    from server.services.accounts import AgentChange, add_agent

    with web.app_context():
        db = get_session()
        for n in range(1000):
            db.add(Agent(email=f"p{n:04}@example.com", name=f"Person {n}", role="agent"))
        db.commit()
        add_agent(db, "last@example.com", AgentChange(mailboxes=("support@example.com",)))
    client, _token = _admin(web, google)
    counted: list[str] = []

    def count(*_args: object) -> None:
        counted.append("statement")

    engine = get_engine(web)
    event.listen(engine, "before_cursor_execute", count)
    try:
        for path in ("/settings/", "/settings/profile", "/settings/mailboxes", f"/settings/mailboxes/{team['mailbox']}",
                     "/settings/agents",
                     "/settings/agents?page=3", f"/settings/agents/{team['agent']}", "/settings/audit"):  # fmt: skip
            counted.clear()
            page = client.get(path, follow_redirects=False)
            assert page.status_code in (200, 302)
            assert len(counted) <= 15, (path, len(counted))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    first = client.get("/settings/agents").get_data(as_text=True)
    assert first.count('class="agent"') == 50 and "page=2" in first


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from([r for r in ROUTES]),
    junk=st.dictionaries(
        st.sampled_from(["c.kind", "c.0.kind", "c.0.op", "a.0.kind", "a.0.value", "do", "rule",
                         "name", "email", "role", "locale", "timezone", "mailboxes", "active", "away", "version",
                         "to", "page", "kind", "who", "next", "address", "display_name", "key", "team_addresses",
                         "auto_replies_per_sender_per_hour", "faq_enabled", "faq_threshold", "en-questions",
                         "ru-questions", "en-text"]),
        st.text(max_size=300),
        max_size=8,
    ),
)  # fmt: skip
def test_a_signed_in_admin_sending_nonsense_never_gets_a_server_error(web, google, team, route, junk):
    client, token = _admin(web, google)
    method, path, _allowed, _body = route
    url = path.format(**route_ids(team))

    if method == "GET":
        path_only, _sep, query = url.partition("?")
        status = client.get(
            path_only, query_string={**dict(p.split("=", 1) for p in query.split("&") if p), **junk}
        ).status_code
    else:
        status = client.post(url, data={**junk, "csrf_token": token}).status_code

    assert status < 500


def test_the_profile_keeps_the_persons_own_choices_of_mail(web, google, team):
    client = web.test_client()
    sign_in(client, google, "agent@example.com")
    token = csrf_token(client)

    client.post("/settings/profile", data={"name": "Agent", "locale": "ru", "timezone": "Asia/Yekaterinburg",
                                           "reminders": "y", "away": "y", "csrf_token": token})  # fmt: skip
    page = client.get("/settings/profile").get_data(as_text=True)

    with web.app_context():
        me = get_session().get(Agent, team["agent"])
        assert (me.locale, me.timezone, me.away) == ("ru", "Asia/Yekaterinburg", True)
        assert me.wants("reminders") and not me.wants("digest")
    assert '<input checked id="reminders" name="reminders"' in page
    assert '<input id="digest" name="digest"' in page
