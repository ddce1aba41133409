"""The scheduled jobs: each opens an app context and makes one call into the module that owns the work.

APScheduler refers to them by text (``"server.jobs:poll_mailboxes"``). The app is built once per
process from the environment, as the worker's own.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import cache

from flask import Flask

log = logging.getLogger(__name__)


@cache
def worker_app() -> Flask:
    from server import create_app

    return create_app()


def poll_mailboxes() -> None:
    """Sync every mailbox, run its rules and send the Outbox mail that is due."""
    from sqlalchemy import select

    from server.db import get_session
    from server.models import Mailbox
    from server.sync_runner import SyncRunner

    app = worker_app()
    with app.app_context():
        ids = list(get_session().scalars(select(Mailbox.id).order_by(Mailbox.address)))
    SyncRunner(app, echo=lambda message, **_: log.info("sync %s", message)).run_once(ids)


def run_time_rules() -> None:
    """Run every mailbox's ``time`` rules (each fires once per ticket per condition change)."""
    from sqlalchemy import select

    from server.automation import run_time_rules as run_for_mailbox
    from server.db import get_session
    from server.models import Mailbox

    with worker_app().app_context():
        session = get_session()
        for mailbox in session.scalars(select(Mailbox).order_by(Mailbox.address)).all():
            fired = run_for_mailbox(session, mailbox, now=datetime.now(UTC))
            if fired:
                log.info("time_rules mailbox=%s fired=%d", mailbox.address, fired)


def record_sla_breaches() -> None:
    """Write a ``sla_breached`` Event for each deadline that has passed since the last look."""
    from server.db import get_session
    from server.tickets.deadlines import record_breaches

    with worker_app().app_context():
        count = record_breaches(get_session(), now=datetime.now(UTC))
    if count:
        log.info("sla_breaches recorded=%d", count)
