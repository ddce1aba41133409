"""Helpers shared by tests (import as ``from helpers import …``)."""

from __future__ import annotations

import uuid

MAILBOX = "support@example.com"


def make_email(
    subject: str = "Help",
    body: str = "Hello",
    *,
    sender: str = "alice@example.org",
    to: str = MAILBOX,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    extra: str = "",
) -> bytes:
    """A small, valid RFC 822 message for tests."""
    message_id = message_id or f"<{uuid.uuid4().hex}@example.org>"
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: {message_id}",
        "Date: Mon, 23 Nov 2026 07:00:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    if in_reply_to:
        lines += [f"In-Reply-To: {in_reply_to}", f"References: {in_reply_to}"]
    if extra:
        lines.append(extra.strip())
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def http(
    method: str,
    url: str,
    body: object = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
):
    """One HTTP call with urllib; returns ``(status, parsed JSON or raw bytes, headers)``, never raises."""
    import json
    import urllib.error
    import urllib.request

    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if raw is None and body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, content, response_headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        with error:
            status, content, response_headers = error.code, error.read(), dict(error.headers)
    try:
        return status, (json.loads(content) if content else None), response_headers
    except ValueError:
        return status, content, response_headers
