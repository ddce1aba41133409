"""Gmail's published quota costs, the one table both the client meter and the sandbox use.

Source: the Gmail API "Usage limits" page (per-method quota units; per-user rate limit of 250 units per
second as a moving average, i.e. 15,000 per minute).
"""

from __future__ import annotations

PER_USER_UNITS_PER_SECOND = 250

QUOTA_UNITS: dict[str, int] = {
    "getProfile": 1,
    "watch": 100,
    "stop": 50,
    "history.list": 2,
    "labels.create": 5,
    "labels.delete": 5,
    "labels.get": 1,
    "labels.list": 1,
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
