"""The API tokens and webhooks pages, as people use them: make a token, see it once, use it, revoke it;
add a webhook (hostile addresses refused at the field), read its delivery log, test it."""

from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import select
from web_support import csrf_token, sign_in

from server.base.db import get_session
from server.base.models import ApiToken, Webhook


def _secret(page: str, element: str) -> str | None:
    found = re.search(rf'id="{element}">([^<]+)<', page)
    return found[1] if found else None


def test_an_agent_makes_a_token_sees_it_once_uses_it_and_revokes_it(web, google, team):
    client = web.test_client()
    sign_in(client, google, "agent@example.com")
    token = csrf_token(client, "/settings/api-tokens")
    made = client.post(
        "/settings/api-tokens", data={"csrf_token": token, "name": "My CRM", "scopes": ["tickets:read"]}
    )
    assert made.status_code == 200
    secret = _secret(made.get_data(as_text=True), "token-secret")
    assert secret and secret.startswith("pd_")
    listed = client.get("/settings/api-tokens").get_data(as_text=True)
    assert "My CRM" in listed and secret not in listed and secret[:10] in listed
    # Another person's view: the agent does not see the admin's token, nor its revoke button.
    assert "Admin&#39;s script" not in listed

    api = web.test_client()
    assert api.get("/api/v1/mailboxes", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    with web.app_context():
        row = get_session().scalar(select(ApiToken).where(ApiToken.name == "My CRM"))
        row_id = row.id
        assert row.last_used_at is not None
    assert client.post(f"/settings/api-tokens/{row_id}/revoke", data={"csrf_token": token}).status_code == 302
    assert api.get("/api/v1/mailboxes", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_an_agent_cannot_give_themself_an_admin_scope_nor_make_tokens_for_others(web, google, team):
    client = web.test_client()
    sign_in(client, google, "agent@example.com")
    token = csrf_token(client, "/settings/api-tokens")
    refused = client.post(
        "/settings/api-tokens", data={"csrf_token": token, "name": "Sneaky", "scopes": ["settings:write"]}
    )
    assert refused.status_code == 400 and "settings:write" in refused.get_data(as_text=True)
    other = client.post(
        "/settings/api-tokens",
        data={
            "csrf_token": token,
            "name": "For admin",
            "scopes": ["tickets:read"],
            "owner": str(team["admin"]),
        },
    )
    assert other.status_code == 400
    assert (
        client.post(f"/settings/api-tokens/{team['token']}/revoke", data={"csrf_token": token}).status_code
        == 403
    )
    with web.app_context():
        assert (
            get_session().scalars(select(ApiToken).where(ApiToken.name.in_(["Sneaky", "For admin"]))).all()
            == []
        )


def test_an_admin_makes_a_token_for_someone_else(web, google, team):
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    token = csrf_token(client, "/settings/api-tokens")
    made = client.post(
        "/settings/api-tokens",
        data={"csrf_token": token, "name": "Manager's BI", "scopes": ["reports:read"], "owner": str(team["manager"]),
              "expires": IN_TWO_MONTHS},
    )  # fmt: skip
    assert made.status_code == 200
    with web.app_context():
        row = get_session().scalar(select(ApiToken).where(ApiToken.name == "Manager's BI"))
        assert row.agent_id == team["manager"] and row.expires_at.date().isoformat() == IN_TWO_MONTHS


IN_TWO_MONTHS = (date.today() + timedelta(days=60)).isoformat()
HOSTILE_URLS = [
    "http://example.com/x",
    "https://127.0.0.1/x",
    "https://10.0.0.1/x",
    "https://169.254.169.254/",
]


def test_a_mailbox_admin_adds_a_webhook_and_hostile_addresses_are_refused(web, google, team):
    client = web.test_client()
    sign_in(client, google, "boxadmin@example.com")
    page = f"/settings/webhooks?mailbox={team['mailbox']}"
    token = csrf_token(client, page)
    for url in HOSTILE_URLS:
        answer = client.post(page, data={"csrf_token": token, "url": url, "events": ["ticket.created"]})
        assert answer.status_code == 400, url
        assert 'class="error"' in answer.get_data(as_text=True)
    added = client.post(
        page, data={"csrf_token": token, "url": "https://93.184.215.14/in", "events": ["ticket.solved"]}
    )
    assert added.status_code == 200
    secret = _secret(added.get_data(as_text=True), "webhook-secret")
    assert secret and secret.startswith("whsec_")
    with web.app_context():
        urls = sorted(h.url for h in get_session().scalars(select(Webhook)))
    assert urls == ["https://127.0.0.1:9/hook", "https://93.184.215.14/in"]
    assert secret not in client.get(page).get_data(as_text=True)


def test_the_webhook_page_tests_and_logs_each_attempt(web, google, team):
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    page = f"/settings/webhooks/{team['webhook']}"
    token = csrf_token(client, page)
    tested = client.post(f"{page}/test", data={"csrf_token": token}, follow_redirects=True)
    text = tested.get_data(as_text=True)
    assert (
        "The test failed" in text and "loopback" in text
    )  # the team's hook points inside: refused at connect
    assert text.count('class="attempt"') == 1 and "ping" in text
    # A manager reads the log but has no buttons.
    reader = web.test_client()
    sign_in(reader, google, "manager@example.com")
    seen = reader.get(page).get_data(as_text=True)
    assert "ping" in seen and 'id="send-test"' not in seen
    assert reader.post(f"{page}/test", data={"csrf_token": csrf_token(reader, page)}).status_code == 403
