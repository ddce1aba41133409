"""Running sync for the CLI and the worker: which mailboxes, how often, what to print.

This is where the Gmail adapter (:mod:`server.gmail.sync`) meets the rules: :func:`sync_with_rules`
is sync with the mailbox's rules as its event handler, and every face that syncs calls it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from server.base.db import get_session
from server.base.models import GmailUsage, Mailbox
from server.gmail.client import GmailClient, client_for_mailbox
from server.gmail.errors import GmailError
from server.gmail.send import deliver_due
from server.gmail.sync import SyncResult, sync_mailbox
from server.services.automation import run_rules_on_events
from server.services.label_reading import read_back
from server.services.labels import apply_wanted

log = logging.getLogger(__name__)
#: A full sync prints a progress line every this many messages.
PROGRESS_EVERY = 500


def sync_with_rules(session: Session, mailbox_id: int, client: GmailClient, **options: Any) -> SyncResult:
    """One sync of the mailbox with its rules run on every page's new events (same transaction)."""
    return sync_mailbox(
        session, mailbox_id, client, on_events=run_rules_on_events, on_labels=read_back, **options
    )


def record_usage(session: Session, mailbox_id: int, units: int, *, day: date | None = None) -> None:
    """Add ``units`` to the mailbox's Gmail quota spent on ``day`` (UTC, today by default); committed."""
    if units <= 0:
        return
    session.rollback()  # whatever the failed run left open is not ours to commit
    dialect = session.get_bind().dialect.name
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    statement = insert(GmailUsage).values(
        mailbox_id=mailbox_id, day=day or datetime.now(UTC).date(), units=units
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["mailbox_id", "day"], set_={"units": GmailUsage.units + statement.excluded.units}
        )
    )
    session.commit()


class SyncRunner:
    def __init__(self, app: Flask, echo: Callable[..., Any], *, send: bool = True) -> None:
        self.app = app
        self.echo = echo
        self.send = send
        self.stopping = threading.Event()
        self._last_progress: dict[str, int] = {}

    def mailbox_ids(self, address: str | None) -> list[int]:
        with self.app.app_context():
            query = select(Mailbox.id).order_by(Mailbox.address)
            if address:
                query = query.where(Mailbox.address == address.strip().lower())
            ids = list(get_session().scalars(query))
        if address and not ids:
            raise LookupError(f"no mailbox {address}: see postdesk mailbox list")
        return ids

    def _progress(self, address: str, done: int, total: int) -> None:
        last = self._last_progress.get(address, 0)
        if done - last >= PROGRESS_EVERY or (done == total and total >= PROGRESS_EVERY):
            self._last_progress[address] = done
            self.echo(f"  full sync {address}: {done}/{total} messages")

    def run_once(self, mailbox_ids: list[int]) -> bool:
        """Sync each mailbox once; a failing mailbox is reported and the others still run."""
        ok = True
        for mailbox_id in mailbox_ids:
            if self.stopping.is_set():
                break
            with self.app.app_context():
                session = get_session()
                mailbox = session.get(Mailbox, mailbox_id)
                if mailbox is None:
                    continue
                if mailbox.paused:
                    self.echo(f"{mailbox.address}: paused, not synced")
                    continue
                address = mailbox.address
                try:
                    with client_for_mailbox(mailbox) as client:
                        try:
                            result = sync_with_rules(
                                session,
                                mailbox_id,
                                client,
                                full_sync_days=self.app.config["FULL_SYNC_DAYS"],
                                progress=self._progress,
                            )
                            summary = result.summary()
                            if self.send:
                                report = deliver_due(
                                    session,
                                    mailbox_id,
                                    client,
                                    claim_seconds=self.app.config["OUTBOX_CLAIM_SECONDS"],
                                )
                                summary += f", {report.sent} emails sent"
                                if report.failed or report.postponed:
                                    summary += f" ({report.failed} failed, {report.postponed} to retry)"
                                labelled = apply_wanted(session, mailbox, client)
                                if labelled.tickets:
                                    summary += f", {labelled.tickets} tickets labelled"
                        finally:
                            record_usage(session, mailbox_id, client.meter.units_total)
                except GmailError as exc:
                    ok = False
                    self.echo(f"{address}: sync failed: {exc}", err=True)
                    continue
            self.echo(summary)
        return ok

    def poll_forever(self, mailbox_ids: list[int], every: float, *, handle_signals: bool = True) -> None:
        """Sync every ``every`` seconds until SIGINT/SIGTERM; the current sync finishes first."""
        if handle_signals:
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: self.stopping.set())
        while not self.stopping.is_set():
            started = time.monotonic()
            self.run_once(mailbox_ids)
            self.stopping.wait(max(0.0, every - (time.monotonic() - started)))
        self.echo("sync stopped")
