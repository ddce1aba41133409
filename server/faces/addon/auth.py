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

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.models import Agent
from server.services.google_tokens import (
    GOOGLE_ISSUERS,
    MAX_TOKEN,
    CachingRequest,
    StoredResponse,
    Unauthorized,
    Verifier,
    bearer_token,
    email_of,
)

__all__ = [
    "GOOGLE_ISSUERS",
    "CachingRequest",
    "StoredResponse",
    "Unauthorized",
    "Verifier",
    "agent_for",
    "bearer_token",
    "client_ids",
    "verify_identity",
]


def client_ids(setting: object) -> list[str]:
    """``ADDON_CLIENT_ID`` as a list: one id, several separated by commas or spaces, or a JSON list."""
    if isinstance(setting, (list, tuple)):
        return [str(item).strip() for item in setting if str(item).strip()]
    return [item for item in str(setting or "").replace(",", " ").split() if item]


def verify_identity(token: str, event: Mapping[str, Any], verifier: Verifier) -> str:
    """The verified, lower-case email of the user behind the request, or :class:`Unauthorized`."""
    if not verifier.client_ids:
        raise Unauthorized("ADDON_CLIENT_ID is not configured")
    system = bool(verifier.service_account and verifier.endpoint_url)
    audiences = verifier.client_ids + ([verifier.endpoint_url] if system else [])
    claims = verifier.claims(token, audiences)
    if claims.get("aud") not in verifier.client_ids:  # the HTTP runtime's system token
        if email_of(claims) != verifier.service_account.strip().lower():
            raise Unauthorized("a token for this URL, not from the add-on's service account")
        authorization = event.get("authorizationEventObject")
        user_token = authorization.get("userIdToken") if isinstance(authorization, Mapping) else None
        if not isinstance(user_token, str) or not user_token or len(user_token) > MAX_TOKEN:
            raise Unauthorized("a system token without the user's ID token")
        claims = verifier.claims(user_token, verifier.client_ids)
    return email_of(claims)


def agent_for(session: Session, email: str) -> Agent:
    """The active agent with this email, or :class:`Unauthorized`."""
    agent = session.scalar(select(Agent).where(Agent.email == email, Agent.active.is_(True)))
    if agent is None:
        raise Unauthorized("not an active agent")
    return agent
