"""Gmail-shaped errors raised by the sandbox store and rendered by its HTTP layer."""

from __future__ import annotations

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class GmailError(Exception):
    """An error the sandbox answers with, in Gmail's JSON error shape."""

    def __init__(self, code: int, reason: str, message: str, *, domain: str = "global") -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.domain = domain

    def body(self) -> dict[str, object]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"message": self.message, "domain": self.domain, "reason": self.reason}],
                "status": STATUS_NAMES.get(self.code, "UNKNOWN"),
            }
        }


def not_found(what: str = "Requested entity was not found.") -> GmailError:
    return GmailError(404, "notFound", what)


def invalid(message: str) -> GmailError:
    return GmailError(400, "invalidArgument", message)
