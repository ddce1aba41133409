"""Injected failures, latency and the quota meter of the sandbox."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from server.gmail.quota import PER_PROJECT_UNITS_PER_MINUTE, PER_USER_UNITS_PER_MINUTE, units_for
from server.gmail.sandbox.errors import GmailError, invalid

FAULT_STATUSES = {
    429: ("rateLimitExceeded", "Rate Limit Exceeded"),
    500: ("backendError", "Backend Error"),
    502: ("backendError", "Bad Gateway"),
    503: ("backendError", "The service is currently unavailable."),
    504: ("backendError", "Deadline exceeded"),
}


@dataclass
class FaultPlan:
    statuses: tuple[int, ...] = ()
    rate: float = 0.0
    methods: frozenset[str] = frozenset()
    retry_after: float | None = None
    latency_ms: int = 0
    remaining: int | None = None  # fail at most this many more calls (None: no limit)

    @classmethod
    def from_json(cls, body: Any) -> FaultPlan:
        if not isinstance(body, dict):
            raise invalid("fault plan must be a JSON object")
        status = body.get("status")
        statuses = status if isinstance(status, list) else [] if status is None else [status]
        if not all(isinstance(s, int) and not isinstance(s, bool) and s in FAULT_STATUSES for s in statuses):
            raise invalid(f"status must be one of {sorted(FAULT_STATUSES)} or a list of them")
        rate = body.get("rate", 1.0 if statuses else 0.0)
        if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0.0 <= rate <= 1.0:
            raise invalid("rate must be a number from 0.0 to 1.0")
        methods = body.get("methods", [])
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise invalid("methods must be a list of method names such as 'messages.get'")
        # "users.messages.get" (the discovery document's id without "gmail.") names the same method.
        methods = [m.removeprefix("gmail.").removeprefix("users.") for m in methods]
        retry_after = body.get("retry_after")
        if retry_after is not None and (not isinstance(retry_after, int | float) or retry_after < 0):
            raise invalid("retry_after must be a number of seconds")
        latency = body.get("latency_ms", 0)
        if not isinstance(latency, int) or not 0 <= latency <= 60_000:
            raise invalid("latency_ms must be an integer from 0 to 60000")
        remaining = body.get("count")
        if remaining is not None and (not isinstance(remaining, int) or remaining < 0):
            raise invalid("count must be a non-negative integer")
        return cls(tuple(statuses), float(rate), frozenset(methods), retry_after, latency, remaining)

    def as_json(self) -> dict[str, Any]:
        return {
            "status": list(self.statuses) if len(self.statuses) != 1 else self.statuses[0],
            "rate": self.rate,
            "methods": sorted(self.methods),
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "count": self.remaining,
        }


#: Gmail's rate limits are per minute: the units of the last 60 seconds count, so bursts pass.
WINDOW_SECONDS = 60.0


@dataclass
class Window:
    """Units spent in the last :data:`WINDOW_SECONDS`, kept as a queue with its running sum."""

    spent: deque[tuple[float, int]] = field(default_factory=deque)
    total: int = 0

    def room(self, now: float, limit: int) -> int:
        while self.spent and self.spent[0][0] <= now - WINDOW_SECONDS:
            self.total -= self.spent.popleft()[1]
        return limit - self.total

    def add(self, now: float, units: int) -> None:
        self.spent.append((now, units))
        self.total += units


@dataclass
class QuotaMeter:
    enforce: bool = True
    user_units_per_minute: int = PER_USER_UNITS_PER_MINUTE
    project_units_per_minute: int = PER_PROJECT_UNITS_PER_MINUTE
    units_total: int = 0
    by_method: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    calls_by_method: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_user: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    uploads: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    user_windows: dict[str, Window] = field(default_factory=lambda: defaultdict(Window))
    project_window: Window = field(default_factory=Window)
    batch_sizes: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "units_total": self.units_total,
            "by_method": dict(self.by_method),
            "calls_by_method": dict(self.calls_by_method),
            "by_user": dict(self.by_user),
            "uploads": dict(self.uploads),
            "batch_sizes": list(self.batch_sizes),
            "enforce": self.enforce,
            "user_units_per_minute": self.user_units_per_minute,
            "project_units_per_minute": self.project_units_per_minute,
        }

    def check(self, user: str, units: int, now: float) -> None:
        """Raise Gmail's usage-limit error if ``units`` more would pass a per-minute limit."""
        if self.project_window.room(now, self.project_units_per_minute) < units:
            raise GmailError(403, "rateLimitExceeded", "Rate Limit Exceeded", domain="usageLimits")
        if self.user_windows[user].room(now, self.user_units_per_minute) < units:
            raise GmailError(
                403,
                "userRateLimitExceeded",
                "User Rate Limit Exceeded. Rate of requests for user exceed configured project quota.",
                domain="usageLimits",
            )
        self.project_window.add(now, units)
        self.user_windows[user].add(now, units)


class Gate:
    """Decides, for each API call, whether it is delayed, failed by a fault, or over the rate limit."""

    def __init__(self, seed: int | None = None) -> None:
        self.lock = threading.Lock()
        # Wall-clock time (not monotonic) so tests can freeze and shift it with time-machine.
        self.clock = time.time
        self.plan = FaultPlan()
        self.meter = QuotaMeter()
        self.rng = random.Random(seed)

    def set_plan(self, plan: FaultPlan) -> None:
        with self.lock:
            self.plan = plan

    def admit(self, method: str, user: str, *, metered: bool = True) -> float | None:
        """Raise the injected or rate-limit error for this call, or meter it. Returns Retry-After.

        ``metered=False`` (the later requests of a resumable upload, whose first request paid for the
        call) applies the fault plan only."""
        with self.lock:
            plan = self.plan
            failing = (
                bool(plan.statuses)
                and (not plan.methods or method in plan.methods)
                and (plan.remaining is None or plan.remaining > 0)
                and self.rng.random() < plan.rate
            )
            if failing and plan.remaining is not None:
                plan.remaining -= 1
            status = self.rng.choice(plan.statuses) if failing else 0
        if plan.latency_ms and (not plan.methods or method in plan.methods):
            time.sleep(plan.latency_ms / 1000)
        if failing:
            reason, message = FAULT_STATUSES[status]
            raise InjectedFault(GmailError(status, reason, message), plan.retry_after)
        if not metered:
            return None
        units = units_for(method)
        with self.lock:
            meter = self.meter
            if meter.enforce:
                try:
                    meter.check(user, units, self.clock())
                except GmailError as error:
                    raise InjectedFault(error, None) from error
            meter.units_total += units
            meter.by_method[method] += units
            meter.calls_by_method[method] += 1
            meter.by_user[user] += units
        return None

    def reset_meter(self, enforce: bool | None = None) -> None:
        """A fresh meter that keeps the limits (and, unless told, whether they are enforced)."""
        with self.lock:
            old = self.meter
            self.meter = QuotaMeter(
                enforce=old.enforce if enforce is None else enforce,
                user_units_per_minute=old.user_units_per_minute,
                project_units_per_minute=old.project_units_per_minute,
            )


class InjectedFault(Exception):
    def __init__(self, error: GmailError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
