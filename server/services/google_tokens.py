"""Google-signed tokens: the one way every face checks one (the add-on's users and runtime, Gmail's
push requests through Pub/Sub).

A token is accepted only when its signature checks out against Google's keys (the certs URL is a
setting, so tests use a local key), its issuer is Google, its audience is the one asked for, it has
not expired and its email is verified. Each face then says whose email it must be.
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


def email_of(claims: Mapping[str, Any]) -> str:
    email = str(claims.get("email") or "").strip().lower()
    if "@" not in email:
        raise Unauthorized("the token names no email")
    return email
