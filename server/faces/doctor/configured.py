"""The checks of the settings: the database, secrets, public URLs, the add-on, sign-in, the clock."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from cryptography.fernet import Fernet
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from server.base.db import get_engine
from server.faces.addon import manifest as addon_files
from server.faces.doctor.check import LIVE_TIMEOUT, Check, bad, good, unchecked

#: Google's tokens are checked with this much clock skew allowed (google-auth's clock_skew_in_seconds).
CLOCK_SKEW_SECONDS = 30
MIN_SECRET_KEY = 32
ADDON_ACCOUNT = re.compile(r"service-\d+@gcp-sa-gsuiteaddons\.iam\.gserviceaccount\.com")
CLIENT_ID = re.compile(r"[0-9A-Za-z_.-]+\.apps\.googleusercontent\.com")

# --- the server -------------------------------------------------------------------------------------


def check_database() -> Check:
    from server.base.migrations import database_revisions, head_revisions

    name = _("database")
    url = get_engine().url.render_as_string(hide_password=True)
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
            current = ", ".join(sorted(database_revisions(connection)))
    except SQLAlchemyError as exc:
        return bad(name, _("%(url)s does not answer: %(problem)s", url=url, problem=type(exc).__name__),
                   _("check POSTDESK_DATABASE_URL and that the database server runs"), "the-server")  # fmt: skip
    head = ", ".join(sorted(head_revisions()))
    if current != head:
        return bad(name, _("%(url)s is at migration %(current)s, the newest is %(head)s",
                           url=url, current=current or _("none"), head=head),
                   _("run postdesk init-db"), "the-server")  # fmt: skip
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


def check_time(live: bool) -> Check:
    name = _("clock")
    if not live:
        return unchecked(name)
    target = str(current_app.config["TIME_CHECK_URL"])
    try:
        before = datetime.now(UTC)
        answer = requests.head(target, timeout=LIVE_TIMEOUT, allow_redirects=False)
        after = datetime.now(UTC)
        theirs = parsedate_to_datetime(answer.headers["Date"])
        if theirs.tzinfo is None:  # "-0000": a time in UTC with no zone given (RFC 5322)
            theirs = theirs.replace(tzinfo=UTC)
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
