"""Who is calling: a Google ID token, verified with google-auth, that names an active agent.

The Apps Script shim sends ``Authorization: Bearer <ScriptApp.getIdentityToken()>``: an OpenID
Connect ID token Google signed for the user, whose audience is the OAuth client of the add-on's Cloud
project. It is accepted only when its signature checks out against Google's keys (the certs URL is a
setting, so tests use a local key), its issuer is Google, its audience is ``ADDON_CLIENT_ID``, it has
not expired and its email is verified. No client id configured means nobody gets in.

A deployment on the add-on HTTP runtime calls the routes itself: its bearer token is a *system* ID
token of the add-on's service account (``ADDON_SERVICE_ACCOUNT``) whose audience is the URL that was
called (``ADDON_PUBLIC_URL`` + the route), and the user comes in the event, as
``authorizationEventObject.userIdToken`` — checked like the shim's token. A system token with any other
email, or for another URL, is refused; so is a user token whose audience is a URL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import requests
from google.oauth2 import id_token
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.models import Agent

GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
#: Allowed difference between our clock and Google's, in seconds.
CLOCK_SKEW_SECONDS = 30
#: Longer bearer tokens are refused unread (Google's ID tokens are about 1 KB).
MAX_TOKEN = 8192


class Unauthorized(Exception):
    """The request does not prove who sent it (HTTP 401); the message says why, for the log only."""


@dataclass(frozen=True)
class StoredResponse:
    """An HTTP answer as google-auth's transports give it (status, headers, data)."""

    status: int
    headers: Mapping[str, str]
    data: bytes


class CachingRequest(google.auth.transport.Request):
    """google-auth's requests transport, keeping the signing keys for ``ttl`` seconds (they rotate daily)."""

    def __init__(self, ttl: float = 3600.0) -> None:
        self._session = requests.Session()
        self._inner = google.auth.transport.requests.Request(self._session)
        self._ttl = ttl
        self._cache: dict[str, tuple[float, StoredResponse]] = {}
        self._lock = threading.Lock()

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = 10,
        **kwargs: Any,
    ) -> Any:
        if method != "GET":
            return self._inner(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)
        with self._lock:
            hit = self._cache.get(url)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        response = self._inner(url, method="GET", headers=headers, timeout=timeout, **kwargs)
        kept = StoredResponse(response.status, dict(response.headers), response.data)
        if response.status == 200:
            with self._lock:
                self._cache[url] = (time.monotonic() + self._ttl, kept)
        return kept


def bearer_token(header: str | None) -> str:
    if not header or not header.startswith("Bearer "):
        raise Unauthorized("no bearer token")
    token = header.removeprefix("Bearer ").strip()
    if not token or len(token) > MAX_TOKEN:
        raise Unauthorized("an empty or oversized token")
    return token


def client_ids(setting: object) -> list[str]:
    """``ADDON_CLIENT_ID`` as a list: one id, several separated by commas or spaces, or a JSON list."""
    if isinstance(setting, (list, tuple)):
        return [str(item).strip() for item in setting if str(item).strip()]
    return [item for item in str(setting or "").replace(",", " ").split() if item]


@dataclass(frozen=True)
class Verifier:
    """What a token must match: our client ids, Google's keys, and for the HTTP runtime its account."""

    client_ids: list[str]
    certs_url: str
    request: google.auth.transport.Request
    service_account: str = ""
    #: The public URL of the route being called (the audience of the HTTP runtime's system token).
    endpoint_url: str = ""

    def claims(self, token: str, audience: list[str]) -> Mapping[str, Any]:
        try:
            claims = id_token.verify_token(
                token,
                self.request,
                audience=audience,
                certs_url=self.certs_url,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            raise Unauthorized(f"token rejected: {exc}") from exc
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthorized(f"token issued by {claims.get('iss')!r}, not Google")
        if claims.get("email_verified") not in (True, "true"):
            raise Unauthorized("the token's email is not verified")
        return claims


def _email(claims: Mapping[str, Any]) -> str:
    email = str(claims.get("email") or "").strip().lower()
    if "@" not in email:
        raise Unauthorized("the token names no email")
    return email


def verify_identity(token: str, event: Mapping[str, Any], verifier: Verifier) -> str:
    """The verified, lower-case email of the user behind the request, or :class:`Unauthorized`."""
    if not verifier.client_ids:
        raise Unauthorized("ADDON_CLIENT_ID is not configured")
    system = bool(verifier.service_account and verifier.endpoint_url)
    audiences = verifier.client_ids + ([verifier.endpoint_url] if system else [])
    claims = verifier.claims(token, audiences)
    if claims.get("aud") not in verifier.client_ids:  # the HTTP runtime's system token
        if _email(claims) != verifier.service_account.strip().lower():
            raise Unauthorized("a token for this URL, not from the add-on's service account")
        authorization = event.get("authorizationEventObject")
        user_token = authorization.get("userIdToken") if isinstance(authorization, Mapping) else None
        if not isinstance(user_token, str) or not user_token or len(user_token) > MAX_TOKEN:
            raise Unauthorized("a system token without the user's ID token")
        claims = verifier.claims(user_token, verifier.client_ids)
    return _email(claims)


def agent_for(session: Session, email: str) -> Agent:
    """The active agent with this email, or :class:`Unauthorized`."""
    agent = session.scalar(select(Agent).where(Agent.email == email, Agent.active.is_(True)))
    if agent is None:
        raise Unauthorized("not an active agent")
    return agent
