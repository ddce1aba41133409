"""Errors of the Gmail client, one place for all of them."""

from __future__ import annotations


class GmailError(RuntimeError):
    """Base class: something about talking to Gmail went wrong for one mailbox."""


class GmailCredentialsError(GmailError):
    """The mailbox's stored credentials are missing, malformed or cannot be decrypted."""


class GmailApiError(GmailError):
    """Gmail answered with an error that retrying will not fix (400, 401, 403, 404 …)."""

    def __init__(self, method: str, status: int, reason: str, message: str) -> None:
        super().__init__(f"{method}: HTTP {status} {reason}: {message}")
        self.method = method
        self.status = status
        self.reason = reason
        self.message = message


class GmailUnavailable(GmailError):
    """Every attempt failed with a retryable error (429, 5xx, timeout); try again later."""


class HistoryExpired(GmailError):
    """``history.list`` answered 404: the checkpoint is too old, a full sync is needed."""
