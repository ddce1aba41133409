"""Server-side sessions for the settings pages (Flask's ``SessionInterface`` over ``web_sessions``).

The cookie holds a random 256-bit token and nothing else; the row is keyed by the token's SHA-256.
A session ends when it has been idle for ``SESSION_IDLE_MINUTES`` or exists for longer than
``SESSION_MAX_HOURS`` (its row is then deleted and the browser gets a fresh, empty one). Signing in
rotates the token (:func:`rotate`), so a token planted before sign-in is worth nothing after it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import delete
from sqlalchemy.orm import Session
from werkzeug.datastructures import CallbackDict

from server.base.db import get_engine
from server.base.models import WebSession

#: How often ``last_seen_at`` is written while a session is used (not on every request).
TOUCH_SECONDS = 60


def _key(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


class ServerSession(CallbackDict[str, Any], SessionMixin):
    """The session dict of one request; ``agent_id`` is who signed in (None: nobody)."""

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        agent_id: int | None = None,
        touched: bool = False,
    ) -> None:
        def on_update(_self: CallbackDict[str, Any]) -> None:
            self.modified = True

        super().__init__(data or {}, on_update)
        self.token = token
        self.agent_id = agent_id
        self.modified = False
        self.touched = touched
        self.rotate = False
        self.ended = False

    @property
    def new(self) -> bool:  # type: ignore[override]  # SessionMixin declares a plain attribute
        return self.token is None


def rotate(session: SessionMixin, agent_id: int | None) -> None:
    """Give the session a new token (at sign-in and sign-out) and say who it belongs to now."""
    assert isinstance(session, ServerSession)
    session.rotate = True
    session.agent_id = agent_id
    session.modified = True


def end(session: SessionMixin, keep: dict[str, Any] | None = None) -> None:
    """Sign out this browser: its row and its cookie go (or, to ``keep`` something such as the
    language, the browser gets a new anonymous session holding only that)."""
    assert isinstance(session, ServerSession)
    session.clear()
    if keep:
        session.update(keep)
        rotate(session, None)
    else:
        session.ended = True


def end_everywhere(db: Session, agent_id: int) -> int:
    """Delete every session of the agent (sign out everywhere; a deactivated agent). Not committed."""
    result = db.execute(delete(WebSession).where(WebSession.agent_id == agent_id))
    return int(getattr(result, "rowcount", 0) or 0)


def forget_expired(db: Session, *, now: datetime, idle_minutes: float, max_hours: float) -> int:
    """Delete the sessions that can no longer be used (idle or too old); committed. The worker runs
    this hourly, so sign-in attempts that never came back do not pile up."""
    result = db.execute(
        delete(WebSession).where(
            (WebSession.last_seen_at < now - timedelta(minutes=idle_minutes))
            | (WebSession.created_at < now - timedelta(hours=max_hours))
        )
    )
    db.commit()
    return int(getattr(result, "rowcount", 0) or 0)


class DatabaseSessions(SessionInterface):
    def _db(self, app: Flask) -> Session:
        return Session(get_engine(app), expire_on_commit=False)

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        token = request.cookies.get(self.get_cookie_name(app))
        if not token or len(token) > 100:
            return ServerSession()
        now = datetime.now(UTC)
        with self._db(app) as db:
            row = db.get(WebSession, _key(token))
            if row is None:
                return ServerSession()
            idle = timedelta(minutes=float(app.config["SESSION_IDLE_MINUTES"]))
            longest = timedelta(hours=float(app.config["SESSION_MAX_HOURS"]))
            if row.last_seen_at + idle < now or row.created_at + longest < now:
                db.delete(row)
                db.commit()
                return ServerSession()
            touched = (now - row.last_seen_at).total_seconds() >= TOUCH_SECONDS
            return ServerSession(dict(row.data or {}), token=token, agent_id=row.agent_id, touched=touched)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        name = self.get_cookie_name(app)
        domain, path = self.get_cookie_domain(app), self.get_cookie_path(app)
        now = datetime.now(UTC)
        with self._db(app) as db:
            if session.ended:  # signed out: forget it on both sides
                if session.token is not None:
                    db.execute(delete(WebSession).where(WebSession.id == _key(session.token)))
                    db.commit()
                response.delete_cookie(name, domain=domain, path=path)
                return
            if session.rotate or session.token is None:
                if session.token is None and not session.modified:
                    return  # a visitor who stored nothing gets no cookie
                if session.token is not None:
                    db.execute(delete(WebSession).where(WebSession.id == _key(session.token)))
                session.token = secrets.token_urlsafe(32)
                row = WebSession(id=_key(session.token), agent_id=session.agent_id, data=dict(session))
                row.created_at = row.last_seen_at = now
                db.add(row)
                db.commit()
                response.set_cookie(
                    name,
                    session.token,
                    domain=domain,
                    path=path,
                    httponly=True,
                    secure=self.get_cookie_secure(app),
                    samesite=self.get_cookie_samesite(app),
                )
            elif session.modified or session.touched:
                stored = db.get(WebSession, _key(session.token))
                if stored is not None:  # else it was ended elsewhere meanwhile (signed out everywhere)
                    if session.modified:
                        stored.data = dict(session)
                    stored.last_seen_at = now
                    db.commit()
        response.vary.add("Cookie")
