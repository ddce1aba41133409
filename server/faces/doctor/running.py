"""The checks of what runs: mailboxes and Gmail, the worker's lease, the task queue, the Outbox, webhooks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select

from server.base.models import AuthKind, Mailbox, Outbox, OutboxState, SyncState, Webhook, WorkerLease
from server.faces.doctor.check import LIVE_TIMEOUT, Check, bad, good
from server.gmail.credentials import SCOPES

#: A message the worker should have handed to Gmail this long ago is stuck.
OUTBOX_STUCK_MINUTES = 15
#: Failed messages this recent are reported.
OUTBOX_FAILED_DAYS = 7
#: A task waiting longer than this means too few workers, or none.
TASK_WAIT_SECONDS = 300
GMAIL_SCOPE = SCOPES[0]


def check_mailboxes(session: Any, *, live: bool, now: datetime) -> Iterator[Check]:
    config = current_app.config
    mailboxes = list(session.scalars(select(Mailbox).order_by(Mailbox.address)))
    if not mailboxes:
        yield bad(_("mailboxes"), _("no mailbox is connected"),
                  _("connect one on Settings, Mailboxes (or postdesk mailbox add)"), "mailboxes")  # fmt: skip
        return
    for mailbox in mailboxes:
        name = _("mailbox %(address)s", address=mailbox.address)
        if mailbox.paused:
            yield good(name, _("paused by an admin: not synced"))
            continue
        if mailbox.sync_state == SyncState.ERROR:
            yield bad(name, _("the last sync failed: %(error)s", error=(mailbox.sync_error or "")[:200]),
                      _("test the connection on the mailbox's settings page and connect it again"), "mailboxes")  # fmt: skip
            continue
        if live:
            yield _gmail_profile(mailbox, name)
        else:
            yield Check(name, None, _("last synced %(when)s (Gmail not asked: run with --live)",
                                      when=_ago(mailbox.last_sync_at, now)))  # fmt: skip
        if config["PUSH_TOPIC"]:
            push = _("push for %(address)s", address=mailbox.address)
            if mailbox.watch_expires_at is None or mailbox.watch_expires_at <= now:
                yield bad(push, _("the Gmail watch ran out %(when)s", when=_ago(mailbox.watch_expires_at, now)),
                          _("the worker renews it daily: check that postdesk worker runs and the topic allows Gmail to publish"),
                          "push")  # fmt: skip
            else:
                yield good(
                    push,
                    _("watched until %(when)s", when=mailbox.watch_expires_at.isoformat(timespec="minutes")),
                )


def _gmail_profile(mailbox: Mailbox, name: str) -> Check:
    from server.base.crypto import SecretError
    from server.gmail.client import GmailClient, RetryPolicy
    from server.gmail.credentials import mailbox_credentials
    from server.gmail.errors import GmailError

    fix = (_("grant domain-wide delegation of %(scope)s to the service account in the Admin console", scope=GMAIL_SCOPE)
           if mailbox.auth_kind == AuthKind.SERVICE_ACCOUNT
           else _("connect the mailbox again on its settings page"))  # fmt: skip
    try:
        credentials = mailbox_credentials(mailbox)
        client = GmailClient(mailbox.address, credentials, mailbox.api_endpoint,
                             retry=RetryPolicy(1, 0.0, 0.0), timeout=LIVE_TIMEOUT)  # fmt: skip
        profile = client.profile()
    except GmailError as exc:
        if isinstance(exc.__cause__, SecretError):
            return bad(name, str(exc), _("put the encryption key back"), "secrets")
        return bad(
            name, _("Gmail refused the profile call: %(problem)s", problem=str(exc)[:200]), fix, "mailboxes"
        )
    granted = getattr(credentials, "granted_scopes", None)
    if granted is not None and GMAIL_SCOPE not in granted:
        return bad(name, _("the token was granted %(scopes)s, not %(scope)s", scopes=" ".join(granted), scope=GMAIL_SCOPE),
                   fix, "mailboxes")  # fmt: skip
    if str(profile.get("emailAddress", "")).lower() != mailbox.address:
        return bad(
            name, _("Gmail answered for %(other)s", other=profile.get("emailAddress")), fix, "mailboxes"
        )
    return good(name, _("Gmail answers (%(n)s messages)", n=profile.get("messagesTotal", 0)))


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return str(_("never"))
    minutes = max(0, int((now - moment).total_seconds() // 60))
    return str(_("%(n)s min ago", n=minutes))


# --- the worker -------------------------------------------------------------------------------------


def check_clock(session: Any, now: datetime) -> Check:
    from server.flows.clock.lease import WORKER_LEASE

    name = _("worker")
    lease = session.get(WorkerLease, WORKER_LEASE)
    if lease is None or lease.expires_at <= now:
        return bad(name, _("no worker holds the clock's lease: nothing syncs, sends or reminds"),
                   _("start postdesk worker (systemctl enable --now postdesk-worker)"), "the-worker")  # fmt: skip
    return good(name, _("%(holder)s holds the clock's lease", holder=lease.holder))


def check_tasks(session: Any) -> Check:
    from server.flows.tasks import queue_figures, queue_is_reachable

    config = current_app.config
    name = _("task queue")
    if config["TASKS"] != "procrastinate":
        return good(name, _("inline: the worker holding the lease does the work"))
    if not queue_is_reachable(session):
        return bad(name, _("the queue's tables cannot be read"), _("run postdesk init-db"), "the-worker")
    figures = queue_figures(session, stalled_seconds=float(config["TASK_STALLED_SECONDS"]))
    waiting = max((wait for _task, status, _n, wait in figures["jobs"] if status == "todo"), default=0.0)
    if waiting > TASK_WAIT_SECONDS:
        return bad(name, _("a task has waited %(n)s s (%(workers)s worker(s) alive)", n=round(waiting),
                           workers=figures["workers"]),
                   _("start more postdesk worker processes, or find why they stopped"), "the-worker")  # fmt: skip
    return good(name, _("answers; %(workers)s worker(s) alive", workers=figures["workers"]))


def check_outbox(session: Any, now: datetime) -> Check:
    name = _("outgoing mail")
    stuck = session.scalar(
        select(func.count()).select_from(Outbox).join(Mailbox, Mailbox.id == Outbox.mailbox_id)
        .where(Outbox.state.in_([OutboxState.PENDING, OutboxState.SENDING]), Mailbox.paused.is_(False),
               Outbox.next_attempt_at < now - timedelta(minutes=OUTBOX_STUCK_MINUTES))
    )  # fmt: skip
    if stuck:
        return bad(name, _("%(n)s message(s) due more than %(min)s min ago are not sent", n=stuck, min=OUTBOX_STUCK_MINUTES),
                   _("check that the worker runs and Gmail accepts the mailbox (postdesk outbox list shows each)"), "the-worker")  # fmt: skip
    failed = session.execute(
        select(func.count(), func.max(Outbox.last_error)).where(
            Outbox.state == OutboxState.FAILED, Outbox.created_at >= now - timedelta(days=OUTBOX_FAILED_DAYS)
        )
    ).one()
    if failed[0]:
        return bad(name, _("%(n)s message(s) failed in %(days)s days: %(error)s", n=failed[0], days=OUTBOX_FAILED_DAYS,
                           error=(failed[1] or "")[:200]),
                   _("postdesk outbox list shows each with its reason; fix the cause, then answer again from the ticket"), "the-worker")  # fmt: skip
    return good(name, _("nothing waits or failed"))


def check_webhooks(session: Any) -> Check:
    name = _("webhooks")
    failing = list(session.scalars(
        select(Webhook).where((Webhook.failing_since.is_not(None) & Webhook.enabled.is_(True))
                              | (Webhook.disabled_reason.is_not(None) & Webhook.enabled.is_(False)))
        .order_by(Webhook.id)
    ))  # fmt: skip
    if failing:
        hosts = ", ".join(sorted({_host(w.url) for w in failing}))
        return bad(name, _("%(n)s subscription(s) failing or turned off: %(hosts)s", n=len(failing), hosts=hosts),
                   _("see Settings, Integrations: the delivery log says what the receiver answered"), "webhooks")  # fmt: skip
    return good(name, _("none failing"))


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or url[:60]
