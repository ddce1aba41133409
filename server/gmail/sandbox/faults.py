"""Injected failures, latency and the quota meter of the sandbox."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from server.gmail.quota import PER_USER_UNITS_PER_SECOND, units_for
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


@dataclass
class QuotaMeter:
    enforce: bool = True
    units_total: int = 0
    by_method: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    calls_by_method: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_user: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    window: dict[str, deque[tuple[float, int]]] = field(default_factory=lambda: defaultdict(deque))
    batch_sizes: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "units_total": self.units_total,
            "by_method": dict(self.by_method),
            "calls_by_method": dict(self.calls_by_method),
            "by_user": dict(self.by_user),
            "batch_sizes": list(self.batch_sizes),
            "enforce": self.enforce,
            "per_user_units_per_second": PER_USER_UNITS_PER_SECOND,
        }


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

    def admit(self, method: str, user: str) -> float | None:
        """Raise the injected or rate-limit error for this call, or meter it. Returns Retry-After."""
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
        units = units_for(method)
        with self.lock:
            meter = self.meter
            if meter.enforce:
                now = self.clock()
                window = meter.window[user]
                while window and window[0][0] <= now - 1.0:
                    window.popleft()
                if sum(u for _, u in window) + units > PER_USER_UNITS_PER_SECOND:
                    error = GmailError(429, "rateLimitExceeded", "User-rate limit exceeded.")
                    raise InjectedFault(error, 1.0)
                window.append((now, units))
            meter.units_total += units
            meter.by_method[method] += units
            meter.calls_by_method[method] += 1
            meter.by_user[user] += units
        return None

    def reset_meter(self, enforce: bool | None = None) -> None:
        with self.lock:
            keep = self.meter.enforce if enforce is None else enforce
            self.meter = QuotaMeter(enforce=keep)


class InjectedFault(Exception):
    def __init__(self, error: GmailError, retry_after: float | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after
