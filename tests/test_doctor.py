"""``postdesk doctor`` and the System health page: each ✗ caused by the broken setting it names, and
a healthy deployment that exits 0."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import text
from web_support import google, sign_in, team, web  # noqa: F401  (fixtures)

from server import create_app
from server.base.db import get_engine, get_session, init_db
from server.base.models import Outbox, OutboxKind, OutboxState, SyncState, Webhook
from server.faces.addon import manifest as addon_files
from server.faces.doctor import Check, run_checks
from server.flows.clock.lease import acquire
from server.gmail.send import enqueue

SERVICE_ACCOUNT = "service-123456789@gcp-sa-gsuiteaddons.iam.gserviceaccount.com"
CLIENT_ID = "1234567890-abc.apps.googleusercontent.com"
HEALTHY = {
    "DEMO": False,
    "SECRET_KEY": "s" * 48,
    "ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "PUBLIC_URL": "https://desk.example.org",
    "ADDON_PUBLIC_URL": "https://desk.example.org",
    "ADDON_CLIENT_ID": CLIENT_ID,
    "ADDON_SERVICE_ACCOUNT": SERVICE_ACCOUNT,
    "GOOGLE_CLIENT_ID": "web-client.apps.googleusercontent.com",
    "GOOGLE_CLIENT_SECRET": "web-secret",
}


@pytest.fixture
def make_app(database_url: str, tmp_path: Path) -> Iterator[Any]:
    made: list[Flask] = []

    def _make(**config: Any) -> Flask:
        app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                          "INSTANCE_PATH": str(tmp_path / "instance")} | config)  # fmt: skip
        with app.app_context():
            init_db()
        made.append(app)
        return app

    yield _make
    for app in made:
        get_engine(app).dispose()


class Answering:
    """A loopback server answering every request with ``status`` and the headers given."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        outer = self
        self.status, self.headers, self.body = status, headers or {}, body

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response_only(outer.status)
                for name, value in outer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(outer.body)

            do_GET = do_HEAD = do_POST = _answer

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def checks_of(app: Flask, **options: Any) -> dict[str, Check]:
    with app.app_context():
        return {check.name: check for check in run_checks(**options)}


def failing(app: Flask, **options: Any) -> dict[str, Check]:
    return {name: check for name, check in checks_of(app, **options).items() if check.ok is False}


def healthy_mailbox(app: Flask, gmail_url: str) -> None:
    from server.base.models import AuthKind
    from server.services.accounts import MailboxSpec, add_mailbox

    with app.app_context():
        db = get_session()
        box = add_mailbox(
            db, MailboxSpec("support@example.com", AuthKind.SANDBOX, gmail_url, None, "Support")
        )
        box.last_sync_at = datetime.now(UTC)
        acquire(db, "worker-1", now=datetime.now(UTC), ttl=timedelta(minutes=5))
        db.commit()


def test_a_healthy_deployment_has_no_cross_and_the_command_exits_0(make_app, gmail):
    app = make_app(**HEALTHY)
    healthy_mailbox(app, gmail.url)
    assert failing(app) == {}
    result = app.test_cli_runner().invoke(args=["doctor"])
    assert result.exit_code == 0, result.output
    assert "everything checked holds" in result.output
    assert "✓ database" in result.output and "– clock: not checked" in result.output


def test_an_empty_configuration_names_every_missing_setting_with_its_fix(make_app):
    app = make_app(DEMO=False)
    problems = failing(app)
    assert set(problems) == {"secrets", "public URL (POSTDESK_PUBLIC_URL)", "add-on client id",
                             "sign-in with Google", "mailboxes", "worker"}  # fmt: skip
    assert "POSTDESK_SECRET_KEY" in problems["secrets"].detail
    assert problems["sign-in with Google"].docs == "docs/deployment.md#sign-in"
    result = app.test_cli_runner().invoke(args=["doctor"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("✗")]
    assert len(lines) == 6 and all(" — fix: " in line and "docs/deployment.md#" in line for line in lines)


def test_every_docs_section_named_exists() -> None:
    from server.faces import doctor

    source = "".join(file.read_text(encoding="utf-8") for file in Path(doctor.__file__).parent.glob("*.py"))
    import re

    sections = set(re.findall(r'"((?:the-|sign-in|secrets|mailboxes|push|webhooks)[a-z-]*)"\)', source))
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in (Path(__file__).resolve().parent.parent / "docs" / "deployment.md")
        .read_text()
        .splitlines()
        if line.startswith("#")
    }
    assert sections and sections <= headings, sections - headings


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("SECRET_KEY", "short", "fewer than 32"),
        ("SECRET_KEY", "", "not set"),
        ("ENCRYPTION_KEY", "not-a-fernet-key", "not a Fernet key"),
        ("ENCRYPTION_KEY", "", "POSTDESK_ENCRYPTION_KEY is not set"),
    ],
)
def test_weak_or_missing_secrets(make_app, setting, value, expected):
    app = make_app(**(HEALTHY | {setting: value}))
    assert expected in failing(app)["secrets"].detail


@pytest.mark.parametrize(
    ("setting", "value", "name", "expected", "also"),
    [
        ("PUBLIC_URL", "http://desk.example.org", "public URL (POSTDESK_PUBLIC_URL)", "not an https", None),
        ("ADDON_PUBLIC_URL", "https://desk.example.org/?x=1", "public URL (POSTDESK_ADDON_PUBLIC_URL)",
         "base URL only", "add-on HTTP runtime"),
        ("ADDON_CLIENT_ID", "", "add-on client id", "not set", None),
        ("ADDON_CLIENT_ID", f"{CLIENT_ID},my-project", "add-on client id", "my-project is not an OAuth client id",
         None),
        ("ADDON_SERVICE_ACCOUNT", "someone@example.com", "add-on HTTP runtime", "not the add-on's service account",
         None),
        ("ADDON_PUBLIC_URL", "", "add-on HTTP runtime", "not an https URL", "public URL (POSTDESK_ADDON_PUBLIC_URL)"),
        ("GOOGLE_CLIENT_SECRET", "", "sign-in with Google", "POSTDESK_GOOGLE_CLIENT_SECRET is not set", None),
    ],
)  # fmt: skip
def test_each_broken_setting_fails_its_own_check(make_app, gmail, setting, value, name, expected, also):
    app = make_app(**(HEALTHY | {setting: value}))
    healthy_mailbox(app, gmail.url)
    problems = failing(app)
    assert set(problems) == {name} | ({also} if also else set())
    assert expected in problems[name].detail


def test_the_deployment_file_must_name_the_configured_backend(make_app, gmail, tmp_path):
    app = make_app(**HEALTHY)
    healthy_mailbox(app, gmail.url)
    assert failing(app, deployment=addon_files.deployment("https://desk.example.org")) == {}
    stale = addon_files.deployment(addon_files.EXAMPLE_URL)
    problem = failing(app, deployment=stale)["add-on HTTP runtime"]
    assert "https://postdesk.example.com/addon/v1/" in problem.detail
    assert "postdesk addon deployment" in problem.fix
    changed = addon_files.deployment("https://desk.example.org")
    changed["oauthScopes"].pop()
    assert "differs" in failing(app, deployment=changed)["add-on HTTP runtime"].detail
    (tmp_path / "deployment.json").write_text(addon_files.as_text(stale))
    result = app.test_cli_runner().invoke(args=["doctor", "--deployment", str(tmp_path / "deployment.json")])
    assert result.exit_code == 1 and "✗ add-on HTTP runtime" in result.output
    (tmp_path / "broken.json").write_text("{not json")
    result = app.test_cli_runner().invoke(args=["doctor", "--deployment", str(tmp_path / "broken.json")])
    assert result.exit_code == 2 and "is not JSON" in result.output


def test_a_database_behind_the_newest_migration(tmp_path, empty_database_url):
    from alembic import command
    from alembic.script import ScriptDirectory

    from server.base.migrations import alembic_config

    app = create_app(
        {"TESTING": True, "DATABASE_URL": empty_database_url, "INSTANCE_PATH": str(tmp_path / "i")}
    )
    config = alembic_config(get_engine(app))
    previous = ScriptDirectory.from_config(config).get_revision("head").down_revision
    with get_engine(app).begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, str(previous))
    try:
        problem = failing(app)["database"]
        assert f"at migration {previous}" in problem.detail and problem.fix.startswith("run postdesk init-db")
    finally:
        get_engine(app).dispose()


def test_a_database_that_does_not_answer(tmp_path):
    app = create_app({"TESTING": True, "DATABASE_URL": "postgresql+psycopg://postdesk:secret@127.0.0.1:9/postdesk",
                      "INSTANCE_PATH": str(tmp_path / "i")})  # fmt: skip
    problems = failing(app)
    assert "does not answer" in problems["database"].detail and "secret" not in problems["database"].detail
    assert "worker" not in checks_of(app)  # nothing that needs the database is tried


def test_mailbox_worker_outbox_and_webhook_troubles(make_app, gmail):
    app = make_app(**HEALTHY, PUSH_TOPIC="projects/p/topics/gmail")
    healthy_mailbox(app, gmail.url)
    now = datetime.now(UTC)
    with app.app_context():
        db = get_session()
        from server.base.models import Mailbox

        box = db.query(Mailbox).one()
        box.watch_expires_at = now - timedelta(hours=2)
        stuck = enqueue(db, mailbox=box, kind=OutboxKind.NOTIFICATION, key="k1", to=["a@example.com"],
                        subject="s", text="t")  # fmt: skip
        stuck.next_attempt_at = now - timedelta(hours=1)
        db.add(Webhook(mailbox_id=box.id, url="https://hooks.example.net/x", events=["ticket.created"],
                       secret_encrypted=b"x", enabled=True, failing_since=now - timedelta(hours=3)))  # fmt: skip
        db.execute(text("DELETE FROM worker_leases"))
        db.commit()
    problems = failing(app)
    assert set(problems) == {"push for support@example.com", "worker", "outgoing mail", "webhooks"}
    assert "1 message(s) due more than 15 min ago" in problems["outgoing mail"].detail
    assert "hooks.example.net" in problems["webhooks"].detail
    with app.app_context():
        db = get_session()
        db.execute(text("UPDATE outbox SET state = :failed, last_error = 'Gmail said 400'"),
                   {"failed": OutboxState.FAILED.value})  # fmt: skip
        db.execute(text("UPDATE mailboxes SET sync_state = :error, sync_error = 'invalid_grant'"),
                   {"error": SyncState.ERROR.value})  # fmt: skip
        db.commit()
    problems = failing(app)
    assert "Gmail said 400" in problems["outgoing mail"].detail
    assert "invalid_grant" in problems["mailbox support@example.com"].detail
    with app.app_context():  # a paused mailbox's mail waits on purpose
        db = get_session()
        db.execute(text("UPDATE outbox SET state = :pending"), {"pending": OutboxState.PENDING.value})
        db.execute(text("UPDATE mailboxes SET paused = true"))
        db.commit()
        assert db.query(Outbox).count() == 1
    assert "outgoing mail" not in failing(app)


def test_live_checks_ask_the_public_url_gmail_and_google_s_clock(make_app, gmail):
    healthy = Answering(200, {"Date": format_datetime(datetime.now(UTC), usegmt=True)})
    slow_clock = Answering(
        200, {"Date": format_datetime(datetime.now(UTC) - timedelta(minutes=5), usegmt=True)}
    )
    broken = Answering(503)
    zoneless = Answering(200, {"Date": format_datetime(datetime.now(UTC).replace(tzinfo=None))})  # "-0000"
    try:
        app = make_app(**(HEALTHY | {"DEMO": True, "PUBLIC_URL": healthy.url, "ADDON_PUBLIC_URL": "",
                                     "ADDON_SERVICE_ACCOUNT": "", "TIME_CHECK_URL": healthy.url}))  # fmt: skip
        healthy_mailbox(app, gmail.url)
        checks = checks_of(app, live=True)
        assert all(check.ok is not False for check in checks.values()), checks
        assert checks["mailbox support@example.com"].detail.startswith("Gmail answers")
        assert checks["clock"].ok and checks["public URL (POSTDESK_PUBLIC_URL)"].ok
        app.config["TIME_CHECK_URL"] = zoneless.url
        assert checks_of(app, live=True)["clock"].ok

        app.config.update(PUBLIC_URL=broken.url, TIME_CHECK_URL=slow_clock.url)
        problems = failing(app, live=True)
        assert "answers 503" in problems["public URL (POSTDESK_PUBLIC_URL)"].detail
        assert (
            "300 s off Google's" in problems["clock"].detail or "s off Google's" in problems["clock"].detail
        )
        app.config.update(PUBLIC_URL="http://127.0.0.1:9", TIME_CHECK_URL=broken.url)
        problems = failing(app, live=True)
        assert "does not answer" in problems["public URL (POSTDESK_PUBLIC_URL)"].detail
        assert "gave no time" in problems["clock"].detail
    finally:
        for server in (healthy, slow_clock, broken, zoneless):
            server.close()


def test_gmail_refusing_the_mailbox_is_a_cross_with_the_reason(make_app, gmail):
    from server.base.models import AuthKind
    from server.services.accounts import MailboxSpec, add_mailbox

    app = make_app(**HEALTHY)
    healthy_mailbox(app, gmail.url)
    with app.app_context():
        add_mailbox(
            get_session(),
            MailboxSpec("ghost@example.com", AuthKind.SANDBOX, "http://127.0.0.1:9/", None, "X"),
        )
    problem = failing(app, live=True)["mailbox ghost@example.com"]
    assert problem.detail.startswith("Gmail refused the profile call")
    assert "again" in problem.fix


@pytest.mark.parametrize(
    ("status", "answer", "expected"),
    [
        (400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
         "Google refused the mailbox's credentials: invalid_grant"),
        (200, {"access_token": "ya29.x", "expires_in": 3600, "token_type": "Bearer", "scope": "openid email"},
         "the token was granted openid email, not https://www.googleapis.com/auth/gmail.modify"),
    ],
)  # fmt: skip
def test_a_refresh_token_google_refuses_or_grants_too_little(make_app, gmail, status, answer, expected):
    import json

    from server.base.crypto import encrypt_json
    from server.base.models import AuthKind, Mailbox

    token_endpoint = Answering(status, {"Content-Type": "application/json"}, json.dumps(answer).encode())
    try:
        app = make_app(**HEALTHY)
        healthy_mailbox(app, gmail.url)
        with app.app_context():
            db = get_session()
            box = db.query(Mailbox).one()
            box.auth_kind = AuthKind.OAUTH
            box.credentials_encrypted = encrypt_json({"client_id": "c.apps.googleusercontent.com", "client_secret": "s",
                                                      "token_uri": token_endpoint.url, "refresh_token": "r"})  # fmt: skip
            db.commit()
        problem = failing(app, live=True)["mailbox support@example.com"]
        assert expected in problem.detail
        assert problem.fix == "connect the mailbox again on its settings page"
    finally:
        token_endpoint.close()


def test_a_task_queue_that_cannot_be_read(make_app, gmail):
    app = make_app(**HEALTHY)
    healthy_mailbox(app, gmail.url)
    app.config["TASKS"] = "procrastinate"
    with app.app_context():
        if get_engine().dialect.name == "sqlite":
            problem = failing(app)["task queue"]
            assert "cannot be read" in problem.detail
            return
        db = get_session()
        job = db.execute(text("INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)"
                              " VALUES ('default', 'postdesk.sync', '{}', 'todo') RETURNING id")).scalar_one()  # fmt: skip
        db.execute(text("UPDATE procrastinate_events SET at = now() - interval '10 minutes' WHERE job_id = :j"),
                   {"j": job})  # fmt: skip
        db.commit()
    problem = failing(app)["task queue"]
    assert "has waited" in problem.detail


def test_the_system_health_page_is_for_admins_in_their_language(web, google, team):  # noqa: F811
    client = web.test_client()
    sign_in(client, google, "agent@example.com")
    assert client.get("/settings/system").status_code == 403
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    page = client.get("/settings/system").get_data(as_text=True)
    assert "System health" in page and "✗" in page and "worker" in page
    assert "docs/deployment.md#the-worker" in page
    with web.app_context():
        db = get_session()
        from server.base.models import Agent

        db.query(Agent).filter_by(email="admin@example.com").one().locale = "ru"
        db.commit()
    page = client.get("/settings/system?live=1").get_data(as_text=True)
    assert "Состояние системы" in page and "Не выполнено" in page


def test_a_changed_encryption_key_is_named_as_the_cause(make_app, gmail):
    from server.base.crypto import encrypt_json
    from server.base.models import AuthKind, Mailbox

    app = make_app(**HEALTHY)
    healthy_mailbox(app, gmail.url)
    with app.app_context():
        db = get_session()
        box = db.query(Mailbox).one()
        box.auth_kind = AuthKind.OAUTH
        box.credentials_encrypted = encrypt_json(
            {"client_id": "c", "client_secret": "s", "refresh_token": "r"}
        )
        db.commit()
    app.config["ENCRYPTION_KEY"] = Fernet.generate_key().decode()  # someone made a new key
    problem = failing(app, live=True)["mailbox support@example.com"]
    assert problem.fix == "put the encryption key back" and problem.docs.endswith("#secrets")
