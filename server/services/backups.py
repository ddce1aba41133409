"""Backups that restore: SQLite through its online backup API, and what must happen after any restore.

A backup of a SQLite database is one consistent snapshot, taken while the worker and the web keep
writing (the copy runs in one step inside a read transaction; WAL lets writers go on). PostgreSQL is
backed up with ``pg_dump`` and restored with ``pg_restore`` (docs/deployment.md, "Backups"); after
either, :func:`after_restore` puts the mailboxes right:

* every mailbox reads its last days of mail again (a full sync): what is not in the restored database
  — mail that came after the backup — is filed, what is there is skipped. Rules do not run on that
  mail: answers, acknowledgements and notes made after the backup are not in the restored Outbox, so
  Postdesk cannot know what already went out, and it never sends twice;
* every open ticket's Gmail labels are applied again (the restored state wins over labels set after
  the backup).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, func, inspect, select, update
from sqlalchemy.orm import Session

from server.base.models import Mailbox, SyncState
from server.services.labels import request_all
from server.services.mailbox_settings import label_settings


class BackupError(RuntimeError):
    """A backup or restore that cannot be done (says why and what to do instead)."""


@dataclass(frozen=True)
class Restored:
    mailboxes: int
    tickets_relabelled: int


def sqlite_path(engine: Engine) -> Path:
    if engine.dialect.name != "sqlite":
        raise BackupError(
            f"the database is {engine.dialect.name}: back it up with pg_dump and restore it with "
            "pg_restore, then run postdesk after-restore (docs/deployment.md#backups)"
        )
    database = engine.url.database
    if not database or database == ":memory:":
        raise BackupError("an in-memory database has nothing to back up")
    return Path(database)


def backup_sqlite(engine: Engine, target: Path) -> None:
    """A consistent copy of the database into ``target`` (a new file), checked before it is kept."""
    source = sqlite_path(engine)
    if target.exists():
        raise BackupError(f"{target} exists: choose a new file name")
    draft = target.with_name(f".{target.name}.partial")
    draft.unlink(missing_ok=True)
    try:
        with _connect(source) as origin, _connect(draft) as copy:
            origin.backup(copy)  # every page in one step: one snapshot
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            _check(copy, str(target))
        draft.rename(target)
    except sqlite3.Error as exc:
        raise BackupError(f"the backup failed: {exc}") from exc
    finally:
        draft.unlink(missing_ok=True)


def restore_sqlite(engine: Engine, backup: Path) -> None:
    """The backup's content into the configured database, which must be empty (no tables)."""
    target = sqlite_path(engine)
    if not backup.is_file():
        raise BackupError(f"file not found: {backup}")
    if inspect(engine).get_table_names():
        raise BackupError(f"{target} is not empty: restore into a new database (a new POSTDESK_DATABASE_URL)")
    engine.dispose()
    try:
        with _connect(backup) as origin:
            _check(origin, str(backup))
            with _connect(target) as copy:
                origin.backup(copy)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{backup} is not a Postdesk backup: {exc}") from exc


def _connect(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path), timeout=30)


def _check(connection: sqlite3.Connection, name: str) -> None:
    (verdict,) = connection.execute("PRAGMA integrity_check").fetchone()
    if verdict != "ok":
        raise BackupError(f"{name} is damaged: {verdict}")
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not {"alembic_version", "mailboxes", "tickets"} <= tables:
        raise BackupError(f"{name} is not a Postdesk database")


def after_restore(session: Session) -> Restored:
    """Mark every mailbox for a full sync without rules, and every open ticket for new labels."""
    mailboxes = session.scalar(select(func.count()).select_from(Mailbox)) or 0
    session.execute(
        update(Mailbox).values(
            history_id=None,
            last_sync_at=None,
            sync_state=SyncState.NEW.value,
            sync_error=None,
            watch_expires_at=None,
        )  # fmt: skip
    )
    session.commit()
    relabelled = 0
    for mailbox in session.scalars(select(Mailbox).order_by(Mailbox.id)).all():
        if label_settings(mailbox)["enabled"]:
            relabelled += request_all(session, mailbox)
    return Restored(mailboxes, relabelled)
