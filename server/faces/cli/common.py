"""What every command group shares: the one-line error, the mailbox by address, reading a file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from rules.documents import DocumentError, load_document
from server.base.db import get_session
from server.base.models import Mailbox


class CliError(click.ClickException):
    """A one-line error with exit code 2 (the code of a usage error)."""

    exit_code = 2


MAX_FILE_BYTES = 2 * 1024 * 1024


def database_problem(app: Flask) -> CliError | None:
    """What stops the database from serving this release — unreachable, empty or at another schema —
    as one line saying what to do; None when it is ready."""
    from server.base.db import get_engine
    from server.base.migrations import database_revisions, head_revisions

    engine = get_engine(app)
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            found = database_revisions(connection)
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
        return CliError(f"cannot use the database {where}: {reason}")
    wanted = head_revisions()
    if found == wanted:
        return None
    state = ", ".join(sorted(found)) or "no Postdesk tables"
    return CliError(
        f"the database {where} is not at this release's schema ({state}; wanted "
        f"{', '.join(sorted(wanted))}): run `postdesk init-db` first (it creates or upgrades it)"
    )


def mailbox_named(address: str) -> Mailbox:
    mailbox = get_session().scalar(select(Mailbox).where(Mailbox.address == address.strip().lower()))
    if mailbox is None:
        raise CliError(f"no mailbox {address}: see postdesk mailbox list")
    return mailbox


def retime_batch() -> int:
    """``RETIME_BATCH`` from the configuration, as a positive number (a usage error otherwise)."""
    value = current_app.config["RETIME_BATCH"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CliError(f"POSTDESK_RETIME_BATCH must be a positive whole number, not {value!r}")
    return value


def read_text_file(path: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise CliError(f"file not found: {path}")
    if file.stat().st_size > MAX_FILE_BYTES:
        raise CliError(f"{path} is larger than {MAX_FILE_BYTES // 1024} KB")
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path} as UTF-8 text: {exc}") from exc


def yaml_file(path: str) -> Any:
    """The data of a YAML (or JSON) file, or a one-line error."""
    try:
        return load_document(read_text_file(path))
    except DocumentError as exc:
        raise CliError(f"{path} is not valid YAML or JSON: {exc}") from exc


def problems_error(path: str, problems: Sequence[str]) -> CliError:
    """Every problem of a file at once, one per line, so one edit can fix them all."""
    return CliError(f"{path} has {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems))
