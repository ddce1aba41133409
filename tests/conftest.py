"""Fixtures every test builds on: ``app``, ``client``, ``runner``, ``session``, ``gmail`` (a running
sandbox) and the helpers ``deliver`` and ``gmail_client``.

The database is SQLite in a temporary folder, or a fresh PostgreSQL database per test when
``POSTDESK_TEST_DATABASE_URL`` names a PostgreSQL server (tests/matrix.py runs the suite both ways).
"""

from __future__ import annotations

import os
import shutil
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from helpers import MAILBOX
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from server import create_app
from server.base.db import get_engine, get_session, init_db
from server.gmail.client import GmailClient, RetryPolicy
from server.gmail.sandbox import SandboxServer

#: The add-on tests' fixtures (keys, desk, addon) for every test module that needs them.
pytest_plugins = ["addon_fixtures", "web_support", "api_support"]


def _backend() -> str:
    url = os.environ.get("POSTDESK_TEST_DATABASE_URL")
    return make_url(url).get_backend_name() if url else "sqlite"


def pytest_report_header(config: pytest.Config) -> str:
    return f"postdesk test database: {_backend()}"


#: The fixtures that give a test a database of the run (every other database fixture builds on them).
DATABASE_FIXTURES = frozenset({"database_url", "empty_database_url", "second_database_url"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The two passes of tests/matrix.py. Tests marked ``postgres`` (the task queue lives in
    PostgreSQL, or the test starts a server of its own) run in the PostgreSQL pass only. Other tests
    that use no database of the run (none of
    :data:`DATABASE_FIXTURES` among their fixtures: the rule engine, MIME parsing, the sandbox, the
    layering, the browser tests, which start ``postdesk demo`` on its own SQLite file) would do
    exactly the same twice: they run in the SQLite pass only. Either is said once, never skipped."""
    if os.environ.get("POSTDESK_SOAK_BROKEN") != "1":
        # Broken builds under the soak (two more soaks, about 70 s each): `make soak-short` runs them.
        broken = [item for item in items if item.get_closest_marker("broken_build")]
        if broken:
            config.hook.pytest_deselected(items=broken)
            items[:] = [item for item in items if not item.get_closest_marker("broken_build")]
            print(f"\npostdesk: the broken-build soaks left out ({len(broken)}): make soak-short runs them")
    if _backend() == "postgresql":
        left_out = [item for item in items if not DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
                    and not item.get_closest_marker("postgres")]  # fmt: skip
        note = "tests that use no database ran in the SQLite pass"
    else:
        left_out = [item for item in items if item.get_closest_marker("postgres")]
        note = "PostgreSQL-only tests left for the PostgreSQL pass"
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        leaving = set(left_out)
        items[:] = [item for item in items if item not in leaving]
        print(f"\npostdesk: {len(left_out)} {note}")


_PAGES: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep the soak's page (tests/test_soak.py records it; with xdist it arrives with the report)."""
    if report.when == "call":
        _PAGES.extend(str(value) for name, value in report.user_properties if name == "soak_page")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for page in _PAGES:
        terminalreporter.write_sep("-", "the soak")
        terminalreporter.write_line(page)


@contextmanager
def fresh_database(tmp_path: Path, name: str = "postdesk", template: str | None = None) -> Iterator[str]:
    """A new database: a SQLite file, or a new database on the PostgreSQL server under test; a copy
    of ``template`` (a migrated database, see :func:`migrated_template`) when one is given."""
    base = os.environ.get("POSTDESK_TEST_DATABASE_URL")
    if not base:
        path = tmp_path / f"{name}.sqlite3"
        if template:
            shutil.copyfile(make_url(template).database or "", path)
        yield f"sqlite:///{path}"
        return
    server_url = make_url(base)
    database = f"postdesk_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{make_url(template).database}"' if template else ""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        if copy and connection.dialect.server_version_info >= (15,):
            copy += " STRATEGY FILE_COPY"  # a small database: ~3× faster than writing it all to the WAL
        connection.execute(text(f'CREATE DATABASE "{database}"{copy}'))
    try:
        yield server_url.set(database=database).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated to the newest schema once per test process; each test's database is a
    copy of it (a file copy, or PostgreSQL's CREATE DATABASE … TEMPLATE), not a new migration."""
    from server.base.db import make_engine
    from server.base.migrations import upgrade_to_head

    folder = tmp_path_factory.mktemp("template")
    with fresh_database(folder, "template") as url:
        engine = make_engine(url)
        upgrade_to_head(engine)
        if engine.dialect.name == "sqlite":
            with engine.connect() as connection:  # everything into the one file that is copied
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()  # PostgreSQL copies a template only while nobody is connected to it
        yield url


@pytest.fixture
def database_url(tmp_path: Path, migrated_template: str) -> Iterator[str]:
    """The test's own database, already at the newest schema."""
    with fresh_database(tmp_path, template=migrated_template) as url:
        yield url


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """An empty database, for tests of the migrations themselves."""
    with fresh_database(tmp_path, "empty") as url:
        yield url


@pytest.fixture
def second_database_url(tmp_path: Path, migrated_template: str) -> Iterator[str]:
    """Another database at the newest schema, for comparing two runs side by side."""
    with fresh_database(tmp_path, "second", template=migrated_template) as url:
        yield url


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "GMAIL_BACKOFF_BASE": 0.01,
            "GMAIL_BACKOFF_CAP": 0.05,
        }
    )
    with app.app_context():
        init_db()
    yield app
    get_engine(app).dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def session(app: Flask) -> Iterator[Session]:
    with app.app_context():
        yield get_session()


@pytest.fixture
def gmail() -> Iterator[SandboxServer]:
    """A running Gmail sandbox on a free loopback port (rate limit off unless a test turns it on)."""
    with SandboxServer(enforce_rate_limit=False, seed=1234) as server:
        yield server


@pytest.fixture
def deliver(gmail: SandboxServer) -> Callable[..., dict[str, Any]]:
    """Deliver a raw RFC 822 message into a sandbox mailbox through the control API."""
    import json

    def _deliver(raw: bytes, to: str = MAILBOX) -> dict[str, Any]:
        request = urllib.request.Request(f"{gmail.url}sandbox/users/{to}/messages", data=raw, method="POST")
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())

    return _deliver


@pytest.fixture
def gmail_client(gmail: SandboxServer) -> Iterator[Callable[..., GmailClient]]:
    """A real Postdesk Gmail client (real google-api-python-client) pointed at the sandbox."""
    from google.auth.credentials import AnonymousCredentials

    made: list[GmailClient] = []

    def _client(address: str = MAILBOX, **options: Any) -> GmailClient:
        options.setdefault("retry", RetryPolicy(max_attempts=8, base=0.001, cap=0.01))
        options.setdefault("sleep", lambda _seconds: None)
        made.append(GmailClient(address, AnonymousCredentials(), gmail.url, **options))
        return made[-1]

    yield _client
    for client in made:
        client.close()


@pytest.fixture(scope="session")
def service_account_info() -> dict[str, str]:
    """A syntactically real service-account key (a fresh RSA key; it opens nothing at Google)."""
    from helpers import service_account_key

    return service_account_key()


@pytest.fixture
def mailbox(session: Session, gmail: SandboxServer) -> Any:
    """The shared mailbox support@example.com connected to the sandbox, with one agent (Anna)."""
    from server.base.models import AuthKind
    from server.services.accounts import MailboxSpec, add_mailbox, ensure_agent

    box = add_mailbox(session, MailboxSpec(MAILBOX, AuthKind.SANDBOX, gmail.url, None, "Support"))
    ensure_agent(session, "anna@example.com", "Anna", mailbox=box)
    return box


@pytest.fixture
def sync(session: Session, mailbox: Any, gmail_client: Callable[..., GmailClient]) -> Callable[..., Any]:
    """Run one sync of the test mailbox with a real client against the sandbox."""
    from server.flows.sync_runner import sync_with_rules as sync_mailbox

    client = gmail_client()

    def _sync(**options: Any) -> Any:
        return sync_mailbox(session, mailbox.id, client, **options)

    _sync.client = client  # type: ignore[attr-defined]
    return _sync


@pytest.fixture
def helpdesk(session: Session, gmail: SandboxServer, gmail_client: Callable[..., GmailClient]) -> Helpdesk:
    """Mailboxes as a team runs them, with the default rules and templates."""
    return Helpdesk(session, gmail, gmail_client)


class Helpdesk:
    """Connected sandbox mailboxes: ``connect`` one, ``cycle`` = sync + rules + send the Outbox."""

    def __init__(
        self, session: Session, gmail: SandboxServer, gmail_client: Callable[..., GmailClient]
    ) -> None:
        self.session, self.gmail, self._gmail_client = session, gmail, gmail_client
        self.mailboxes: dict[str, Any] = {}
        self.clients: dict[str, GmailClient] = {}

    def connect(self, address: str, agents: tuple[str, ...] | list[str] = ()) -> Any:
        from server.base.models import AuthKind, Role
        from server.services.accounts import MailboxSpec, add_mailbox, ensure_agent
        from server.services.defaults import install_defaults

        name = address.split("@")[0].title()
        box = add_mailbox(self.session, MailboxSpec(address, AuthKind.SANDBOX, self.gmail.url, None, name))
        for index, email in enumerate(agents):
            role = Role.ADMIN if index == 0 else Role.AGENT
            ensure_agent(self.session, email, email.split("@")[0].title(), role=role, mailbox=box)
        install_defaults(self.session, box)
        self.session.commit()
        self.mailboxes[address] = box
        self.clients[address] = self._gmail_client(address)
        self.cycle(address)  # the first (full) sync of an empty mailbox
        return box

    def cycle(self, address: str = MAILBOX, *, send: bool = True) -> Any:
        from server.flows.sync_runner import sync_with_rules as sync_mailbox
        from server.gmail.send import deliver_due

        box = self.mailboxes[address]
        result = sync_mailbox(self.session, box.id, self.clients[address])
        if send:
            result.delivery = deliver_due(self.session, box.id, self.clients[address])
        return result

    def sent_by(self, address: str) -> list[Any]:
        """Messages in the mailbox's SENT label, oldest first (what Postdesk or its people sent)."""
        user = self.gmail.sandbox.user(address)
        return sorted((m for m in user.messages.values() if "SENT" in m.label_ids), key=lambda m: m.id)
