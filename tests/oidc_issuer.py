"""A stand-in for Google's OpenID Connect endpoints on loopback: authorize, token, certs.

It plays the person's side too: ``person`` is who "chooses their account" on the consent screen, and
``/authorize`` answers at once with the redirect back to Postdesk. ``/token`` checks what Google
checks (one use per code, the same redirect URI, the PKCE verifier against the S256 challenge, the
client's id and secret) and answers an ID token signed with a test key; ``claims`` overrides claims
and ``forge`` signs with a key it never published.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from addon_support import _key_and_cert
from google.auth import jwt

CLIENT_ID = "postdesk-web.apps.googleusercontent.com"
CLIENT_SECRET = "stand-in-secret"
ISSUER = "https://accounts.google.com"


class StandInGoogle:
    def __init__(self) -> None:
        self.signer, cert = _key_and_cert("stand-in-key")
        self.forger, _ = _key_and_cert("stand-in-key", 1)
        self.person: dict[str, Any] = {"email": "olga@example.com", "name": "Olga"}
        self.claims: dict[str, Any] = {}
        self.forge = False
        #: Given when offline access was asked for (None: Google gives none, as on a repeated consent).
        self.refresh_token: str | None = "stand-in-refresh-token"
        self.codes: dict[str, dict[str, str]] = {}
        self.authorize_requests: list[dict[str, str]] = []
        self.token_requests: list[dict[str, str]] = []
        certs = json.dumps({"stand-in-key": cert}).encode()
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/certs":
                    return self._send(200, certs, {"Content-Type": "application/json"})
                if url.path != "/authorize":
                    return self._send(404)
                query = dict(urllib.parse.parse_qsl(url.query))
                issuer.authorize_requests.append(query)
                code = secrets.token_urlsafe(16)
                issuer.codes[code] = query
                back = (
                    query["redirect_uri"]
                    + "?"
                    + urllib.parse.urlencode({"code": code, "state": query["state"]})
                )
                self._send(302, headers={"Location": back})

            def do_POST(self) -> None:
                if self.path != "/token":
                    return self._send(404)
                form = dict(
                    urllib.parse.parse_qsl(self.rfile.read(int(self.headers["Content-Length"])).decode())
                )
                issuer.token_requests.append(form)
                asked = issuer.codes.pop(form.get("code", ""), None)
                basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                verifier = form.get("code_verifier", "")
                challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
                if (
                    asked is None
                    or form.get("grant_type") != "authorization_code"
                    or form.get("redirect_uri") != asked["redirect_uri"]
                    or asked.get("code_challenge_method") != "S256"
                    or challenge.decode() != asked.get("code_challenge")
                    or self.headers.get("Authorization") != f"Basic {basic}"
                ):
                    body = json.dumps({"error": "invalid_grant"}).encode()
                    return self._send(400, body, {"Content-Type": "application/json"})
                now = int(time.time())
                claims = {
                    "iss": ISSUER,
                    "aud": CLIENT_ID,
                    "sub": hashlib.sha256(issuer.person["email"].encode()).hexdigest()[:20],
                    "email_verified": True,
                    "nonce": asked.get("nonce"),
                    "iat": now,
                    "exp": now + 3600,
                    **issuer.person,
                    **issuer.claims,
                }
                token = jwt.encode(issuer.forger if issuer.forge else issuer.signer, claims).decode()
                answer = {"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "id_token": token}
                if asked.get("access_type") == "offline" and issuer.refresh_token:
                    answer["refresh_token"] = issuer.refresh_token
                body = json.dumps(answer).encode()
                self._send(200, body, {"Content-Type": "application/json"})

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def config(self) -> dict[str, str]:
        """The app settings that point Postdesk's sign-in at this stand-in."""
        return {
            "GOOGLE_CLIENT_ID": CLIENT_ID,
            "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
            "GOOGLE_AUTHORIZE_URL": f"{self.url}/authorize",
            "GOOGLE_TOKEN_URL": f"{self.url}/token",
            # A path of its own: google-auth caches nothing, but two stand-ins never share a URL.
            "GOOGLE_CERTS_URL": f"{self.url}/certs",
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
