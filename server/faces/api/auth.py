"""Who calls the API, what they may touch, and how often: checked before every view of the blueprint.

Order of the checks: the token (401 with ``WWW-Authenticate`` when missing or not valid), the
token's rate limit (429 with ``Retry-After``), then the view's scope (403). Each answer carries the
rate limit's state in ``RateLimit-Limit``/``-Remaining``/``-Reset`` (seconds to the window's end) and
``RateLimit-Policy`` (IETF draft-ietf-httpapi-ratelimit-headers).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Response, current_app, g, request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.models import Mailbox, Role, mailbox_members
from server.faces.errors import problem_response
from server.services import api_tokens
from server.services.api_tokens import Caller, Scope

View = TypeVar("View", bound=Callable[..., Any])
REFUSALS = {
    "missing": "Send a token: Authorization: Bearer pd_…",
    "unknown": "This token is not known.",
    "revoked": "This token was revoked.",
    "expired": "This token has expired.",
    "inactive": "The token's owner is deactivated.",
}
#: Scopes that need the role too (a role can change after the token was made).
ROLE_OF_SCOPE = {Scope.SETTINGS_READ: {Role.ADMIN, Role.MANAGER}, Scope.SETTINGS_WRITE: {Role.ADMIN}}


def needs(scope: Scope, *, or_: Scope | None = None) -> Callable[[View], View]:
    """Mark a view as needing ``scope`` (or the scope ``or_``), checked before it runs, after the token."""

    def mark(view: View) -> View:
        view.postdesk_scope = scope  # type: ignore[attr-defined]  # a marker read by the guard
        view.postdesk_scope_too = or_  # type: ignore[attr-defined]
        return view

    return mark


def scope_of(view: Callable[..., Any] | None) -> Scope | None:
    return getattr(view, "postdesk_scope", None)


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _limiter() -> tuple[MovingWindowRateLimiter, RateLimitItem]:
    state: tuple[MovingWindowRateLimiter, RateLimitItem] | None = current_app.extensions.get(
        "postdesk_api_rate"
    )
    if state is None:
        storage = storage_from_string(current_app.config["RATELIMIT_STORAGE_URI"])
        state = (MovingWindowRateLimiter(storage), parse(current_app.config["API_RATE_LIMIT"]))
        current_app.extensions["postdesk_api_rate"] = state
    return state


def _rate_headers(limit: RateLimitItem, remaining: int, reset_at: float) -> dict[str, str]:
    seconds = max(0, math.ceil(reset_at - time.time()))
    return {
        "RateLimit-Limit": str(limit.amount),
        "RateLimit-Remaining": str(max(0, remaining)),
        "RateLimit-Reset": str(seconds),
        "RateLimit-Policy": f"{limit.amount};w={limit.get_expiry()}",
    }


def guard(session: Session) -> Response | None:
    """Before every API view: the token, the rate limit, the scope. Returns the refusal, if any."""
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or getattr(view, "postdesk_public", False):
        return None  # a 404/405 answers itself; the OpenAPI document is public
    secret = _bearer()
    try:
        caller = api_tokens.authenticate(session, secret, now=datetime.now(UTC))
    except api_tokens.Refused as exc:
        challenge = 'Bearer realm="postdesk"' + ("" if exc.reason == "missing" else ', error="invalid_token"')
        return problem_response(
            401, "Unauthorized", REFUSALS[exc.reason], headers={"WWW-Authenticate": challenge}
        )
    g.api_caller = caller
    strategy, limit = _limiter()
    key = str(caller.token_id)
    allowed = strategy.hit(limit, "api-token", key)
    reset_at, remaining = strategy.get_window_stats(limit, "api-token", key)
    g.api_rate = _rate_headers(limit, remaining, reset_at)
    if not allowed:
        retry = g.api_rate["RateLimit-Reset"]
        return problem_response(
            429,
            "Too Many Requests",
            f"This token may make {limit.amount} requests per {limit.get_expiry()} s; try again in {retry} s.",
            headers={"Retry-After": str(max(1, int(retry)))},
        )
    scope = scope_of(view)
    instead = getattr(view, "postdesk_scope_too", None)
    if scope is not None and instead is not None and scope not in caller.scopes and instead in caller.scopes:
        scope = instead  # e.g. settings:write may write articles
    if scope is not None and scope not in caller.scopes:
        return problem_response(
            403,
            "Forbidden",
            f"This token lacks the scope {scope.value}.",
            headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope.value}"'},
        )
    if scope in ROLE_OF_SCOPE and caller.role not in ROLE_OF_SCOPE[scope]:
        return problem_response(403, "Forbidden", f"A {caller.role.value} cannot use {scope.value}.")
    return None


def add_rate_headers(response: Response) -> Response:
    for name, value in (g.get("api_rate") or {}).items():
        response.headers.setdefault(name, value)
    return response


def caller() -> Caller:
    found: Caller = g.api_caller
    return found


def readable_mailboxes(session: Session, who: Caller) -> list[int]:
    """Admins and managers read every mailbox; an agent reads the mailboxes they belong to."""
    if who.role in (Role.ADMIN, Role.MANAGER):
        return list(session.scalars(select(Mailbox.id).order_by(Mailbox.id)))
    return _memberships(session, who.agent_id)


class NoSuchMailbox(LookupError):
    """A mailbox filter names one the caller may not read (answered 404 by the blueprint)."""


def chosen_mailboxes(session: Session, who: Caller, wanted: int | None) -> list[int]:
    """The mailboxes a request's ``mailbox`` filter leaves: all the caller reads, or the one named."""
    readable = readable_mailboxes(session, who)
    if wanted is None:
        return readable
    if wanted not in readable:
        raise NoSuchMailbox(wanted)
    return [wanted]


def writable_mailboxes(session: Session, who: Caller) -> list[int]:
    """Admins work on every mailbox; others on the mailboxes they belong to (as in the add-on)."""
    if who.role is Role.ADMIN:
        return list(session.scalars(select(Mailbox.id).order_by(Mailbox.id)))
    return _memberships(session, who.agent_id)


def _memberships(session: Session, agent_id: int) -> list[int]:
    return list(
        session.scalars(
            select(mailbox_members.c.mailbox_id)
            .where(mailbox_members.c.agent_id == agent_id)
            .order_by(mailbox_members.c.mailbox_id)
        )
    )


def public(view: View) -> View:
    """A view anyone may call without a token (the OpenAPI document)."""
    view.postdesk_public = True  # type: ignore[attr-defined]  # a marker read by the guard
    return view
