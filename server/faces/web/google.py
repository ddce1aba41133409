"""Sign in with Google: OpenID Connect's authorization-code flow with ``state``, ``nonce`` and PKCE.

Authlib builds the authorization URL (with the S256 code challenge) and exchanges the code at the
token endpoint; google-auth verifies the ID token that comes back (Google's signature, issuer,
audience = our client id, expiry), and this module checks the rest: the nonce of this attempt and a
verified email. The endpoints and the keys' URL are settings, so tests and the stand-in issuer of
the browser test run the same code on loopback.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app, url_for
from google.oauth2 import id_token

#: What sign-in asks for: who the person is, nothing of their data.
SIGN_IN_SCOPE = "openid email profile"
#: What connecting a shared mailbox by consent asks for (as the CLI's flow): read, label and send.
MAILBOX_SCOPE = "openid email https://www.googleapis.com/auth/gmail.modify"
#: Seconds of clock difference tolerated between Google and this server.
CLOCK_SKEW_SECONDS = 10
#: Seconds the token endpoint may take.
TOKEN_TIMEOUT_SECONDS = 10


def public_url_for(endpoint: str) -> str:
    """The absolute URL of a route as people and Google reach it (``PUBLIC_URL``, else the request's)."""
    base = str(current_app.config.get("PUBLIC_URL") or "").rstrip("/")
    return f"{base}{url_for(endpoint)}" if base else url_for(endpoint, _external=True)


class SignInError(Exception):
    """The sign-in cannot finish; the message says why (shown to the person, logged without tokens)."""


@dataclass(frozen=True)
class Identity:
    email: str
    name: str
    #: The Workspace domain Google vouches for (the ``hd`` claim), empty for consumer accounts.
    domain: str


@dataclass(frozen=True)
class GoogleSignIn:
    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    certs_url: str
    issuers: tuple[str, ...]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> GoogleSignIn | None:
        """The configured client, or None when no OAuth client is set (sign-in is then unavailable)."""
        client_id = str(config.get("GOOGLE_CLIENT_ID") or "").strip()
        if not client_id:
            return None
        issuers = config.get("GOOGLE_ISSUERS") or ()
        if isinstance(issuers, str):
            issuers = issuers.replace(",", " ").split()
        return cls(
            client_id=client_id,
            client_secret=str(config.get("GOOGLE_CLIENT_SECRET") or ""),
            authorize_url=str(config["GOOGLE_AUTHORIZE_URL"]),
            token_url=str(config["GOOGLE_TOKEN_URL"]),
            certs_url=str(config["GOOGLE_CERTS_URL"]),
            issuers=tuple(issuers),
        )

    def _client(self, redirect_uri: str, scope: str = SIGN_IN_SCOPE) -> OAuth2Session:
        return OAuth2Session(
            self.client_id,
            self.client_secret,
            scope=scope,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
        )

    def start(
        self, redirect_uri: str, *, scope: str = SIGN_IN_SCOPE, **params: str
    ) -> tuple[str, dict[str, str]]:
        """The URL to send the browser to, and what this attempt must remember until the callback."""
        pending = {
            "state": secrets.token_urlsafe(32),
            "nonce": secrets.token_urlsafe(32),
            "verifier": secrets.token_urlsafe(64),
        }
        with self._client(redirect_uri, scope) as client:
            url, _state = client.create_authorization_url(
                self.authorize_url,
                state=pending["state"],
                code_verifier=pending["verifier"],
                nonce=pending["nonce"],
                **({"prompt": "select_account"} | params),
            )
        return str(url), pending

    def exchange(self, redirect_uri: str, code: str, pending: Mapping[str, str]) -> Mapping[str, Any]:
        """Trade the code (with the PKCE verifier) for Google's tokens."""
        with self._client(redirect_uri) as client:
            try:
                token = client.fetch_token(
                    self.token_url,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=pending["verifier"],
                    timeout=TOKEN_TIMEOUT_SECONDS,
                )
            except (OAuthError, requests.RequestException, ValueError) as exc:
                raise SignInError(f"Google did not accept the code ({type(exc).__name__})") from exc
        if not isinstance(token, Mapping):
            raise SignInError("Google's token answer is not an object")
        return token

    def finish(self, redirect_uri: str, code: str, pending: Mapping[str, str]) -> Identity:
        """Exchange the code and verify the ID token it brings back: who signed in."""
        return self.identity(self.exchange(redirect_uri, code, pending), pending)

    def identity(self, token: Mapping[str, Any], pending: Mapping[str, str]) -> Identity:
        raw = token.get("id_token")
        if not isinstance(raw, str) or not raw:
            raise SignInError("Google sent no ID token")
        return self.verify(raw, pending["nonce"])

    def verify(self, raw: str, nonce: str) -> Identity:
        try:
            claims = id_token.verify_token(
                raw,
                google.auth.transport.requests.Request(),
                audience=self.client_id,
                certs_url=self.certs_url,
                clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
            )
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            raise SignInError(f"the ID token was refused: {exc}") from exc
        if claims.get("iss") not in self.issuers:
            raise SignInError("the ID token was not issued by Google")
        if not nonce or not secrets.compare_digest(str(claims.get("nonce") or ""), nonce):
            raise SignInError("the ID token belongs to another sign-in attempt")
        if claims.get("email_verified") not in (True, "true"):
            raise SignInError("Google has not verified this email address")
        email = str(claims.get("email") or "").strip().lower()
        if "@" not in email:
            raise SignInError("the ID token names no email address")
        return Identity(
            email=email, name=str(claims.get("name") or "")[:200], domain=str(claims.get("hd") or "")
        )
