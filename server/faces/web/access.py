"""Who is signed in, and what each role may do: checked on the server for every settings route.

A view says who may call it with :func:`allow`; the shell's guard (``server.faces.web``) answers a caller
without a session before anything else: pages redirect to sign-in, state-changing requests get 401.
A signed-in caller without the role gets 403. Roles: ``admin`` (everything), ``manager`` (reads all
settings, changes only their own profile), ``agent`` (their own profile).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import abort, g, redirect, request, session, url_for
from werkzeug.wrappers import Response

from server.base.db import get_session
from server.base.models import Agent, Role
from server.services.accounts import manages_mailbox

EVERYONE = frozenset(Role)
READERS = frozenset({Role.ADMIN, Role.MANAGER})
__all__ = [
    "ADMINS",
    "EVERYONE",
    "READERS",
    "allow",
    "current_agent",
    "manages_mailbox",
    "reads_mailbox",
    "safe_next",
]
ADMINS = frozenset({Role.ADMIN})

View = TypeVar("View", bound=Callable[..., Any])


def current_agent() -> Agent | None:
    """The active agent of this request's session, or None (a deactivated agent is signed out)."""
    if "agent" in g:
        agent: Agent | None = g.agent
        return agent
    agent_id = getattr(session, "agent_id", None)
    agent = get_session().get(Agent, agent_id) if agent_id is not None else None
    if agent is not None and not agent.active:
        from server.services.sessions import end

        end(session)
        agent = None
    g.agent = agent
    return agent


def roles_of(view: Callable[..., Any]) -> frozenset[Role] | None:
    """The roles a view allows (None: a public view such as the sign-in page)."""
    roles: frozenset[Role] | None = getattr(view, "postdesk_roles", None)
    return roles


def allow(roles: frozenset[Role]) -> Callable[[View], View]:
    """Let only signed-in agents with one of ``roles`` call the view (403 for the others)."""

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            agent = current_agent()
            if agent is None:
                return to_sign_in()
            if Role(agent.role) not in roles:
                abort(403)
            return view(*args, **kwargs)

        # The guard and the route x role test read the roles from the view itself.
        guarded.postdesk_roles = roles  # type: ignore[attr-defined]  # a marker on a function object
        return cast(View, guarded)

    return decorate


def to_sign_in() -> Response:
    """A page asked for without a session: to sign-in (and back here afterwards); anything else 401."""
    if request.method not in ("GET", "HEAD"):
        abort(401)
    return redirect(url_for("web.sign_in", next=request.full_path.rstrip("?")))


def safe_next(target: str | None, default: str = "/settings/") -> str:
    """``target`` if it is a path of this site (no scheme, no host, no ``//`` or ``\\`` tricks)."""
    if not target or len(target) > 2000:
        return default
    cleaned = target.strip()
    parts = urlsplit(cleaned)
    if (
        parts.scheme
        or parts.netloc
        or not cleaned.startswith("/")
        or cleaned.startswith(("//", "/\\"))
        or "\\" in cleaned
        or any(ord(c) < 32 for c in cleaned)
    ):
        return default
    return cleaned


def reads_mailbox(agent: Agent, mailbox_id: int) -> bool:
    """Admins and managers read every mailbox; a mailbox's own admins read theirs."""
    return Role(agent.role) in READERS or manages_mailbox(agent, mailbox_id)
