"""The worker's work, and the clock's jobs that have it done.

The clock (APScheduler, in the worker that holds the lease) refers to its jobs by text
(``"server.flows.clock.jobs:poll_mailboxes"``); each hands its work to :func:`server.flows.tasks.enqueue`, which does it
at once (``TASKS=inline``) or queues it for any worker (``TASKS=procrastinate``). The work itself
(:func:`sync_mailbox`, :func:`send_mailbox`, :func:`time_rules_of` per mailbox, and
:data:`GLOBAL_WORK`) opens an app context and makes one call into the module that owns it. The app is
built once per process from the environment, as the worker's own.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Flask

from server.flows import tasks

log = logging.getLogger(__name__)


_app: Flask | None = None


def use_app(app: Flask) -> None:
    """Run the jobs against ``app`` (the worker's own app, e.g. the demo's) instead of the environment's."""
    global _app
    _app = app


def worker_app() -> Flask:
    """The app the jobs run against: the one :func:`use_app` was given (``run_worker`` does that
    before the clock starts). The clock never builds an app itself: that is the faces' part."""
    if _app is None:
        raise RuntimeError("the jobs have no app: the worker calls use_app(app) before it runs them")
    return _app


def _enqueue(kind: str, *, mailbox_id: int | None = None, name: str | None = None) -> None:
    tasks.enqueue(worker_app(), kind, mailbox_id=mailbox_id, name=name)


def _mailbox_ids() -> list[int]:
    from sqlalchemy import select

    from server.base.db import get_session
    from server.base.models import Mailbox

    with worker_app().app_context():
        return list(get_session().scalars(select(Mailbox.id).order_by(Mailbox.address)))


# --- the clock's jobs ------------------------------------------------------------------------------
def poll_mailboxes() -> None:
    """Sync every mailbox, run its rules and send the Outbox mail that is due (a task per mailbox)."""
    for mailbox_id in _mailbox_ids():
        _enqueue("sync", mailbox_id=mailbox_id)


def sync_pushed() -> None:
    """Sync the mailboxes a Gmail push notification asked for (server.faces.push), at once."""
    from server.base.db import get_session
    from server.services.watches import wanted_syncs

    with worker_app().app_context():
        ids = wanted_syncs(get_session())
    for mailbox_id in ids:
        _enqueue("sync", mailbox_id=mailbox_id)


def run_time_rules() -> None:
    """Run every mailbox's ``time`` rules (each fires once per ticket per condition change)."""
    for mailbox_id in _mailbox_ids():
        _enqueue("time_rules", mailbox_id=mailbox_id)


def send_reminders() -> None:
    _enqueue("global", name="reminders")


def send_weekly_reports() -> None:
    _enqueue("global", name="weekly_reports")


def finish_retiming() -> None:
    _enqueue("global", name="finish_retiming")


def forget_expired_sessions() -> None:
    _enqueue("global", name="forget_sessions")


def keep_watches() -> None:
    _enqueue("global", name="keep_watches")


def deliver_webhooks() -> None:
    _enqueue("global", name="webhooks")


def prune_webhooks() -> None:
    _enqueue("global", name="prune_webhooks")


def encode_knowledge() -> None:
    _enqueue("global", name="knowledge_vectors")


def recover_stalled() -> None:
    """Put the tasks of dead workers back in the queue (``TASKS=procrastinate``)."""
    tasks.recover_stalled(worker_app())


def prune_tasks() -> None:
    """Forget the queue's failed tasks after a week (``TASKS=procrastinate``)."""
    tasks.prune_finished(worker_app())


# --- the work, per mailbox -------------------------------------------------------------------------
def sync_mailbox(mailbox_id: int) -> None:
    """Sync one mailbox, run its rules, send its Outbox mail that is due and put its labels."""
    from server.flows.sync_runner import SyncRunner

    SyncRunner(worker_app(), echo=lambda message, **_: log.info("sync %s", message)).run_once([mailbox_id])


def send_mailbox(mailbox_id: int) -> None:
    """Send the mailbox's Outbox mail that is due now (the next poll retries what fails)."""
    from server.base.db import get_session
    from server.base.models import Mailbox
    from server.flows.sync_runner import record_usage
    from server.gmail.client import client_for_mailbox
    from server.gmail.errors import GmailError
    from server.gmail.send import deliver_due

    app = worker_app()
    with app.app_context():
        session = get_session()
        mailbox = session.get(Mailbox, mailbox_id)
        if mailbox is None or mailbox.paused:  # a paused mailbox's mail waits in the Outbox
            return
        try:
            with client_for_mailbox(mailbox) as client:
                try:
                    deliver_due(session, mailbox_id, client, claim_seconds=app.config["OUTBOX_CLAIM_SECONDS"])
                finally:
                    record_usage(session, mailbox_id, client.meter.units_total)
        except GmailError as exc:  # the next poll retries; the Outbox keeps the mail
            log.warning("outbox_send_failed mailbox=%s problem=%s", mailbox.address, exc)


def time_rules_of(mailbox_id: int) -> None:
    """Run one mailbox's ``time`` rules (the mail they queue goes with its next sync)."""
    from server.base.db import get_session
    from server.base.models import Mailbox
    from server.services.automation import run_time_rules as run_for_mailbox

    with worker_app().app_context():
        session = get_session()
        mailbox = session.get(Mailbox, mailbox_id)
        if mailbox is None:
            return
        fired = run_for_mailbox(session, mailbox, now=datetime.now(UTC))
        if fired:
            log.info("time_rules mailbox=%s fired=%d", mailbox.address, fired)


# --- the work across mailboxes ---------------------------------------------------------------------
def _finish_retiming() -> None:
    """Finish any re-timing of open tickets a settings change asked for and a crash interrupted."""
    from sqlalchemy import select

    from server.base.db import get_session
    from server.base.models import Mailbox
    from server.services.tickets import retime_pending

    app = worker_app()
    with app.app_context():
        session = get_session()
        pending = session.scalars(
            select(Mailbox.id).where(Mailbox.retime_cursor.is_not(None)).order_by(Mailbox.id)
        ).all()
        for mailbox_id in pending:
            done = retime_pending(
                session, mailbox_id, at=datetime.now(UTC), batch=max(1, int(app.config["RETIME_BATCH"]))
            )
            log.info("retimed mailbox_id=%d tickets=%d", mailbox_id, done)


def _forget_expired_sessions() -> None:
    """Delete the settings pages' sessions that have ended (idle or too old)."""
    from server.base.db import get_session
    from server.services.sessions import forget_expired

    app = worker_app()
    with app.app_context():
        gone = forget_expired(
            get_session(),
            now=datetime.now(UTC),
            idle_minutes=float(app.config["SESSION_IDLE_MINUTES"]),
            max_hours=float(app.config["SESSION_MAX_HOURS"]),
        )
        if gone:
            log.info("sessions_forgotten count=%d", gone)


def _reminders() -> None:
    """Do the reminders that are due (server.flows.reminders) and send the mail they queued."""
    from server.base.db import get_session
    from server.flows.reminders import run_reminders

    with worker_app().app_context():
        report = run_reminders(get_session(), now=datetime.now(UTC))
        if report.queued or report.breaches or report.digests or report.solved:
            log.info(
                "reminders queued=%d breaches=%d digests=%d solved=%d late=%d",
                report.queued,
                report.breaches,
                report.digests,
                report.solved,
                report.late,
            )
    for mailbox_id in sorted(report.mailbox_ids):
        _enqueue("send", mailbox_id=mailbox_id)


def _weekly_reports() -> None:
    """Queue the weekly reports whose Monday morning has come (server.services.figures.weekly), and send them."""
    from server.base.db import get_session
    from server.services.figures.weekly import queue_weekly_reports

    with worker_app().app_context():
        sent = queue_weekly_reports(get_session(), now=datetime.now(UTC))
    for mailbox_id in sorted(sent.mailbox_ids):
        _enqueue("send", mailbox_id=mailbox_id)


def _keep_watches() -> None:
    """Start, renew (daily; watches last 7 days) or stop each mailbox's Gmail push watch."""
    from sqlalchemy import select

    from server.base.db import get_session
    from server.base.models import Mailbox
    from server.gmail.client import client_for_mailbox
    from server.gmail.errors import GmailError
    from server.services.watches import keep_watch

    app = worker_app()
    with app.app_context():
        session = get_session()
        for mailbox in session.scalars(select(Mailbox).order_by(Mailbox.address)).all():
            try:
                with client_for_mailbox(mailbox) as client:
                    state = keep_watch(session, mailbox, client, now=datetime.now(UTC))
            except GmailError as exc:  # the next run tries again; polling goes on meanwhile
                session.rollback()
                log.warning("watch_failed mailbox=%s problem=%s", mailbox.address, exc)
                continue
            if state != "kept" and state != "none":
                log.info("watch mailbox=%s %s", mailbox.address, state)


def _webhooks() -> None:
    """Send the webhook deliveries that are due (server.services.webhooks), a batch at a time until none is."""
    from server.base.db import get_session
    from server.services.webhooks import BATCH, Settings, deliver_due

    app = worker_app()
    with app.app_context():
        settings = Settings.from_config(app.config)
        while deliver_due(get_session(), settings) == BATCH:
            pass


def _prune_webhooks() -> None:
    """Forget webhook deliveries that finished more than WEBHOOK_KEEP_DAYS ago (the log keeps the rest)."""
    from datetime import timedelta

    from server.base.db import get_session
    from server.services.webhooks import prune

    app = worker_app()
    with app.app_context():
        keep = timedelta(days=float(app.config["WEBHOOK_KEEP_DAYS"]))
        while prune(get_session(), now=datetime.now(UTC), keep=keep) == 10_000:
            pass


def _knowledge_vectors() -> None:
    """Give the knowledge index's new entries their vectors (server.services.knowledge.meaning), a
    batch a commit, until none is missing."""
    from server.base.db import get_session
    from server.services.knowledge import meaning

    with worker_app().app_context():
        written = meaning.fill_all(get_session())
        if written:
            log.info("knowledge_vectors written=%d", written)


tasks.MAILBOX_WORK.update(sync=sync_mailbox, send=send_mailbox, time_rules=time_rules_of)
tasks.GLOBAL_WORK.update(
    reminders=_reminders,
    weekly_reports=_weekly_reports,
    finish_retiming=_finish_retiming,
    forget_sessions=_forget_expired_sessions,
    keep_watches=_keep_watches,
    webhooks=_webhooks,
    prune_webhooks=_prune_webhooks,
    knowledge_vectors=_knowledge_vectors,
)
