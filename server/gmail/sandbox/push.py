"""Gmail push as Pub/Sub delivers it, for the sandbox: after each change of a watched mailbox, a POST
to the configured push endpoint with ``{"message": {"data": base64({"emailAddress", "historyId"}),
"messageId", "publishTime"}, "subscription"}`` and a bearer JWT signed like Google's push tokens
(issuer accounts.google.com, audience = the configured one, email = the push service account), with
the sandbox's own key, whose certificate ``GET /sandbox/push/certs`` serves as Google's certs URL does.

Best effort, as Pub/Sub is at least once: each notification is posted once from a background thread;
a refused or failed post is dropped (a real subscription would retry; the poll is the fallback).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

log = logging.getLogger(__name__)
KEY_ID = "gmail-sandbox-push"


def envelope(address: str, history_id: int) -> dict[str, Any]:
    """What a push subscription posts for one Gmail notification: a ``PubsubMessage`` whose data is
    base64 JSON ``{"emailAddress", "historyId"}``, and the subscription's name."""
    data = json.dumps({"emailAddress": address, "historyId": history_id}).encode()
    return {
        "message": {"data": base64.b64encode(data).decode(), "messageId": uuid.uuid4().hex,
                    "publishTime": datetime.now(UTC).isoformat().replace("+00:00", "Z")},
        "subscription": "projects/gmail-sandbox/subscriptions/postdesk-push",
    }  # fmt: skip


@dataclass(frozen=True)
class Target:
    url: str
    audience: str
    service_account: str


def signing_key(kid: str, days: int = 365) -> tuple[crypt.RSASigner, str]:
    """A fresh RSA key as google-auth signs with it, and its self-signed certificate (PEM), the form
    Google's certs URL publishes its keys in."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, kid)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()  # fmt: skip
    return crypt.RSASigner.from_string(pem, key_id=kid), cert.public_bytes(
        serialization.Encoding.PEM
    ).decode()


#: The longest hold a test may ask for (Pub/Sub's own retries back off to ten minutes).
MAX_DELAY_SECONDS = 600


class PushSender:
    """Signs and posts push notifications; ``certs`` is what the certs URL answers."""

    def __init__(self) -> None:
        self.target: Target | None = None
        #: Seconds each notification is held back before it is posted (Pub/Sub may deliver late).
        self.delay_seconds = 0.0
        self.sent: list[dict[str, Any]] = []  # what was posted, and the answer (for tests)
        self.lock = threading.Lock()
        self._key: tuple[crypt.RSASigner, str] | None = None
        self._key_lock = threading.Lock()

    def _signing_key(self) -> tuple[crypt.RSASigner, str]:
        """Made when first needed (an RSA key takes ~0.1 s: most sandboxes never push)."""
        with self._key_lock:
            if self._key is None:
                self._key = signing_key(KEY_ID)
            return self._key

    @property
    def signer(self) -> crypt.RSASigner:
        return self._signing_key()[0]

    @property
    def certs(self) -> dict[str, str]:
        return {KEY_ID: self._signing_key()[1]}

    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        url, audience, account = body.get("url"), body.get("audience"), body.get("service_account")
        if not all(isinstance(v, str) and v for v in (url, audience, account)):
            raise ValueError("url, audience and service_account are required strings")
        assert isinstance(url, str) and isinstance(audience, str) and isinstance(account, str)
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must be http(s)")
        delay = body.get("delay_seconds", 0)
        if (
            isinstance(delay, bool)
            or not isinstance(delay, int | float)
            or not 0 <= delay <= MAX_DELAY_SECONDS
        ):
            raise ValueError(f"delay_seconds must be a number from 0 to {MAX_DELAY_SECONDS}")
        self.target = Target(url, audience, account)
        self.delay_seconds = float(delay)
        return {"url": url, "audience": audience, "service_account": account, "delay_seconds": delay}

    def token(self, target: Target) -> str:
        now = int(time.time())
        claims = {"iss": "https://accounts.google.com", "aud": target.audience, "email": target.service_account,
                  "email_verified": True, "sub": "1" + str(abs(hash(target.service_account)))[:20],
                  "iat": now, "exp": now + 3600}  # fmt: skip
        token: bytes = jwt.encode(self.signer, claims)
        return token.decode()

    def __call__(self, address: str, history_id: int) -> None:
        target = self.target
        if target is None:
            return
        args = (target, envelope(address, history_id))
        if self.delay_seconds > 0:
            held = threading.Timer(self.delay_seconds, self._post, args=args)
            held.daemon = True
            held.start()
        else:
            threading.Thread(target=self._post, args=args, daemon=True).start()

    def _post(self, target: Target, envelope: dict[str, Any]) -> None:
        request = urllib.request.Request(
            target.url, data=json.dumps(envelope).encode(), method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token(target)}"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError as error:
            log.info("sandbox_push_failed url=%s problem=%s", target.url, error)
            status = 0
        with self.lock:
            self.sent.append({"envelope": envelope, "status": status})
