"""Personal access tokens for the REST API: made, checked, revoked (one service for every face).

A token is ``pd_`` + 43 url-safe characters (256 random bits). Only its SHA-256 is stored; the
settings page shows the whole token once, when it is made. A request with it acts as the token's
agent, with the agent's role and mailboxes *as they are now*, narrowed to the token's scopes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.base.models import ActorKind, Agent, ApiToken, Role
from server.services.tickets import Actor, record_event

PREFIX = "pd_"
#: How many characters of a token the pages show (enough to tell tokens apart, useless to an attacker).
SHOWN = 10
#: ``last_used_at`` is written at most this often per token (not on every request).
TOUCH_EVERY = timedelta(seconds=60)
MAX_NAME = 200
#: The longest lifetime a token may be given.
MAX_LIFETIME = timedelta(days=366 * 2)


class Scope(StrEnum):
    TICKETS_READ = "tickets:read"
    TICKETS_WRITE = "tickets:write"
    REPORTS_READ = "reports:read"
    SETTINGS_READ = "settings:read"
    SETTINGS_WRITE = "settings:write"
    #: Help-centre articles (a token with settings:write may write them too).
    ARTICLES_READ = "articles:read"
    ARTICLES_WRITE = "articles:write"


#: The scopes each role may put on its own tokens (a request also checks the role again, as it is then).
SCOPES_OF_ROLE: dict[Role, frozenset[Scope]] = {
    Role.ADMIN: frozenset(Scope),
    Role.MANAGER: frozenset(
        {
            Scope.TICKETS_READ,
            Scope.TICKETS_WRITE,
            Scope.REPORTS_READ,
            Scope.SETTINGS_READ,
            Scope.ARTICLES_READ,
            Scope.ARTICLES_WRITE,
        }
    ),  # fmt: skip
    # An agent writes articles only of the mailboxes they administer (checked per request).
    Role.AGENT: frozenset(
        {
            Scope.TICKETS_READ,
            Scope.TICKETS_WRITE,
            Scope.REPORTS_READ,
            Scope.ARTICLES_READ,
            Scope.ARTICLES_WRITE,
        }
    ),
}


class TokenError(ValueError):
    """A token cannot be made as asked; ``str(exc)`` says why."""


class Refused(Exception):
    """The presented token opens nothing: ``reason`` is ``missing``, ``unknown``, ``revoked``, ``expired``
    or ``inactive`` (the owner was deactivated)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Caller:
    """Who a token request acts as."""

    token_id: int
    agent_id: int
    role: Role
    scopes: frozenset[Scope]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def create(
    session: Session,
    *,
    owner: Agent,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    by: Agent,
    now: datetime,
) -> tuple[ApiToken, str]:
    """Make a token for ``owner`` (an admin for anyone, anyone for themself); returns it and its secret."""
    if by.id != owner.id and Role(by.role) is not Role.ADMIN:
        raise TokenError("only an admin makes tokens for someone else")
    if not owner.active:
        raise TokenError("this person is deactivated")
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise TokenError(f"give the token a name of 1 to {MAX_NAME} characters")
    try:
        chosen = {Scope(scope) for scope in scopes}
    except ValueError as exc:
        raise TokenError(f"unknown scope; known: {', '.join(s.value for s in Scope)}") from exc
    if not chosen:
        raise TokenError("choose at least one scope")
    allowed = SCOPES_OF_ROLE[Role(owner.role)]
    if not chosen <= allowed:
        extra = ", ".join(sorted(s.value for s in chosen - allowed))
        raise TokenError(f"a {owner.role} cannot have {extra}")
    if expires_at is not None and not now < expires_at <= now + MAX_LIFETIME:
        raise TokenError("a token expires in the future, within two years")
    secret = PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        agent_id=owner.id,
        name=name,
        secret_hash=_digest(secret),
        prefix=secret[:SHOWN],
        scopes=sorted(s.value for s in chosen),
        created_at=now,
        created_by_id=by.id,
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    record_event(
        session,
        None,
        "api_token_created",
        actor=Actor(ActorKind.AGENT, agent_id=by.id),
        after={"token": token.id, "name": name, "owner": owner.email, "scopes": token.scopes},
        at=now,
    )
    return token, secret


def revoke(session: Session, token: ApiToken, *, by: Agent, now: datetime) -> None:
    """End the token now (its owner or an admin); revoking twice changes nothing."""
    if by.id != token.agent_id and Role(by.role) is not Role.ADMIN:
        raise TokenError("only its owner or an admin revokes a token")
    if token.revoked_at is not None:
        return
    token.revoked_at = now
    record_event(
        session,
        None,
        "api_token_revoked",
        actor=Actor(ActorKind.AGENT, agent_id=by.id),
        after={"token": token.id, "name": token.name},
        at=now,
    )


def authenticate(session: Session, secret: str | None, *, now: datetime) -> Caller:
    """The caller a presented secret stands for, or :class:`Refused` with the reason."""
    if not secret:
        raise Refused("missing")
    if not secret.startswith(PREFIX) or len(secret) > 100:
        raise Refused("unknown")
    row = session.execute(
        select(ApiToken, Agent)
        .join(Agent, Agent.id == ApiToken.agent_id)
        .where(ApiToken.secret_hash == _digest(secret))
    ).first()
    if row is None:
        raise Refused("unknown")
    token, agent = row
    if token.revoked_at is not None:
        raise Refused("revoked")
    if token.expires_at is not None and token.expires_at <= now:
        raise Refused("expired")
    if not agent.active:
        raise Refused("inactive")
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        # A conditional UPDATE: many requests at once write it once, and never move it back.
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == token.id)
            .where((ApiToken.last_used_at.is_(None)) | (ApiToken.last_used_at < now))
            .values(last_used_at=now)
        )
        session.commit()
    return Caller(
        token_id=token.id,
        agent_id=agent.id,
        role=Role(agent.role),
        scopes=frozenset(Scope(s) for s in token.scopes if s in Scope._value2member_map_),
    )


def tokens_of(session: Session, viewer: Agent) -> list[ApiToken]:
    """The tokens a person sees on the page: their own; an admin sees everyone's."""
    query = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    if Role(viewer.role) is not Role.ADMIN:
        query = query.where(ApiToken.agent_id == viewer.id)
    return list(session.scalars(query))
