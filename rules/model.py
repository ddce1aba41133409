"""Rules as data: triggers, fields, operators, conditions and actions, validated on load.

A rule file is ``{"rules": [rule, …]}`` (or just the list), in JSON or YAML. A rule::

    name: Urgent mail is high priority
    trigger: ticket_created            # ticket_created | customer_replied | agent_replied | time
    conditions:                        # optional; all / any / not of {field, op, value}
      any:
        - {field: subject, op: contains, value: urgent}
        - {field: body, op: matches, value: "не\\s+работает"}
    actions:
      - set_priority: high
    stop_processing: false
    enabled: true
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from enum import StrEnum
from typing import Any, Union

import regex

#: Longest regex a rule may use, and how long one match may take (seconds).
MAX_PATTERN_LENGTH = 200
REGEX_TIMEOUT = 0.05
#: Text longer than this is cut before matching (bodies can be megabytes).
MAX_MATCHED_TEXT = 20_000
MAX_NAME_LENGTH = 200


class Trigger(StrEnum):
    TICKET_CREATED = "ticket_created"
    CUSTOMER_REPLIED = "customer_replied"
    AGENT_REPLIED = "agent_replied"
    TIME = "time"
    #: A customer rated the ticket (or changed their rating): see the ``csat`` and ``csat_score`` fields.
    CSAT_RATED = "csat_rated"
    #: A customer said an FAQ answer in their acknowledgement solved their question (server.knowledge.faq).
    FAQ_SOLVED = "faq_solved"
    #: Another ticket was merged into this one (the facts are the surviving ticket's).
    TICKET_MERGED = "ticket_merged"


class FieldType(StrEnum):
    TEXT = "text"
    LIST = "list"
    NUMBER = "number"
    BOOL = "bool"


#: The facts a condition can read, with their type.
FIELDS: dict[str, FieldType] = {
    "from": FieldType.TEXT,
    "from_domain": FieldType.TEXT,
    "to": FieldType.LIST,
    "cc": FieldType.LIST,
    "subject": FieldType.TEXT,
    "body": FieldType.TEXT,
    "has_attachment": FieldType.BOOL,
    # Why the mail was taken for automatic ("delivery report", "Auto-Submitted: auto-replied" …), or "".
    "auto_reason": FieldType.TEXT,
    "labels": FieldType.LIST,
    "within_business_hours": FieldType.BOOL,
    "weekday": FieldType.TEXT,
    "priority": FieldType.TEXT,
    "status": FieldType.TEXT,
    "tags": FieldType.LIST,
    "assignee": FieldType.TEXT,
    "mailbox": FieldType.TEXT,
    "hours_since_created": FieldType.NUMBER,
    "hours_since_customer_reply": FieldType.NUMBER,
    "hours_since_agent_reply": FieldType.NUMBER,
    # The customer's rating of the ticket ("good"/"okay"/"bad", or "1"…"5"), and the same as 1…5; empty
    # and none until they rate.
    "csat": FieldType.TEXT,
    "csat_score": FieldType.NUMBER,
    # What the customer's message says of itself, read on the server (server.knowledge.signals):
    # "low"/"normal"/"high" and "negative"/"neutral"/"positive"; for time rules, their latest message's.
    "urgency": FieldType.TEXT,
    "tone": FieldType.TEXT,
    # The addresses of the agents @mentioned in the ticket's internal notes.
    "mentioned": FieldType.LIST,
}

#: Operators and the field types they apply to; each has a negation ``not_<op>``.
BASE_OPERATORS: dict[str, frozenset[FieldType]] = {
    "equals": frozenset({FieldType.TEXT, FieldType.LIST, FieldType.NUMBER, FieldType.BOOL}),
    "contains": frozenset({FieldType.TEXT, FieldType.LIST}),
    "starts_with": frozenset({FieldType.TEXT, FieldType.LIST}),
    "ends_with": frozenset({FieldType.TEXT, FieldType.LIST}),
    "matches": frozenset({FieldType.TEXT, FieldType.LIST}),
    "in": frozenset({FieldType.TEXT, FieldType.LIST, FieldType.NUMBER}),
    "is_empty": frozenset({FieldType.TEXT, FieldType.LIST, FieldType.NUMBER, FieldType.BOOL}),
    "gt": frozenset({FieldType.NUMBER}),
    "lt": frozenset({FieldType.NUMBER}),
}
OPERATORS: dict[str, tuple[str, bool]] = {
    **{name: (name, False) for name in BASE_OPERATORS},
    **{f"not_{name}": (name, True) for name in BASE_OPERATORS},
    "is_not_empty": ("is_empty", True),
}


class TicketStatus(StrEnum):
    """A ticket's status; the server's models, pages and rules all read this one list."""

    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    SOLVED = "solved"
    CLOSED = "closed"
    #: Merged into another ticket (only merging sets it): read-only, out of every queue and report.
    MERGED = "merged"


class Priority(StrEnum):
    """A ticket's priority, lowest first."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


#: Statuses of a ticket still being worked on (the rest are done).
ACTIVE_STATUSES = (TicketStatus.OPEN.value, TicketStatus.PENDING.value, TicketStatus.ON_HOLD.value)
DONE_STATUSES = (TicketStatus.SOLVED.value, TicketStatus.CLOSED.value)
PRIORITIES = tuple(p.value for p in Priority)
STATUSES = tuple(s.value for s in TicketStatus)
#: What an action may set a status to (a ticket becomes merged only by merging).
SETTABLE_STATUSES = tuple(s for s in STATUSES if s != TicketStatus.MERGED.value)
ASSIGN_STRATEGIES = ("round_robin", "least_open")
NOTIFY_GROUPS = ("assignee", "admins", "agents", "customer")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ActionKind(StrEnum):
    ASSIGN = "assign"
    SET_PRIORITY = "set_priority"
    ADD_TAG = "add_tag"
    REMOVE_TAG = "remove_tag"
    SET_STATUS = "set_status"
    SET_SLA_POLICY = "set_sla_policy"
    AUTO_REPLY = "auto_reply"
    NOTIFY = "notify"
    ADD_NOTE = "add_note"
    GMAIL_LABEL = "gmail_label"


@dataclass(frozen=True)
class Leaf:
    field: str
    op: str
    value: Any = None
    pattern: regex.Pattern[str] | None = dataclass_field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class All:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    item: Condition


Condition = Union[Leaf, All, AnyOf, Not]  # noqa: UP007 - a runtime alias of a recursive type


@dataclass(frozen=True)
class Action:
    """One action; ``value`` is the plain value (``"high"``) or options (``{"template": …}``)."""

    kind: ActionKind
    value: Any


@dataclass(frozen=True)
class Rule:
    name: str
    trigger: Trigger
    conditions: Condition | None
    actions: tuple[Action, ...]
    stop_processing: bool = False
    enabled: bool = True


def fields_read(condition: Condition | None) -> frozenset[str]:
    """The fields a condition reads (none without conditions): facts that cost something are only
    gathered for rules that read them."""
    if condition is None:
        return frozenset()
    if isinstance(condition, Leaf):
        return frozenset({condition.field})
    if isinstance(condition, Not):
        return fields_read(condition.item)
    return frozenset().union(*(fields_read(item) for item in condition.items))
