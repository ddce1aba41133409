"""``postdesk sync`` and ``postdesk tickets`` as an admin runs them."""

from __future__ import annotations

import json

from helpers import MAILBOX, Process, http, make_email

from server.gmail.sandbox.seed import seed_demo_mailbox


def test_sync_once_then_list_and_show_tickets(runner, gmail, mailbox, deliver):
    deliver(
        make_email("Printer on fire", "It is burning", sender="Bob <bob@example.org>", message_id="<fire@x>")
    )
    deliver(
        make_email(
            "Re: Printer on fire", "Out now", sender=MAILBOX, to="bob@example.org", in_reply_to="<fire@x>"
        )
    )

    synced = runner.invoke(args=["sync", "--once"])
    listed = runner.invoke(args=["tickets", "list", "--mailbox", MAILBOX, "--json"])
    shown = runner.invoke(args=["tickets", "show", "1", "--mailbox", MAILBOX, "--json"])

    assert synced.exit_code == 0, synced.output
    assert f"{MAILBOX}: full sync, 2 messages filed, 1 tickets opened" in synced.output
    rows = json.loads(listed.output)
    assert len(rows) == 1
    row = rows[0]
    assert {
        k: row[k] for k in ("number", "mailbox", "subject", "status", "priority", "assignee", "customer")
    } == {
        "number": 1,
        "mailbox": MAILBOX,
        "subject": "Printer on fire",
        "status": "open",
        "priority": "normal",
        "assignee": None,
        "customer": "bob@example.org",
    }
    assert row["message_count"] == 2 and row["created_at"] and row["updated_at"]
    detail = json.loads(shown.output)
    assert [(m["direction"], m["from"], m["text"]) for m in detail["messages"]] == [
        ("inbound", "bob@example.org", "It is burning"),
        ("outbound", MAILBOX, "Out now"),
    ]
    assert all(m["sent_at"] for m in detail["messages"])


def test_tickets_list_filters_by_status_and_prints_a_table(runner, gmail, mailbox):
    seed_demo_mailbox(gmail.sandbox)
    runner.invoke(args=["sync", "--once"])

    open_rows = json.loads(runner.invoke(args=["tickets", "list", "--status", "open", "--json"]).output)
    solved_rows = json.loads(runner.invoke(args=["tickets", "list", "--status", "solved", "--json"]).output)
    table = runner.invoke(args=["tickets", "list"])

    assert len(open_rows) == 33 and solved_rows == []
    assert "#33" in table.output and "Не работает вход в личный кабинет" in table.output


def test_mistakes_are_one_line_with_exit_2(runner, gmail, mailbox):
    unknown_mailbox = runner.invoke(args=["sync", "--once", "--mailbox", "nobody@example.com"])
    unknown_ticket = runner.invoke(args=["tickets", "show", "99", "--mailbox", MAILBOX])
    bad_status = runner.invoke(args=["tickets", "list", "--status", "reopened"])

    assert unknown_mailbox.exit_code == 2 and "no mailbox nobody@example.com" in unknown_mailbox.output
    assert unknown_ticket.exit_code == 2 and "no ticket #99" in unknown_ticket.output
    assert bad_status.exit_code == 2


def test_a_failing_mailbox_is_reported_and_the_exit_code_says_so(runner, app, session, gmail, mailbox):
    app.config.update(GMAIL_MAX_ATTEMPTS=2)
    http("POST", f"{gmail.url}sandbox/faults", {"status": 503, "rate": 1.0})
    result = runner.invoke(args=["sync", "--once"])
    session.expire_all()  # the sync ran in its own app context and session
    listed = json.loads(runner.invoke(args=["mailbox", "list", "--json"]).output)
    assert result.exit_code == 1
    assert f"{MAILBOX}: sync failed: getProfile: gave up after 2 attempts" in result.output
    assert listed[0]["sync_state"] == "error"


def test_polling_sync_picks_up_new_mail_and_stops_on_sigint(
    tmp_path, gmail, database_url, app, mailbox, deliver
):
    process = Process(
        ["sync"],
        env={
            "POSTDESK_DATABASE_URL": database_url,
            "POSTDESK_INSTANCE_PATH": app.instance_path,
            "POSTDESK_POLL_SECONDS": "0.2",
        },
    )
    try:
        process.wait_for(r"full sync, 0 messages filed")
        deliver(make_email("Hello while polling"))
        process.wait_for(r"incremental sync, 1 messages filed, 1 tickets opened")
    finally:
        code = process.stop()
    assert code == 0
    assert any("sync stopped" in line for line in process.lines) or code == 0


def test_a_long_full_sync_prints_progress(runner, gmail, mailbox):
    for i in range(1100):
        gmail.sandbox.deliver(MAILBOX, make_email(f"bulk {i}"))
    result = runner.invoke(args=["sync", "--once"])
    assert "full sync support@example.com: 500/1100 messages" in result.output
    assert "full sync support@example.com: 1100/1100 messages" in result.output
