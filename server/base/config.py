"""Postdesk settings: documented defaults here, then ``POSTDESK_*`` environment variables.

``create_app`` loads :class:`Defaults`, then every ``POSTDESK_<NAME>`` variable (values that parse as
JSON become numbers/booleans/lists, as Flask's ``from_prefixed_env`` does), then the mapping passed to
``create_app`` (tests). docs/configuration.md lists every setting.
"""

from __future__ import annotations

import os


class Defaults:
    #: SQLAlchemy URL. Empty means ``sqlite:///<instance folder>/postdesk.sqlite3``.
    DATABASE_URL = ""
    #: Flask's session signing key. Empty means: generated once and kept in the instance folder.
    SECRET_KEY = ""
    #: Fernet key (urlsafe base64, 32 bytes) that encrypts mailbox credentials at rest. Empty means:
    #: generated once and kept (mode 0600) in the instance folder.
    ENCRYPTION_KEY = ""
    #: Demo mode turns on the card previewer and the seeded sandbox helpers; never in production.
    DEMO = False

    # --- Gmail client -----------------------------------------------------------------------------
    #: Seconds before one HTTP call to Gmail gives up (then it is retried like a 5xx).
    GMAIL_HTTP_TIMEOUT = 30
    #: Attempts per Gmail call (first try included) for 429, 5xx and timeouts.
    GMAIL_MAX_ATTEMPTS = 6
    #: First backoff in seconds; doubles each attempt, with full jitter, capped below.
    GMAIL_BACKOFF_BASE = 0.5
    GMAIL_BACKOFF_CAP = 32.0
    #: Messages fetched per batch request (Gmail allows 100, recommends at most 50).
    GMAIL_BATCH_SIZE = 50

    #: Seconds a sender keeps a claimed Outbox email before another may check Gmail and retry it.
    OUTBOX_CLAIM_SECONDS = 120

    #: Open tickets given new deadlines per transaction after a mailbox's settings or SLA policies
    #: change (a crash loses at most one batch; the next run or the worker finishes the rest).
    RETIME_BATCH = 200

    # --- Worker -----------------------------------------------------------------------------------
    #: Seconds a worker's lease lasts without renewal (a dead worker is replaced after this long),
    #: and how often a worker renews it or, waiting, tries to take it.
    WORKER_LEASE_SECONDS = 60
    WORKER_RENEW_SECONDS = 15
    #: Who does the work the clock asks for: ``inline`` (the lease holder itself; one worker works, the
    #: others wait) or ``procrastinate`` (a task queue in PostgreSQL: every worker works, one mailbox at
    #: a time per worker; docs/deployment.md).
    TASKS = "inline"
    #: With ``procrastinate``: tasks one worker process runs at once (threads).
    WORKER_CONCURRENCY = 1
    #: With ``procrastinate``: how often a worker says it is alive; after how long without that its
    #: unfinished task goes back to the queue (checked every TASK_RECOVER_SECONDS); how often an idle
    #: worker looks for work when PostgreSQL's notifications are lost.
    TASK_HEARTBEAT_SECONDS = 10
    TASK_STALLED_SECONDS = 30
    TASK_RECOVER_SECONDS = 10
    TASK_POLL_SECONDS = 5

    # --- Sync -------------------------------------------------------------------------------------
    #: Seconds between polls of each mailbox (`postdesk sync` without --once, and the worker).
    POLL_SECONDS = 60
    #: Seconds between runs of the clock's jobs: time rules, reminders, the weekly reports.
    CLOCK_SECONDS = 60

    # --- Gmail push (Pub/Sub) -------------------------------------------------------------------------
    #: The Pub/Sub topic Gmail publishes each watched mailbox's changes to (``projects/P/topics/T``).
    #: Empty: no push, polling only.
    PUSH_TOPIC = ""
    #: The push subscription's endpoint, exactly as configured in Pub/Sub (``https://…/gmail/push``):
    #: the audience of its tokens.
    PUSH_AUDIENCE = ""
    #: The service account the push subscription authenticates as (its tokens' email).
    PUSH_SERVICE_ACCOUNT = ""
    #: Where Google publishes the keys that sign the push tokens (a local URL in tests).
    PUSH_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
    #: Watch only these labels' changes (comma-separated; empty: every change, label changes too).
    PUSH_LABEL_IDS = ""
    #: How often the worker looks for mailboxes a push asked to sync (seconds).
    PUSH_CHECK_SECONDS = 2

    # --- Operations --------------------------------------------------------------------------------
    #: A bearer token /metrics asks for. Empty: /metrics answers this machine (loopback) only.
    METRICS_TOKEN = ""
    #: ``json`` (one JSON object a line) or ``text`` logs on stderr at LOG_LEVEL; empty: as the host sets.
    LOG_FORMAT = ""
    LOG_LEVEL = "INFO"
    #: ``postdesk doctor --live`` compares this machine's clock with the Date of Google's answer here.
    TIME_CHECK_URL = "https://www.googleapis.com/oauth2/v1/certs"
    #: Days of mail a first connect (or an expired history checkpoint) reads back.
    FULL_SYNC_DAYS = 30

    # --- Add-on -----------------------------------------------------------------------------------
    #: The OAuth client id of the add-on's Cloud project: the audience of the users' ID tokens.
    #: Several (the Apps Script project's and the HTTP deployment's) separated by commas.
    #: Empty: every add-on request is refused (401).
    ADDON_CLIENT_ID = ""
    #: Where Google publishes the keys that sign ID tokens (a local URL in tests).
    ADDON_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
    #: The backend's public base URL, as written in addon/deployment.json (``https://…``, no path).
    #: For the HTTP runtime: the audience of its system tokens is this plus the route called, and card
    #: buttons call this plus ``/addon/v1/action``.
    ADDON_PUBLIC_URL = ""
    #: For the HTTP runtime: the add-on's service account (``gcloud workspace-add-ons
    #: get-authorization`` prints it). Empty: system tokens are refused, only users' tokens count.
    ADDON_SERVICE_ACCOUNT = ""
    #: Where "Settings" in the add-on leads (the settings page of this backend).
    ADDON_SETTINGS_URL = ""


class WebDefaults:
    """The settings pages: sign-in with Google, sessions, rate limits (read with :class:`Defaults`)."""

    #: The OAuth client (type "Web application") whose consent screen signs people in. Empty: only
    #: demo mode's "sign in as" exists, and /auth/sign-in explains what to configure.
    GOOGLE_CLIENT_ID = ""
    GOOGLE_CLIENT_SECRET = ""
    #: Google's endpoints and keys; tests point them at a stand-in issuer on loopback.
    GOOGLE_AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
    GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
    GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
    GOOGLE_ISSUERS = "https://accounts.google.com accounts.google.com"
    #: Workspace domains whose people may sign in without being added first (they join as agents).
    SIGN_IN_DOMAINS = ""
    #: The public base URL of the pages (``https://helpdesk.example.com``), for the redirect URI the
    #: OAuth client lists. Empty: taken from the request.
    PUBLIC_URL = ""
    #: Session cookies only over HTTPS. Empty: on, except in demo mode (plain HTTP on loopback).
    COOKIE_SECURE: bool | None = None
    #: A session ends after this long without a request, and this long after sign-in in any case.
    SESSION_IDLE_MINUTES = 120
    SESSION_MAX_HOURS = 12
    #: Sign-in attempts per client address (Flask-Limiter's notation).
    SIGN_IN_RATE_LIMIT = "20 per minute"
    #: Clicks on rating links per client address (the public /csat pages).
    CSAT_RATE_LIMIT = "30 per minute"
    #: Contact forms sent per client address to a help centre (each address also gets at most one
    #: confirmation mail an hour: server.services.help_contact).
    HELP_CONTACT_RATE_LIMIT = "30 per hour"
    #: Where Flask-Limiter counts ("memory://" for one process; "redis://…" for several).
    RATELIMIT_STORAGE_URI = "memory://"
    #: Rows per page of the settings lists.
    PAGE_SIZE = 50
    #: REST API requests per token (the ``limits`` notation; counted where RATELIMIT_STORAGE_URI says).
    API_RATE_LIMIT = "600 per minute"
    #: Webhooks: how long one delivery is retried (then it fails), and how long a subscription may
    #: fail without a success before Postdesk turns it off and tells the admins.
    WEBHOOK_RETRY_SECONDS = 24 * 3600
    WEBHOOK_DISABLE_AFTER_SECONDS = 24 * 3600
    #: The first retry's wait; each next one doubles it (capped at an hour).
    WEBHOOK_BACKOFF_SECONDS = 30
    #: How long a receiver may take to answer one delivery.
    WEBHOOK_TIMEOUT_SECONDS = 10
    #: Finished deliveries stay in the log this long.
    WEBHOOK_KEEP_DAYS = 30
    #: Networks a webhook may reach although they are private or loopback (space-separated CIDRs,
    #: e.g. "10.1.2.0/24" for a receiver inside the company network). Empty: only public addresses.
    WEBHOOK_ALLOW_NETWORKS = ""


def env_flag(name: str) -> bool:
    """True when an environment variable is set to a true-ish value (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
