"""The database: one engine per app, one session per app context, and ``postdesk init-db``.

SQLite runs in WAL mode with foreign keys on and a busy timeout, so the web process, the worker and a
CLI command can share one file. The schema is owned by Alembic (server/base/migrations); ``init_db``
upgrades to head.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import click
from flask import Flask, current_app, g
from flask.cli import with_appcontext
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

# The help centre's tables and the knowledge index's vectors join Base.metadata with the models.
import server.base.help_tables
import server.base.knowledge_tables  # noqa: F401

_EXTENSION = "postdesk.db"
_T = TypeVar("_T")
SQLITE_BUSY_TIMEOUT_MS = 15_000


def _enable_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with Postdesk's connection settings (SQLite pragmas, pool pre-ping)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _enable_sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def get_engine(app: Flask | None = None) -> Engine:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    engine: Engine = app.extensions[_EXTENSION]["engine"]
    return engine


def get_session() -> Session:
    """The session of the current app context, opened on first use and closed at teardown."""
    if "db_session" not in g:
        g.db_session = current_app.extensions[_EXTENSION]["sessionmaker"]()
    session: Session = g.db_session
    return session


def _close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def upsert(session: Session, table: Any, keys: dict[str, Any], values: dict[str, Any]) -> None:
    """Insert the row with these keys, or update its ``values`` if it exists: one statement, no race.

    SQLite and PostgreSQL both spell it ``INSERT … ON CONFLICT (keys) DO UPDATE``.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    statement = insert(table).values(**keys, **values)
    session.execute(statement.on_conflict_do_update(index_elements=list(keys), set_=values))


_MEMO = "postdesk_memo"


@contextmanager
def memo_scope(session: Session) -> Iterator[None]:
    """Within this block, :func:`memo` keeps what it computes (one page of sync: a mailbox's SLA
    policy, team addresses, templates are read once, not once per message). The block is one
    transaction that changes none of what is kept; nested blocks share the outer one's memory."""
    outer = _MEMO in session.info
    if not outer:
        session.info[_MEMO] = {}
    try:
        yield
    finally:
        if not outer:
            session.info.pop(_MEMO, None)


def memo(session: Session, key: Hashable, compute: Callable[[], _T]) -> _T:
    """``compute()``, remembered under ``key`` inside a :func:`memo_scope` (computed anew outside)."""
    store: dict[Hashable, Any] | None = session.info.get(_MEMO)
    if store is None:
        return compute()
    if key not in store:
        store[key] = compute()
    return cast(_T, store[key])


def lost_to_another_transaction(exc: BaseException) -> bool:
    """Whether PostgreSQL undid this transaction for another one's sake — a deadlock or a serialization
    failure (SQLSTATE class 40): doing it again is right, failing the request is not."""
    return str(getattr(getattr(exc, "orig", None), "sqlstate", None) or "").startswith("40")


#: Tries of a request whose transaction PostgreSQL undid for a concurrent one (a deadlock between a
#: request and a worker's batch: the batch wins, the request waits for it and then passes).
TRIES = 3
_COMMITS = "postdesk_commits"


def _count_commit(session: Session) -> None:
    session.info[_COMMITS] = session.info.get(_COMMITS, 0) + 1


def _commits() -> int:
    session = g.get("db_session")
    return int(session.info.get(_COMMITS, 0)) if session is not None else 0


def again_when_undone(call: Callable[[], _T], tries: int = TRIES) -> _T:
    """``call()``, called again (up to ``tries`` times in all) while PostgreSQL undoes its transaction
    for another one's sake — but only while nothing it did was committed: a call that committed a part
    before the undone part is not repeated (the error goes up, and the request answers 503)."""
    for attempt in range(1, tries + 1):
        commits = _commits()  # no session is opened for it: a request without the database costs nothing
        try:
            return call()
        except OperationalError as exc:
            if attempt == tries or not lost_to_another_transaction(exc) or _commits() != commits:
                raise
            get_session().rollback()
    raise AssertionError("unreachable: the last try returns or raises")


def database_is_reachable() -> bool:
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:  # any driver error means "not healthy"; /healthz reports it, never raises
        return False
    return True


def init_db(app: Flask | None = None) -> None:
    """Create or upgrade the schema to the newest migration."""
    from server.base.migrations import upgrade_to_head

    upgrade_to_head(get_engine(app))


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the database or upgrade it to the newest schema."""
    init_db()
    click.echo(f"database ready: {get_engine().url.render_as_string(hide_password=True)}")


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"])
    sessions = sessionmaker(bind=engine)
    event.listen(sessions, "after_commit", _count_commit)
    app.extensions[_EXTENSION] = {"engine": engine, "sessionmaker": sessions}
    app.teardown_appcontext(_close_session)
    app.cli.add_command(init_db_command)
