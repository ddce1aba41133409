"""``postdesk doctor`` and the System health page: every requirement of a deployment, ✓ or ✗, with
what is wrong, the fix and the docs section.

Checks read the settings and the database; with ``live`` they also call out: the public URLs'
``/healthz``, Gmail's profile call for each mailbox, and Google's clock. A check that needs ``live``
and was not asked for is *not checked* (neither ✓ nor ✗). The thresholds are below; docs/deployment.md
("Checking a deployment") explains each check.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from cryptography.fernet import Fernet
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from server.base.db import get_engine, get_session
from server.base.models import AuthKind, Mailbox, Outbox, OutboxState, SyncState, Webhook, WorkerLease
from server.faces.addon import manifest as addon_files

#: A message the worker should have handed to Gmail this long ago is stuck.
OUTBOX_STUCK_MINUTES = 15
#: Failed messages this recent are reported.
OUTBOX_FAILED_DAYS = 7
#: A task waiting longer than this means too few workers, or none.
TASK_WAIT_SECONDS = 300
#: Google's tokens are checked with this much clock skew allowed (google-auth's clock_skew_in_seconds).
CLOCK_SKEW_SECONDS = 30
#: Seconds each outside call may take.
LIVE_TIMEOUT = 10
MIN_SECRET_KEY = 32
ADDON_ACCOUNT = re.compile(r"service-\d+@gcp-sa-gsuiteaddons\.iam\.gserviceaccount\.com")
CLIENT_ID = re.compile(r"[0-9A-Za-z_.-]+\.apps\.googleusercontent\.com")
GMAIL_SCOPE = "https://www.googleapis.com/auth/gmail.modify"
DOCS = "docs/deployment.md"


@dataclass(frozen=True)
class Check:
    """One requirement: ``ok`` True (✓), False (✗) or None (not checked: it needs ``--live``)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""
    docs: str = ""

    @property
    def mark(self) -> str:
        return {True: "✓", False: "✗", None: "–"}[self.ok]

    def line(self) -> str:
        parts = [f"{self.mark} {self.name}: {self.detail}"]
        if self.ok is False and self.fix:
            parts.append(f"fix: {self.fix}")
        if self.ok is False and self.docs:
            parts.append(f"see {self.docs}")
        return " — ".join(parts)


def good(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def bad(name: str, detail: str, fix: str, section: str) -> Check:
    return Check(name, False, detail, fix, f"{DOCS}#{section}")


def unchecked(name: str) -> Check:
    return Check(name, None, _("not checked (run with --live)"))


def run_checks(*, live: bool = False, deployment: Any = None, now: datetime | None = None) -> list[Check]:
    """Every check, in the order a new deployment meets them. ``deployment``: the parsed HTTP
    deployment file to compare with the settings (None: not compared)."""
    moment = now or datetime.now(UTC)
    checks = [check_database()]
    database_ok = checks[0].ok is True
    checks += [check_secrets(), *check_public_urls(live), *check_addon(deployment), check_sign_in()]
    checks.append(check_time(live))
    if not database_ok:
        return checks
    session = get_session()
    try:
        checks += list(check_mailboxes(session, live=live, now=moment))
        checks += [check_clock(session, moment), check_tasks(session), check_outbox(session, moment),
                   check_webhooks(session)]  # fmt: skip
    finally:
        session.rollback()
    return checks


# --- the server -------------------------------------------------------------------------------------


def check_database() -> Check:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from server.base.migrations import alembic_config

    name = _("database")
    url = get_engine().url.render_as_string(hide_password=True)
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
            current = MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        return bad(name, _("%(url)s does not answer: %(problem)s", url=url, problem=type(exc).__name__),
                   _("check POSTDESK_DATABASE_URL and that the database server runs"), "the-server")  # fmt: skip
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if current != head:
        return bad(name, _("%(url)s is at migration %(current)s, the newest is %(head)s",
                           url=url, current=current or _("none"), head=head),
                   _("run postdesk init-db (the web and the worker also upgrade on start)"), "the-server")  # fmt: skip
    return good(name, _("%(url)s answers, at the newest migration %(head)s", url=url, head=head))


def check_secrets() -> Check:
    config = current_app.config
    name = _("secrets")
    key = config.get("ENCRYPTION_KEY") or ""
    if key:
        try:
            Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError):
            return bad(name, _("POSTDESK_ENCRYPTION_KEY is not a Fernet key (32 url-safe base64 bytes)"),
                       _("put the key the stored credentials were encrypted with back"), "secrets")  # fmt: skip
    if config["DEMO"]:
        return good(name, _("demo mode: the keys are generated into the instance folder"))
    if current_app.extensions.get("postdesk.generated_secret_key"):
        return bad(name, _("POSTDESK_SECRET_KEY is not set: a key generated into the instance folder signs sessions"),
                   _("set POSTDESK_SECRET_KEY (48+ random characters) in the environment file"), "secrets")  # fmt: skip
    if len(str(config["SECRET_KEY"])) < MIN_SECRET_KEY:
        return bad(name, _("POSTDESK_SECRET_KEY has %(n)s characters, fewer than %(min)s",
                           n=len(str(config["SECRET_KEY"])), min=MIN_SECRET_KEY),
                   _("set POSTDESK_SECRET_KEY to 48+ random characters"), "secrets")  # fmt: skip
    if not key:
        return bad(name, _("POSTDESK_ENCRYPTION_KEY is not set: mailbox credentials depend on a key file in the instance folder"),
                   _("set POSTDESK_ENCRYPTION_KEY to the instance folder's encryption.key (or a new key before any mailbox is connected)"),
                   "secrets")  # fmt: skip
    return good(name, _("the session and encryption keys are set"))


def check_public_urls(live: bool) -> Iterator[Check]:
    config = current_app.config
    demo = bool(config["DEMO"])
    named = {"POSTDESK_PUBLIC_URL": str(config["PUBLIC_URL"] or ""),
             "POSTDESK_ADDON_PUBLIC_URL": str(config["ADDON_PUBLIC_URL"] or "")}  # fmt: skip
    for setting, url in named.items():
        name = _("public URL (%(setting)s)", setting=setting)
        if not url:
            if setting == "POSTDESK_ADDON_PUBLIC_URL" and not config["ADDON_SERVICE_ACCOUNT"]:
                yield good(name, _("not set: the add-on runs through the Apps Script shim only"))
                continue
            if demo:
                yield good(name, _("not set: taken from each request (demo mode)"))
                continue
            yield bad(name, _("not set"), _("set %(setting)s to the https address people and Google reach",
                                            setting=setting), "the-server")  # fmt: skip
            continue
        try:
            base = addon_files.base_url(url, demo=demo)
        except addon_files.UrlError as exc:
            yield bad(name, str(exc), _("use the https address of the reverse proxy"), "the-server")
            continue
        if not live:
            yield Check(name, None, _("%(url)s (its /healthz not checked: run with --live)", url=base))
            continue
        try:
            answer = requests.get(f"{base}/healthz", timeout=LIVE_TIMEOUT, allow_redirects=False)
        except requests.RequestException as exc:
            yield bad(name, _("%(url)s/healthz does not answer: %(problem)s", url=base, problem=type(exc).__name__),
                      _("check DNS, the TLS certificate and that the reverse proxy forwards to postdesk web"),
                      "the-server")  # fmt: skip
            continue
        if answer.status_code != 200:
            yield bad(name, _("%(url)s/healthz answers %(status)s", url=base, status=answer.status_code),
                      _("check that the reverse proxy forwards to postdesk web"), "the-server")  # fmt: skip
            continue
        yield good(name, _("%(url)s/healthz answers 200", url=base))


# --- Google ----------------------------------------------------------------------------------------


def check_addon(deployment: Any) -> Iterator[Check]:
    config = current_app.config
    ids = [part.strip() for part in str(config["ADDON_CLIENT_ID"] or "").split(",") if part.strip()]
    name = _("add-on client id")
    if not ids:
        yield bad(name, _("POSTDESK_ADDON_CLIENT_ID is not set: every add-on request is refused"),
                  _("set it to the OAuth client id of the add-on's Cloud project"), "the-add-on")  # fmt: skip
    elif wrong := [i for i in ids if not CLIENT_ID.fullmatch(i)] if not config["DEMO"] else []:
        yield bad(name, _("%(ids)s is not an OAuth client id (…apps.googleusercontent.com)", ids=", ".join(wrong)),
                  _("copy the client id from Google Cloud console, APIs & Services, Credentials"), "the-add-on")  # fmt: skip
    else:
        yield good(name, _("%(n)s client id(s) accepted as audiences", n=len(ids)))
    account = str(config["ADDON_SERVICE_ACCOUNT"] or "").strip().lower()
    name = _("add-on HTTP runtime")
    if not account and deployment is None:
        yield good(name, _("off (POSTDESK_ADDON_SERVICE_ACCOUNT not set): the Apps Script shim only"))
        return
    if not ADDON_ACCOUNT.fullmatch(account):
        yield bad(name, _("POSTDESK_ADDON_SERVICE_ACCOUNT is %(value)s, not the add-on's service account",
                          value=account or _("not set")),
                  _("set it to the serviceAccountEmail that gcloud workspace-add-ons get-authorization prints"),
                  "the-add-on")  # fmt: skip
        return
    try:
        base = addon_files.base_url(str(config["ADDON_PUBLIC_URL"] or ""), demo=bool(config["DEMO"]))
    except addon_files.UrlError:
        yield bad(name, _("POSTDESK_ADDON_PUBLIC_URL is not an https URL: Google's calls cannot be verified"),
                  _("set POSTDESK_ADDON_PUBLIC_URL to the URL the deployment file names"), "the-add-on")  # fmt: skip
        return
    if deployment is not None:
        expected = addon_files.deployment(base)
        if deployment != expected:
            named = sorted(set(_trigger_urls(deployment)) - set(_trigger_urls(expected)))
            detail = (_("the deployment file calls %(urls)s: those calls' audiences are not POSTDESK_ADDON_PUBLIC_URL's routes",
                        urls=", ".join(named[:3])) if named
                      else _("the deployment file differs from postdesk addon deployment's output"))  # fmt: skip
            yield bad(name, detail, _("write it again with postdesk addon deployment and replace the deployment "
                                      "(gcloud workspace-add-ons deployments replace)"), "the-add-on")  # fmt: skip
            return
    yield good(name, _("Google's calls to %(url)s are accepted from %(account)s", url=base, account=account))


def _trigger_urls(document: Any) -> Iterator[str]:
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ("runFunction", "onTriggerFunction") and isinstance(value, str):
                yield value
            else:
                yield from _trigger_urls(value)
    elif isinstance(document, list):
        for item in document:
            yield from _trigger_urls(item)


def check_sign_in() -> Check:
    config = current_app.config
    name = _("sign-in with Google")
    if config["GOOGLE_CLIENT_ID"] and config["GOOGLE_CLIENT_SECRET"]:
        return good(name, _("the OAuth client is set"))
    if config["DEMO"]:
        return good(name, _("demo mode: sign in as any agent"))
    missing = (
        "POSTDESK_GOOGLE_CLIENT_ID" if not config["GOOGLE_CLIENT_ID"] else "POSTDESK_GOOGLE_CLIENT_SECRET"
    )
    return bad(name, _("%(setting)s is not set: nobody can sign in to the settings pages", setting=missing),
               _("create an OAuth client (Web application) and set both settings"), "sign-in")  # fmt: skip


def check_time(live: bool, url: str | None = None) -> Check:
    name = _("clock")
    if not live:
        return unchecked(name)
    target = url or str(current_app.config["TIME_CHECK_URL"])
    try:
        before = datetime.now(UTC)
        answer = requests.head(target, timeout=LIVE_TIMEOUT, allow_redirects=False)
        after = datetime.now(UTC)
        theirs = parsedate_to_datetime(answer.headers["Date"])
    except (requests.RequestException, KeyError, TypeError, ValueError) as exc:
        return bad(name, _("%(url)s gave no time: %(problem)s", url=target, problem=type(exc).__name__),
                   _("let this machine reach Google over https"), "the-server")  # fmt: skip
    ours = before + (after - before) / 2
    skew = abs((ours - theirs).total_seconds())
    # The Date header has whole seconds: a second of difference is the header's own precision.
    if skew > CLOCK_SKEW_SECONDS:
        return bad(name, _("this machine's clock is %(n)s s off Google's: Google's tokens will be refused",
                           n=round(skew)), _("run an NTP client (systemd-timesyncd or chrony)"), "the-server")  # fmt: skip
    return good(name, _("within %(n)s s of Google's", n=max(1, round(skew))))


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
    from server.base.crypto import SecretError, decrypt_json
    from server.gmail.client import GmailClient, RetryPolicy, credentials_for
    from server.gmail.errors import GmailError

    fix = (_("grant domain-wide delegation of %(scope)s to the service account in the Admin console", scope=GMAIL_SCOPE)
           if mailbox.auth_kind == AuthKind.SERVICE_ACCOUNT
           else _("connect the mailbox again on its settings page"))  # fmt: skip
    try:
        secret = decrypt_json(mailbox.credentials_encrypted) if mailbox.credentials_encrypted else None
        credentials = credentials_for(mailbox.auth_kind, secret, mailbox.address)
        client = GmailClient(mailbox.address, credentials, mailbox.api_endpoint,
                             retry=RetryPolicy(1, 0.0, 0.0), timeout=LIVE_TIMEOUT)  # fmt: skip
        profile = client.profile()
    except SecretError as exc:
        return bad(name, str(exc), _("put the encryption key back"), "secrets")
    except GmailError as exc:
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
