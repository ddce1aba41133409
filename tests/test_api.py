"""The REST API as a script uses it: tokens and scopes, the ticket list, changes with ETags, notes, replies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from api_support import SALES, SUPPORT, Desk
from flask import Flask
from sqlalchemy import func, select

from server.base.db import get_session
from server.base.models import ApiToken, Event, Outbox, Ticket

PROBLEM = "application/problem+json"


# --- tokens -------------------------------------------------------------------------------------------
def test_no_token_or_a_bad_one_gets_401_with_a_challenge(api_desk: Desk) -> None:
    desk = api_desk
    missing = desk.call("GET", "/api/v1/tickets")
    assert missing.status_code == 401
    assert missing.mimetype == PROBLEM
    assert missing.json["status"] == 401 and missing.json["title"] == "Unauthorized"
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="postdesk"'
    for bad in ("pd_nonsense", "not-even-ours", desk.tokens["admin"] + "x"):
        answer = desk.call("GET", "/api/v1/tickets", bad)
        assert answer.status_code == 401
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    assert (
        desk.call("GET", "/api/v1/tickets", headers={"Authorization": "Basic YWRtaW46YWRtaW4="}).status_code
        == 401
    )


def test_a_revoked_token_and_an_expired_token_get_401(api_desk: Desk) -> None:
    desk = api_desk
    from server.base.models import Agent
    from server.services import api_tokens

    assert desk.call("GET", "/api/v1/tickets", "anna").status_code == 200
    with desk.app.app_context():
        db = get_session()
        token = db.scalar(select(ApiToken).where(ApiToken.agent_id == desk.people["anna@example.com"]))
        assert token is not None
        admin = db.get(Agent, desk.people["admin@example.com"])
        assert admin is not None
        # Anna has two tokens: revoke the one made first (her read/write one).
        api_tokens.revoke(db, token, by=admin, now=datetime.now(UTC))
        db.commit()
    revoked = desk.call("GET", "/api/v1/tickets", "anna")
    assert revoked.status_code == 401 and "revoked" in revoked.json["detail"]

    short = desk.token("boris@example.com", ["tickets:read"], expires_in=timedelta(hours=1))
    assert desk.call("GET", "/api/v1/tickets", short).status_code == 200
    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1, seconds=1)):
        expired = desk.call("GET", "/api/v1/tickets", short)
    assert expired.status_code == 401 and "expired" in expired.json["detail"]


def test_a_token_without_the_scope_gets_403_and_changes_nothing(api_desk: Desk) -> None:
    desk = api_desk
    ticket_id = desk.tickets[SUPPORT][0]
    answer = desk.call("PATCH", f"/api/v1/tickets/{ticket_id}", "anna_read", json={"status": "solved"})
    assert answer.status_code == 403 and answer.mimetype == PROBLEM
    assert "tickets:write" in answer.json["detail"]
    assert 'error="insufficient_scope"' in answer.headers["WWW-Authenticate"]
    assert desk.call("GET", "/api/v1/reports/overview", "boris").status_code == 403
    with desk.app.app_context():
        assert get_session().get(Ticket, ticket_id).status == "open"


def test_a_deactivated_owner_s_token_stops_working(api_desk: Desk) -> None:
    desk = api_desk
    from server.base.models import Agent

    with desk.app.app_context():
        db = get_session()
        db.get(Agent, desk.people["boris@example.com"]).active = False
        db.commit()
    answer = desk.call("GET", "/api/v1/tickets", "boris")
    assert answer.status_code == 401 and "deactivated" in answer.json["detail"]


def test_tokens_are_stored_hashed_and_their_last_use_is_recorded(api_desk: Desk) -> None:
    desk = api_desk
    desk.call("GET", "/api/v1/agents", "anna_read")
    with desk.app.app_context():
        rows = get_session().scalars(select(ApiToken)).all()
        assert all(desk.tokens["anna_read"] not in (row.secret_hash, row.prefix) for row in rows)
        assert all(len(row.prefix) == 10 for row in rows)
        used = [row for row in rows if desk.tokens["anna_read"].startswith(row.prefix)]
        assert len(used) == 1 and used[0].last_used_at is not None


def test_who_may_make_which_token(api_desk: Desk) -> None:
    desk = api_desk
    import pytest

    from server.base.models import Agent
    from server.services import api_tokens

    with desk.app.app_context():
        db = get_session()
        anna, admin, boris = (
            db.get(Agent, desk.people[e])
            for e in ("anna@example.com", "admin@example.com", "boris@example.com")
        )
        now = datetime.now(UTC)
        with pytest.raises(api_tokens.TokenError, match="settings:write"):
            api_tokens.create(
                db, owner=anna, name="x", scopes=["settings:write"], expires_at=None, by=anna, now=now
            )
        with pytest.raises(api_tokens.TokenError, match="only an admin"):
            api_tokens.create(
                db, owner=boris, name="x", scopes=["tickets:read"], expires_at=None, by=anna, now=now
            )
        with pytest.raises(api_tokens.TokenError, match="unknown scope"):
            api_tokens.create(
                db, owner=anna, name="x", scopes=["tickets:delete"], expires_at=None, by=anna, now=now
            )
        with pytest.raises(api_tokens.TokenError, match="future"):
            api_tokens.create(
                db, owner=anna, name="x", scopes=["tickets:read"], expires_at=now, by=anna, now=now
            )
        token, secret = api_tokens.create(
            db, owner=anna, name="For Anna", scopes=["tickets:read"], expires_at=None, by=admin, now=now
        )
        assert secret.startswith("pd_") and len(secret) > 40 and token.created_by_id == admin.id


def test_rate_limit_per_token_with_standard_headers(api_desk: Desk) -> None:
    desk = api_desk
    desk.app.config["API_RATE_LIMIT"] = "3 per minute"
    desk.app.extensions.pop("postdesk_api_rate", None)
    answers = [desk.call("GET", "/api/v1/agents", "anna_read") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
    assert answers[0].headers["RateLimit-Limit"] == "3"
    assert answers[0].headers["RateLimit-Policy"] == "3;w=60"
    assert 0 < int(answers[3].headers["Retry-After"]) <= 60
    assert answers[3].mimetype == PROBLEM
    # Another token has its own allowance.
    assert desk.call("GET", "/api/v1/agents", "boris").status_code == 200


# --- reading ------------------------------------------------------------------------------------------
def test_an_agent_s_token_sees_only_their_mailboxes(api_desk: Desk) -> None:
    desk = api_desk
    listed = desk.call("GET", "/api/v1/tickets", "anna").json["items"]
    assert {t["id"] for t in listed} == set(desk.tickets[SUPPORT])
    other = desk.tickets[SALES][0]
    assert desk.call("GET", f"/api/v1/tickets/{other}", "anna").status_code == 404
    assert (
        desk.call("PATCH", f"/api/v1/tickets/{other}", "anna", json={"priority": "high"}).status_code == 404
    )
    assert (
        desk.call(
            "GET", "/api/v1/tickets", "anna", query_string={"mailbox": desk.mailboxes[SALES]}
        ).status_code
        == 404
    )
    assert [m["address"] for m in desk.call("GET", "/api/v1/mailboxes", "anna").json["items"]] == [SUPPORT]
    assert {a["email"] for a in desk.call("GET", "/api/v1/agents", "anna").json["items"]} == {
        "anna@example.com"
    }
    everyone = desk.call("GET", "/api/v1/tickets", "admin").json["items"]
    assert len(everyone) == 6


def test_a_ticket_with_its_messages_notes_and_events(api_desk: Desk) -> None:
    desk = api_desk
    ticket_id = desk.tickets[SUPPORT][1]
    desk.call("POST", f"/api/v1/tickets/{ticket_id}/notes", "anna", json={"body": "Called them back"})
    answer = desk.call("GET", f"/api/v1/tickets/{ticket_id}", "anna")
    assert answer.status_code == 200
    body = answer.json
    assert body["id"] == ticket_id and body["customer"]["email"] == "client1@shop.example"
    assert [n["body"] for n in body["notes"]] == ["Called them back"]
    assert body["notes"][0]["author"]["email"] == "anna@example.com"
    assert [e["kind"] for e in body["events"]][:1] == ["ticket_created"]
    assert answer.headers["ETag"].startswith('"')


def test_filters_sort_and_cursor_pages_cover_every_ticket_once(api_app: Flask) -> None:
    from api_support import build_desk

    desk = build_desk(api_app, tickets_per_mailbox=25)
    seen: list[int] = []
    times: list[tuple[str, int]] = []
    cursor = None
    while True:
        query = {"limit": 7, "sort": "created_at"} | ({"cursor": cursor} if cursor else {})
        page = desk.call("GET", "/api/v1/tickets", "admin", query_string=query).json
        seen += [t["id"] for t in page["items"]]
        times += [(t["created_at"], t["id"]) for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 50 and len(set(seen)) == 50
    assert times == sorted(times)
    wrong = desk.call("GET", "/api/v1/tickets", "admin", query_string={"cursor": "abc", "sort": "created_at"})
    assert wrong.status_code == 400 and "cursor" in wrong.json["detail"]
    first = desk.call("GET", "/api/v1/tickets", "admin", query_string={"limit": 2}).json["next_cursor"]
    other_sort = desk.call(
        "GET", "/api/v1/tickets", "admin", query_string={"cursor": first, "sort": "created_at"}
    )
    assert other_sort.status_code == 400

    target = desk.tickets[SUPPORT][3]
    desk.call("PATCH", f"/api/v1/tickets/{target}", "admin",
              json={"priority": "urgent", "tags": ["vip"], "assignee_id": desk.people["anna@example.com"]})  # fmt: skip

    def ids(**query: object) -> list[int]:
        answer = desk.call("GET", "/api/v1/tickets", "admin", query_string=query)
        assert answer.status_code == 200, answer.json
        return [t["id"] for t in answer.json["items"]]

    assert ids(tag="vip") == [target]
    assert ids(priority="urgent") == [target]
    assert ids(assignee=str(desk.people["anna@example.com"])) == [target]
    assert target not in ids(assignee="none", limit=200)
    assert ids(status="solved") == []
    assert len(ids(status=["open", "solved"], limit=200)) == 50
    assert ids(updated_since=(datetime.now(UTC) - timedelta(minutes=5)).isoformat())[0] == target
    bad = desk.call("GET", "/api/v1/tickets", "admin", query_string={"status": "lost", "limit": 0})
    assert bad.status_code == 400 and bad.mimetype == PROBLEM
    assert {e["field"] for e in bad.json["errors"]} >= {"status.0", "limit"}


# --- changing -----------------------------------------------------------------------------------------
def test_a_stale_if_match_gets_412_and_changes_nothing(api_desk: Desk) -> None:
    desk = api_desk
    ticket_id = desk.tickets[SUPPORT][0]
    etag = desk.call("GET", f"/api/v1/tickets/{ticket_id}", "anna").headers["ETag"]
    first = desk.call(
        "PATCH", f"/api/v1/tickets/{ticket_id}", "anna", json={"priority": "high"}, headers={"If-Match": etag}
    )
    assert first.status_code == 200 and first.json["priority"] == "high"
    assert first.headers["ETag"] != etag
    with desk.app.app_context():
        events_before = get_session().scalar(select(func.count()).select_from(Event))
    stale = desk.call(
        "PATCH",
        f"/api/v1/tickets/{ticket_id}",
        "anna",
        json={"status": "solved", "priority": "low"},
        headers={"If-Match": etag},
    )
    assert stale.status_code == 412 and stale.mimetype == PROBLEM
    assert stale.headers["ETag"] == first.headers["ETag"]
    with desk.app.app_context():
        db = get_session()
        ticket = db.get(Ticket, ticket_id)
        assert (ticket.status, ticket.priority) == ("open", "high")
        assert db.scalar(select(func.count()).select_from(Event)) == events_before
    fresh = desk.call(
        "PATCH",
        f"/api/v1/tickets/{ticket_id}",
        "anna",
        json={"status": "solved"},
        headers={"If-Match": first.headers["ETag"]},
    )
    assert fresh.status_code == 200 and fresh.json["status"] == "solved"


def test_changes_go_through_the_shared_actions_as_the_token_s_owner(api_desk: Desk) -> None:
    desk = api_desk
    ticket_id = desk.tickets[SUPPORT][2]
    anna = desk.people["anna@example.com"]
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    answer = desk.call(
        "PATCH",
        f"/api/v1/tickets/{ticket_id}",
        "anna",
        json={"assignee_id": anna, "tags": ["billing", "billing", "vip"], "snoozed_until": until.isoformat()},
    )
    assert answer.status_code == 200, answer.json
    assert answer.json["assignee"]["id"] == anna and answer.json["tags"] == ["billing", "vip"]
    assert datetime.fromisoformat(answer.json["snoozed_until"]) == until
    with desk.app.app_context():
        kinds = {
            (e.kind, e.actor_kind, e.actor_agent_id)
            for e in get_session().scalars(select(Event).where(Event.ticket_id == ticket_id))
        }
    assert {("assigned", "agent", anna), ("tag_added", "agent", anna), ("snoozed", "agent", anna)} <= kinds
    # Someone outside the mailbox cannot be given the ticket; a snooze in the past is refused.
    refused = desk.call(
        "PATCH",
        f"/api/v1/tickets/{ticket_id}",
        "anna",
        json={"assignee_id": desk.people["boris@example.com"]},
    )
    assert refused.status_code == 400 and "does not work in this mailbox" in refused.json["detail"]
    past = desk.call(
        "PATCH", f"/api/v1/tickets/{ticket_id}", "anna", json={"snoozed_until": "2020-01-01T00:00:00Z"}
    )
    assert past.status_code == 400
    unassigned = desk.call(
        "PATCH", f"/api/v1/tickets/{ticket_id}", "anna", json={"assignee_id": None, "tags": []}
    )
    assert unassigned.json["assignee"] is None and unassigned.json["tags"] == []
    # A manager reads every mailbox but works only where they belong.
    assert (
        desk.call("PATCH", f"/api/v1/tickets/{ticket_id}", "manager", json={"priority": "low"}).status_code
        == 403
    )


def test_a_reply_goes_out_through_the_outbox_once(api_desk: Desk) -> None:
    desk = api_desk
    ticket_id = desk.tickets[SUPPORT][0]
    first = desk.call("POST", f"/api/v1/tickets/{ticket_id}/replies", "anna", json={"text": "We are on it."})
    again = desk.call("POST", f"/api/v1/tickets/{ticket_id}/replies", "anna", json={"text": "We are on it."})
    assert (first.status_code, first.json, again.json) == (202, {"queued": True}, {"queued": False})
    with desk.app.app_context():
        rows = get_session().scalars(select(Outbox).where(Outbox.ticket_id == ticket_id)).all()
    assert len(rows) == 1 and rows[0].to == "client0@shop.example"
    both = desk.call(
        "POST", f"/api/v1/tickets/{ticket_id}/replies", "anna", json={"text": "x", "template_id": 1}
    )
    assert both.status_code == 400
    missing = desk.call("POST", f"/api/v1/tickets/{ticket_id}/replies", "anna", json={"template_id": 999})
    assert missing.status_code == 404


@pytest.mark.postgres
def test_a_reply_undone_by_a_deadlock_is_done_again_not_an_error(api_desk: Desk) -> None:
    """The soak's one 503: a reply and a worker's batch each held what the other wanted, and
    PostgreSQL undid the reply. Every request so undone is done again (server.Postdesk); here the
    reply holds its ticket (the Outbox row's reference) and waits for the events table, which the
    "worker" holds while it asks for the ticket."""
    import threading

    from helpers import a_deadlock_the_app_loses, wait_until
    from sqlalchemy import text

    from server.base.db import get_engine

    desk = api_desk
    ticket_id = desk.tickets[SUPPORT][0]
    answers = []
    with a_deadlock_the_app_loses(get_engine(desk.app)) as (worker, app_waits):
        worker.execute(text("LOCK TABLE events IN EXCLUSIVE MODE"))  # reads pass, writes wait
        replying = threading.Thread(
            target=lambda: answers.append(
                desk.call("POST", f"/api/v1/tickets/{ticket_id}/replies", "anna", json={"text": "On it."})
            )
        )
        replying.start()
        assert wait_until(app_waits, timeout=30)  # the reply: Outbox row written, waits on events
        worker.execute(text("SELECT id FROM tickets WHERE id = :t FOR UPDATE"), {"t": ticket_id})  # the cycle
        worker.commit()
    replying.join(timeout=60)
    assert answers and (answers[0].status_code, answers[0].json) == (202, {"queued": True})
    with desk.app.app_context():
        rows = get_session().scalars(select(Outbox).where(Outbox.ticket_id == ticket_id)).all()
        queued = (
            get_session()
            .scalars(select(Event).where(Event.ticket_id == ticket_id, Event.kind == "reply_queued"))
            .all()
        )
    assert (len(rows), len(queued)) == (1, 1)  # done again, not twice


def test_a_request_is_done_again_only_while_nothing_of_it_was_committed(api_app: Flask) -> None:
    """The retry's limit, on the function itself: an undone transaction (SQLSTATE 40P01) is tried
    again up to three times; once a part of the request was committed it is not repeated."""
    from sqlalchemy.exc import OperationalError

    from server.base.db import TRIES, again_when_undone

    class Deadlock(Exception):
        sqlstate = "40P01"

    undone = OperationalError("UPDATE tickets …", {}, Deadlock())
    with api_app.test_request_context():
        calls = []

        def always_undone() -> None:
            calls.append(1)
            get_session().execute(select(1))
            raise undone

        with pytest.raises(OperationalError):
            again_when_undone(always_undone)
        assert len(calls) == TRIES

        def undone_once() -> str:
            calls.append(2)
            if calls.count(2) == 1:
                raise undone
            return "done"

        assert again_when_undone(undone_once) == "done" and calls.count(2) == 2

        def committed_then_undone() -> None:
            calls.append(3)
            get_session().commit()
            raise undone

        with pytest.raises(OperationalError):
            again_when_undone(committed_then_undone)
        assert calls.count(3) == 1

        def another_error() -> None:
            calls.append(4)
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

        with pytest.raises(OperationalError):
            again_when_undone(another_error)
        assert calls.count(4) == 1


def test_unknown_routes_and_methods_answer_as_problems(api_desk: Desk) -> None:
    desk = api_desk
    assert desk.call("GET", "/api/v1/nothing", "admin").mimetype == PROBLEM
    wrong = desk.call("DELETE", "/api/v1/tickets", "admin")
    assert wrong.status_code == 405 and wrong.mimetype == PROBLEM and "GET" in wrong.headers["Allow"]
    huge = desk.call("GET", "/api/v1/tickets/99999999999999", "admin")
    assert huge.status_code == 404


def test_the_token_commands_make_list_and_revoke(api_desk: Desk) -> None:
    desk = api_desk
    runner = desk.app.test_cli_runner()
    made = runner.invoke(
        args=[
            "token",
            "create",
            "anna@example.com",
            "--name",
            "nightly export",
            "--scope",
            "tickets:read",
            "--days",
            "30",
        ]
    )
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert secret.startswith("pd_")
    assert desk.call("GET", "/api/v1/tickets", secret).status_code == 200
    listed = runner.invoke(args=["token", "list", "--json"])
    row = next(r for r in json.loads(listed.stdout) if r["name"] == "nightly export")
    assert row["owner"] == "anna@example.com" and secret not in listed.stdout and row["expires_at"]
    assert runner.invoke(args=["token", "revoke", str(row["id"])]).exit_code == 0
    assert desk.call("GET", "/api/v1/tickets", secret).status_code == 401
    refused = runner.invoke(
        args=["token", "create", "anna@example.com", "--name", "x", "--scope", "settings:write"]
    )
    assert refused.exit_code == 2 and "settings:write" in refused.output
    unknown = runner.invoke(
        args=["token", "create", "nobody@example.com", "--name", "x", "--scope", "tickets:read"]
    )
    assert unknown.exit_code == 2 and "no agent" in unknown.output


def test_webhooks_through_the_api_need_the_settings_scopes(api_desk: Desk) -> None:
    desk = api_desk
    body = {
        "mailbox_id": desk.mailboxes[SUPPORT],
        "url": "https://93.184.215.14/in",
        "events": ["ticket.solved"],
    }
    assert desk.call("POST", "/api/v1/webhooks", "anna", json=body).status_code == 403
    assert desk.call("POST", "/api/v1/webhooks", "manager", json=body).status_code == 403
    made = desk.call("POST", "/api/v1/webhooks", "admin", json=body)
    assert made.status_code == 201 and made.json["secret"].startswith("whsec_")
    hook_id = made.json["id"]
    listed = desk.call("GET", "/api/v1/webhooks", "manager").json["items"]
    assert [h["id"] for h in listed] == [hook_id] and "secret" not in listed[0]
    inside = desk.call("POST", "/api/v1/webhooks", "admin", json=body | {"url": "https://10.0.0.8/in"})
    assert inside.status_code == 400 and "private" in inside.json["detail"]
    unknown = desk.call("POST", "/api/v1/webhooks", "admin", json=body | {"events": ["ticket.exploded"]})
    assert unknown.status_code == 400
    assert desk.call("GET", f"/api/v1/webhooks/{hook_id}/deliveries", "manager").json == {"items": []}
    assert desk.call("DELETE", f"/api/v1/webhooks/{hook_id}", "manager").status_code == 403
    assert desk.call("DELETE", f"/api/v1/webhooks/{hook_id}", "admin").status_code == 204
    assert desk.call("GET", f"/api/v1/webhooks/{hook_id}/deliveries", "admin").status_code == 404


def test_a_nul_character_anywhere_is_a_400_not_a_database_error(api_desk: Desk) -> None:
    desk = api_desk
    for answer in (
        desk.call("GET", "/api/v1/customers", "admin", query_string={"email": "a\x00b@example.com"}),
        desk.call("GET", "/api/v1/tickets", "admin", query_string={"tag": "vip\x00"}),
        desk.call(
            "POST", f"/api/v1/tickets/{desk.tickets[SUPPORT][0]}/notes", "admin", json={"body": "x\x00y"}
        ),
    ):
        assert answer.status_code == 400 and "NUL" in answer.json["detail"]
