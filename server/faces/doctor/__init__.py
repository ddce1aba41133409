"""``postdesk doctor`` and the System health page: every requirement of a deployment, ✓ or ✗, with
what is wrong, the fix and the docs section.

Checks read the settings and the database; with ``live`` they also call out: the public URLs'
``/healthz``, Gmail's profile call for each mailbox, and Google's clock. A check that needs ``live``
and was not asked for is *not checked* (neither ✓ nor ✗). The thresholds are below; docs/deployment.md
("Checking a deployment") explains each check.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from server.base.db import get_session
from server.faces.doctor.check import Check
from server.faces.doctor.configured import (
    check_addon,
    check_database,
    check_public_urls,
    check_secrets,
    check_sign_in,
    check_time,
)
from server.faces.doctor.running import (
    check_clock,
    check_mailboxes,
    check_outbox,
    check_tasks,
    check_webhooks,
)

__all__ = ["Check", "run_checks"]


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
