"""Backups that restore: ``postdesk backup`` of a SQLite database while mail arrives and is filed,
``postdesk restore`` into an empty database, then the next sync files what came after; PostgreSQL's
documented pg_dump / pg_restore procedure with ``postdesk after-restore``; the systemd units."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials
from helpers import make_email, postdesk_command, run_postdesk
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from server import create_app
from server.base.db import get_engine, get_session, init_db
from server.base.models import AuthKind, Mailbox, Message, Outbox, Ticket
from server.flows.sync_runner import sync_with_rules
from server.gmail.client import GmailClient, RetryPolicy
from server.services.accounts import MailboxSpec, add_mailbox
from server.services.defaults import install_defaults

MAILBOX = "support@example.com"
ROOT = Path(__file__).resolve().parent.parent


def _app(url: str, instance: Path) -> Any:
    return create_app({"TESTING": True, "DATABASE_URL": url, "INSTANCE_PATH": str(instance)})


def _client(gmail_url: str) -> GmailClient:
    return GmailClient(MAILBOX, AnonymousCredentials(), gmail_url,
                       retry=RetryPolicy(max_attempts=5, base=0.001, cap=0.01), sleep=lambda _s: None)  # fmt: skip


def _env(url: str, instance: Path) -> dict[str, str]:
    return os.environ | {"POSTDESK_DATABASE_URL": url, "POSTDESK_INSTANCE_PATH": str(instance)}


def _gmail_ids(path: Path) -> set[str]:
    with sqlite3.connect(path, timeout=30) as connection:
        return {row[0] for row in connection.execute("SELECT gmail_id FROM messages")}


@pytest.mark.slow
def test_a_backup_taken_while_mail_arrives_restores_all_that_was_committed(tmp_path, gmail, deliver):
    live = tmp_path / "live.sqlite3"
    instance = tmp_path / "instance"
    app = _app(f"sqlite:///{live}", instance)
    with app.app_context():
        init_db()
        box = add_mailbox(get_session(), MailboxSpec(MAILBOX, AuthKind.SANDBOX, gmail.url, None, "Support"))
        install_defaults(get_session(), box)
        box_id = box.id
    for n in range(10):
        deliver(make_email(f"Before {n}", sender=f"early{n}@example.org"))

    stop = threading.Event()
    rounds = {"n": 0}
    problems: list[BaseException] = []

    def arriving() -> None:
        """Mail keeps coming and being filed (with the rules) in its own connection, as a worker does."""
        try:
            client = _client(gmail.url)
            with app.app_context():
                session = get_session()
                while not stop.is_set():
                    n = rounds["n"]
                    deliver(make_email(f"During {n}", sender=f"c{n}@example.org"))
                    deliver(make_email(f"During {n} again", sender=f"d{n}@example.org"))
                    sync_with_rules(session, box_id, client)
                    rounds["n"] += 1
        except BaseException as exc:
            problems.append(exc)

    worker = threading.Thread(target=arriving, daemon=True)
    worker.start()
    try:
        while rounds["n"] < 3 and worker.is_alive():
            threading.Event().wait(0.05)
        committed = _gmail_ids(live)
        backup = tmp_path / "postdesk-backup.sqlite3"
        done = run_postdesk(["backup", str(backup)], _env(f"sqlite:///{live}", instance))
        assert done.returncode == 0, done.stderr
        assert f"backed up to {backup}" in done.stdout
        seen_at_backup_end = rounds["n"]
        while rounds["n"] < seen_at_backup_end + 2 and worker.is_alive():
            threading.Event().wait(0.05)
    finally:
        stop.set()
        worker.join(timeout=60)
    assert not problems, problems
    assert len(committed) >= 10 + 2 * 3
    # A second backup to the same name is refused, nothing overwritten.
    again = run_postdesk(["backup", str(backup)], _env(f"sqlite:///{live}", instance))
    assert again.returncode == 2 and "exists" in again.stderr

    restored = tmp_path / "restored.sqlite3"
    env = _env(f"sqlite:///{restored}", tmp_path / "instance-2")
    if (instance / "encryption.key").exists():  # the key travels with the backup (docs: Backups)
        env["POSTDESK_ENCRYPTION_KEY"] = (instance / "encryption.key").read_text().strip()
    done = run_postdesk(["restore", str(backup)], env)
    assert done.returncode == 0, done.stderr
    assert "1 mailbox(es) will read their recent mail again" in done.stdout
    assert committed <= _gmail_ids(restored), "a message committed before the backup is missing"

    # Restoring over a database that is not empty is refused.
    refused = run_postdesk(["restore", str(backup)], env)
    assert refused.returncode == 2 and "not empty" in refused.stderr

    # The next sync files what came after the backup, each message once, and answers none of it again.
    after = _app(f"sqlite:///{restored}", tmp_path / "instance-2")
    with after.app_context():
        session = get_session()
        assert session.get(Mailbox, box_id).history_id is None
        outbox_before = session.scalar(select(func.count()).select_from(Outbox))
        client = _client(gmail.url)
        sync_with_rules(session, box_id, client)
        everything = {
            m["id"]
            for m in client.service.users()
            .messages()
            .list(userId=MAILBOX, maxResults=500)
            .execute()["messages"]
        }
        filed = list(session.scalars(select(Message.gmail_id)))
        assert set(filed) == everything and len(filed) == len(set(filed))
        assert session.scalar(select(func.count()).select_from(Outbox)) == outbox_before
        threads = session.scalar(select(func.count(func.distinct(Message.gmail_thread_id))))
        assert session.scalar(select(func.count()).select_from(Ticket)) == threads
    get_engine(after).dispose()
    get_engine(app).dispose()


def test_restore_refuses_what_is_not_a_postdesk_backup(tmp_path):
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database at all" * 100)
    other = tmp_path / "other.sqlite3"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE notes (x)")
    env = _env(f"sqlite:///{tmp_path / 'target.sqlite3'}", tmp_path / "instance")
    for file, expected in ((junk, "is not a Postdesk backup"), (other, "is not a Postdesk database"),
                           (tmp_path / "missing", "file not found")):  # fmt: skip
        done = run_postdesk(["restore", str(file)], env)
        assert done.returncode == 2 and expected in done.stderr, done.stderr


@pytest.mark.postgres
def test_the_postgresql_procedure_pg_dump_pg_restore_then_after_restore(
    database_url, tmp_path, gmail, deliver
):
    from matrix import postgres_binaries

    binaries = postgres_binaries()
    assert binaries is not None, "the PostgreSQL pass runs with PostgreSQL's binaries"
    app = _app(database_url, tmp_path / "instance")
    with app.app_context():
        init_db()
        box = add_mailbox(get_session(), MailboxSpec(MAILBOX, AuthKind.SANDBOX, gmail.url, None, "Support"))
        box_id = box.id
        deliver(make_email("Before the dump"))
        sync_with_rules(get_session(), box_id, _client(gmail.url))
    refused = run_postdesk(["backup", str(tmp_path / "x")], _env(database_url, tmp_path / "instance"))
    assert refused.returncode == 2 and "pg_dump" in refused.stderr

    source = make_url(database_url)
    dump = tmp_path / "postdesk.dump"
    connection = ["--host", str(source.host), "--port", str(source.port), "--username", str(source.username)]
    pg_env = os.environ | {"PGPASSWORD": source.password or ""}
    subprocess.run([str(binaries / "pg_dump"), "--format=custom", "--file", str(dump), *connection,
                    str(source.database)], check=True, env=pg_env, timeout=120)  # fmt: skip
    deliver(make_email("After the dump", sender="late@example.org"))

    from conftest import fresh_database

    with fresh_database(tmp_path, "restored") as target_url:
        target = make_url(target_url)
        subprocess.run([str(binaries / "pg_restore"), "--no-owner", "--dbname", str(target.database),
                        *connection, str(dump)], check=True, env=pg_env, timeout=120)  # fmt: skip
        done = run_postdesk(["after-restore"], _env(target_url, tmp_path / "instance"))
        assert done.returncode == 0, done.stderr
        restored = _app(target_url, tmp_path / "instance")
        with restored.app_context():
            session = get_session()
            assert session.scalar(select(func.count()).select_from(Ticket)) == 1
            sync_with_rules(session, box_id, _client(gmail.url))
            subjects = set(session.scalars(select(Ticket.subject)))
            assert subjects == {"Before the dump", "After the dump"}
        get_engine(restored).dispose()
    get_engine(app).dispose()


SYSTEMD_HARDENING = ("NoNewPrivileges=true", "ProtectSystem=strict", "PrivateTmp=true", "ProtectHome=true",
                     "User=postdesk", "Restart=on-failure", "EnvironmentFile=/etc/postdesk/postdesk.env")  # fmt: skip


@pytest.mark.parametrize("unit", ["postdesk-web.service", "postdesk-worker.service"])
def test_the_systemd_units_verify_and_are_hardened(unit, tmp_path):
    text = (ROOT / "deploy" / unit).read_text(encoding="utf-8")
    assert all(line in text.splitlines() for line in SYSTEMD_HARDENING)
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("LOUD: systemd-analyze is not on this machine: the units' syntax is not verified")
    # The units name the installed command; point that at this environment's so verify can find it.
    here = Path(postdesk_command())
    (tmp_path / unit).write_text(text.replace("/opt/postdesk/venv/bin/postdesk", str(here.resolve())))
    result = subprocess.run(
        [analyze, "verify", str(tmp_path / unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and result.stderr.strip() == "" and result.stdout.strip() == "", (
        result.stderr
    )
    # The check can fail: a misspelt hardening line is reported.
    broken = tmp_path / f"broken-{unit}"
    broken.write_text((tmp_path / unit).read_text().replace("ProtectSystem=strict", "ProtectSystem=strictly"))
    result = subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True, timeout=60)
    assert "ProtectSystem" in result.stderr or "protect system" in result.stderr


def test_the_environment_file_names_only_real_settings():
    from server.base.config import Defaults, WebDefaults

    known = {name for name in [*dir(Defaults), *dir(WebDefaults)] if name.isupper()} | {"INSTANCE_PATH"}
    lines = [line for line in (ROOT / "deploy" / "postdesk.env").read_text().splitlines()
             if line and not line.startswith("#")]  # fmt: skip
    names = [line.split("=", 1)[0] for line in lines]
    assert names and all(name.startswith("POSTDESK_") and name[9:] in known for name in names), names
