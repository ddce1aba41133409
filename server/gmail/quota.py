"""Gmail's published quota costs and limits, the one table both the client and the sandbox use.

Source: the Gmail API "Usage limits" page (per-method quota units; 15,000 units per user per minute
and 1,200,000 per project per minute) and the "Uploading attachments" guide (a plain request body of
about 5 MB at most; larger messages go through the /upload URI).
"""

from __future__ import annotations

#: Quota units one user (mailbox) may spend per minute before Gmail answers ``userRateLimitExceeded``.
PER_USER_UNITS_PER_MINUTE = 15_000
#: Quota units one Cloud project may spend per minute before Gmail answers ``rateLimitExceeded``.
PER_PROJECT_UNITS_PER_MINUTE = 1_200_000
#: The largest plain (non-upload) JSON request body; a bigger message is sent through /upload.
MAX_JSON_REQUEST_BYTES = 5 * 1024 * 1024

QUOTA_UNITS: dict[str, int] = {
    "getProfile": 1,
    "watch": 100,
    "stop": 50,
    "history.list": 2,
    "labels.create": 5,
    "labels.delete": 5,
    "labels.get": 1,
    "labels.list": 1,
    "labels.patch": 5,
    "labels.update": 5,
    "messages.attachments.get": 5,
    "messages.batchDelete": 50,
    "messages.batchModify": 50,
    "messages.delete": 10,
    "messages.get": 5,
    "messages.import": 25,
    "messages.insert": 25,
    "messages.list": 5,
    "messages.modify": 5,
    "messages.send": 100,
    "messages.trash": 5,
    "messages.untrash": 5,
    "threads.delete": 20,
    "threads.get": 10,
    "threads.list": 10,
    "threads.modify": 10,
    "threads.trash": 10,
    "threads.untrash": 10,
}


def units_for(method: str) -> int:
    """Quota units one call of ``method`` (e.g. ``"messages.get"``) costs; unknown methods cost 1."""
    return QUOTA_UNITS.get(method, 1)
