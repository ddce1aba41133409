"""The ``postdesk`` command as an admin uses it: connect mailboxes, list them, run the processes.

Errors a person can make end with one line and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time

import pytest
import requests
from helpers import MAILBOX, Process, http, make_email, postdesk_command
from sqlalchemy import select, text

from server.base.crypto import decrypt_json
from server.base.db import get_engine
from server.base.models import Mailbox


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_connecting_a_sandbox_mailbox_and_listing_it(runner, gmail):
    added = runner.invoke(args=["mailbox", "add", MAILBOX, "--sandbox", gmail.url, "--name", "Support"])
    listed = runner.invoke(args=["mailbox", "list", "--json"])

    assert added.exit_code == 0, added.output
    assert f"mailbox {MAILBOX} added (sandbox, default rules and templates)" in added.output
    rows = json.loads(listed.output)
    assert rows == [
        {
            "address": MAILBOX,
            "name": "Support",
            "auth": "sandbox",
            "endpoint": gmail.url,
            "sync_state": "new",
            "history_id": None,
            "last_sync_at": None,
        }
    ]


def test_adding_the_same_address_twice_is_exit_2(runner, gmail):
    runner.invoke(args=["mailbox", "add", MAILBOX, "--sandbox", gmail.url])
    again = runner.invoke(args=["mailbox", "add", MAILBOX.upper(), "--sandbox", gmail.url])
    assert again.exit_code == 2
    assert again.output.strip() == f"Error: mailbox {MAILBOX} already exists"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sandbox", "not a url"], "not an http(s) URL"),
        (["--sandbox", "ftp://example.com/"], "not an http(s) URL"),
        (["--sandbox", "http://127.0.0.1:99999/"], "bad port"),
        (["--service-account", "/no/such/file.json"], "service-account file not found"),
        (["--oauth-client", "/no/such/client.json"], "OAuth client file not found"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(runner, args, message):
    result = runner.invoke(args=["mailbox", "add", MAILBOX, *args])
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_a_bad_address_and_a_missing_method_are_exit_2(runner, gmail):
    bad_address = runner.invoke(args=["mailbox", "add", "not-an-address", "--sandbox", gmail.url])
    no_method = runner.invoke(args=["mailbox", "add", MAILBOX])
    two_methods = runner.invoke(
        args=["mailbox", "add", MAILBOX, "--sandbox", gmail.url, "--service-account", "x"]
    )
    assert bad_address.exit_code == 2 and "not an email address" in bad_address.output
    assert no_method.exit_code == 2 and "exactly one of" in no_method.output
    assert two_methods.exit_code == 2


def test_an_unreachable_gmail_is_reported_and_nothing_is_stored(runner, session):
    result = runner.invoke(args=["mailbox", "add", MAILBOX, "--sandbox", f"http://127.0.0.1:{free_port()}/"])
    assert result.exit_code == 2
    assert "cannot reach Gmail" in result.output
    assert session.scalars(select(Mailbox)).all() == []


def test_a_file_that_is_not_a_service_account_key_is_refused(runner, tmp_path):
    not_json = tmp_path / "key.json"
    not_json.write_text("{ this is not json")
    wrong_kind = tmp_path / "client.json"
    wrong_kind.write_text(json.dumps({"installed": {"client_id": "x", "client_secret": "y"}}))

    first = runner.invoke(args=["mailbox", "add", MAILBOX, "--service-account", str(not_json)])
    second = runner.invoke(args=["mailbox", "add", MAILBOX, "--service-account", str(wrong_kind)])

    assert first.exit_code == 2 and "not valid JSON" in first.output
    assert second.exit_code == 2 and "not a service-account key file" in second.output


def test_service_account_credentials_are_stored_encrypted(app, runner, tmp_path, service_account_info):
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps(service_account_info))

    result = runner.invoke(
        args=["mailbox", "add", MAILBOX, "--service-account", str(key_file), "--no-verify"]
    )

    assert result.exit_code == 0, result.output
    with app.app_context(), get_engine().connect() as connection:
        stored = connection.execute(text("SELECT credentials_encrypted FROM mailboxes")).scalar()
        assert b"PRIVATE KEY" not in bytes(stored) and b"client_email" not in bytes(stored)
        assert decrypt_json(bytes(stored))["client_email"] == service_account_info["client_email"]


def test_an_oauth_refresh_token_from_stdin_is_stored_encrypted(app, runner, tmp_path):
    client_file = tmp_path / "client_secret.json"
    client_file.write_text(
        json.dumps({"installed": {"client_id": "cid.apps.googleusercontent.com", "client_secret": "shh"}})
    )

    result = runner.invoke(
        args=[
            "mailbox",
            "add",
            MAILBOX,
            "--oauth-client",
            str(client_file),
            "--refresh-token-stdin",
            "--no-verify",
        ],
        input="1//refresh-token-value\n",
    )

    assert result.exit_code == 0, result.output
    with app.app_context(), get_engine().connect() as connection:
        stored = bytes(connection.execute(text("SELECT credentials_encrypted FROM mailboxes")).scalar())
        assert b"refresh-token-value" not in stored and b"shh" not in stored
        secret = decrypt_json(stored)
    assert secret["refresh_token"] == "1//refresh-token-value" and secret["client_id"].startswith("cid")


def test_an_empty_refresh_token_is_refused(runner, tmp_path):
    client_file = tmp_path / "client_secret.json"
    client_file.write_text(json.dumps({"web": {"client_id": "cid", "client_secret": "shh"}}))
    result = runner.invoke(
        args=["mailbox", "add", MAILBOX, "--oauth-client", str(client_file), "--refresh-token-stdin"],
        input="\n",
    )
    assert result.exit_code == 2 and "no refresh token" in result.output


def test_mailbox_list_without_mailboxes_says_how_to_add_one(runner):
    result = runner.invoke(args=["mailbox", "list"])
    assert result.exit_code == 0 and "postdesk mailbox add" in result.output


# --- from outside: the installed console script in real subprocesses ---------------------------------
def _env(tmp_path, database_url: str) -> dict[str, str]:
    return {"POSTDESK_DATABASE_URL": database_url, "POSTDESK_INSTANCE_PATH": str(tmp_path / "instance")}


def test_the_console_script_reports_errors_without_a_traceback(tmp_path, database_url, app):
    result = subprocess.run(
        [postdesk_command(), "mailbox", "add", MAILBOX, "--sandbox", "nope"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, **_env(tmp_path, database_url)},
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "Error: not an http(s) URL: 'nope'"
    assert "Traceback" not in result.stdout + result.stderr


def test_a_command_before_init_db_or_without_a_database_says_what_to_do(tmp_path):
    """A new user's first command is often run before ``postdesk init-db``, or with a database URL
    that reaches nothing: one line that says so, exit 2, never a traceback."""
    import os

    def run(url: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **_env(tmp_path, url)}
        return subprocess.run(
            [postdesk_command(), *args], capture_output=True, text=True, env=env, timeout=60
        )

    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    for args in (["tickets", "list"], ["articles", "list", "--mailbox", MAILBOX]):
        result = run(empty, *args)
        assert result.returncode == 2, result.stderr
        assert "no Postdesk tables" in result.stderr and "postdesk init-db" in result.stderr
        assert "Traceback" not in result.stdout + result.stderr
    nowhere = run("postgresql+psycopg://someone:secret@127.0.0.1:1/postdesk", "tickets", "list")
    assert nowhere.returncode == 2 and "cannot use the database" in nowhere.stderr
    assert "secret" not in nowhere.stderr and "Traceback" not in nowhere.stderr  # the password hidden
    worker = run(empty, "worker")  # stops at once instead of failing every round
    assert worker.returncode == 2 and "postdesk init-db" in worker.stderr
    assert run(empty, "init-db").returncode == 0
    assert run(empty, "tickets", "list").returncode == 0  # at the schema: the command works


def test_postdesk_sandbox_serves_the_seeded_demo_mailbox_to_the_real_client(tmp_path):
    from google.auth.credentials import AnonymousCredentials
    from googleapiclient.discovery import build

    process = Process(
        ["sandbox", "--port", "0", "--seed", "demo"], env={"POSTDESK_INSTANCE_PATH": str(tmp_path)}
    )
    try:
        url = process.wait_for(r"listening on (http://\S+)")[1]
        service = build(
            "gmail",
            "v1",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": url},
            static_discovery=True,
        )
        listed = service.users().messages().list(userId=MAILBOX, maxResults=500).execute()
        service.close()
    finally:
        process.stop()
    assert len({m["threadId"] for m in listed["messages"]}) >= 30


def test_postdesk_sandbox_keeps_its_state_file_across_restarts(tmp_path):
    state = tmp_path / "sandbox.json"
    first = Process(
        ["sandbox", "--port", "0", "--state", str(state)], env={"POSTDESK_INSTANCE_PATH": str(tmp_path)}
    )
    try:
        url = first.wait_for(r"listening on (http://\S+)")[1]
        delivered = http("POST", f"{url}sandbox/users/{MAILBOX}/messages", raw=b"Subject: kept\r\n\r\nbody")[
            1
        ]
    finally:
        first.stop()
    second = Process(
        ["sandbox", "--port", "0", "--state", str(state)], env={"POSTDESK_INSTANCE_PATH": str(tmp_path)}
    )
    try:
        url = second.wait_for(r"listening on (http://\S+)")[1]
        status, message, _ = http(
            "GET", f"{url}gmail/v1/users/{MAILBOX}/messages/{delivered['id']}?format=minimal"
        )
    finally:
        second.stop()
    assert status == 200 and message["historyId"] == delivered["historyId"]


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_the_sandbox_stops_on_ctrl_c_or_sigterm_even_when_started_with_sigint_ignored(tmp_path, signum):
    # A shell's background job and a pytest-xdist worker's child start with SIGINT ignored: Python then
    # raises no KeyboardInterrupt, and the sandbox could only be killed (each such test waited 20 s).
    import os
    import signal

    process = subprocess.Popen(
        [postdesk_command(), "sandbox", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "POSTDESK_INSTANCE_PATH": str(tmp_path)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert process.stdout is not None and "listening on" in process.stdout.readline()
        process.send_signal(getattr(signal, signum))
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()  # type: ignore[union-attr]


def test_postdesk_sandbox_refuses_a_state_file_that_is_not_its_own(tmp_path):
    state = tmp_path / "state.json"
    state.write_text('{"users": 42}')
    result = subprocess.run(
        [postdesk_command(), "sandbox", "--port", "0", "--state", str(state)],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "POSTDESK_INSTANCE_PATH": str(tmp_path)},
        timeout=60,
    )
    assert result.returncode == 2
    assert "is not a sandbox state file" in result.stderr and "Traceback" not in result.stderr


def test_postdesk_web_serves_healthz(tmp_path, database_url, app):
    port = free_port()
    process = Process(["web", "--port", str(port), "--workers", "1"], env=_env(tmp_path, database_url))
    try:
        process.wait_for(r"Listening at|Postdesk web on")
        for _ in range(50):
            status, body, _ = http("GET", f"http://127.0.0.1:{port}/healthz")
            if status == 200:
                break
            __import__("time").sleep(0.1)
    finally:
        process.stop()
    assert (status, body) == (200, {"status": "ok"})


def test_postdesk_demo_starts_everything_and_prints_the_urls(tmp_path):
    from google.auth.credentials import AnonymousCredentials
    from googleapiclient.discovery import build

    process = Process(
        ["demo", "--port", "0", "--sandbox-port", "0"],
        env={"POSTDESK_INSTANCE_PATH": str(tmp_path / "instance")},
    )
    try:
        process.wait_for(r"Postdesk demo is running")
        health = process.wait_for(r"health\s+(http://\S+)")[1]
        sandbox = process.wait_for(r"gmail sandbox\s+(http://\S+)")[1]
        mailbox = process.wait_for(r"mailbox\s+(\S+) \((\d+) messages\)")
        tickets = process.wait_for(r"tickets\s+(\d+) opened by the first sync")
        settings_url = process.wait_for(r"settings\s+(http://\S+) \(sign in as any demo agent\)")[1]
        help_url = process.wait_for(r"help centre\s+(http://\S+)")[1]
        help_home = requests.get(help_url, headers={"Accept-Language": "ru"}, timeout=10)
        found = requests.get(help_url + "search", params={"q": "download all my contacts"}, timeout=10)
        process.wait_for(r"worker demo: running the jobs")  # web and worker in one process
        status, body, _ = http("GET", health)
        service = build(
            "gmail",
            "v1",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": sandbox},
            static_discovery=True,
        )
        listed = service.users().messages().list(userId="me").execute()
        service.close()
        # The demo's sandbox pushes each change to the demo's /gmail/push, which accepts it (once the
        # worker's first round has set the watch: a mail now and then until a push is accepted).
        pushed: list = []
        for n in range(20):
            http("POST", f"{sandbox}sandbox/users/{MAILBOX}/messages", raw=make_email(f"Pushed {n}", "Hi"))
            time.sleep(1)
            pushed = [p for p in http("GET", f"{sandbox}sandbox/push/sent")[1]["sent"] if p["status"] == 204]
            if pushed:
                break
        # The demo admin signs in without Google and sees the seeded mailbox healthy.
        browser = requests.Session()
        picker = browser.get(settings_url, timeout=10)  # -> sign-in -> the demo picker
        token = re.search(r'name="csrf_token" value="([^"]+)"', picker.text)[1]
        mailboxes = browser.post(
            picker.url,
            data={"email": "anna@example.com", "csrf_token": token, "next": "/settings/"},
            timeout=10,
        )
    finally:
        process.stop()
    assert (status, body) == (200, {"status": "ok"})
    assert mailbox[1] == MAILBOX and int(mailbox[2]) >= 40
    # The seeded mail, and the acknowledgements the demo's worker may have sent since it was counted.
    assert listed["resultSizeEstimate"] >= int(mailbox[2])
    assert int(tickets[1]) == 33
    assert (tmp_path / "instance" / "demo.sqlite3").exists()
    assert "/auth/demo" in picker.url and "Lena Smirnova" in picker.text and "Manager" in picker.text
    row = re.search(r'<tr class="mailbox">.*?</tr>', mailboxes.text, re.S)
    assert mailboxes.url.endswith("/settings/mailboxes") and row and MAILBOX in row[0]
    assert "Работает" in row[0]  # "Healthy", in the language of Anna, the demo admin
    assert pushed, "the demo's push path did not accept the sandbox's notification"
    # The help centre is on, with the FAQ answer published in both languages (Russian for a Russian browser).
    assert help_home.status_code == 200 and "Как выгрузить данные в CSV?" in help_home.text
    assert found.status_code == 200 and "How do I export my data to CSV?" in found.text
