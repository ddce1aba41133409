"""The subset of Gmail's search syntax (the ``q`` parameter) the sandbox understands.

Supported: ``rfc822msgid:``, ``after:``/``before:`` (YYYY/MM/DD at midnight Pacific time, as Gmail
does, or epoch seconds), ``newer_than:``/``older_than:`` (Nd, Nm, Ny), ``in:``/``label:``, ``from:``,
``to:``, ``subject:``, ``is:unread|read|starred``, ``has:attachment``, quoted phrases, plain words, and
``-`` to negate any term. Unknown operators are searched as plain words.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from server.gmail.sandbox.errors import invalid

PACIFIC = ZoneInfo("America/Los_Angeles")


@dataclass(frozen=True)
class Searchable:
    """What a query can look at for one message."""

    rfc822_id: str
    internal_date_ms: int
    label_ids: frozenset[str]
    label_names: frozenset[str]
    sender: str
    recipients: str
    subject: str
    text: str
    has_attachment: bool


Predicate = Callable[[Searchable], bool]


def _instant_ms(value: str) -> int:
    if value.isdecimal():
        return int(value) * 1000
    match = re.fullmatch(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})", value)
    if not match:
        raise invalid(f"Invalid date in query: {value}")
    try:
        day = datetime(int(match[1]), int(match[2]), int(match[3]), tzinfo=PACIFIC)
    except ValueError as exc:
        raise invalid(f"Invalid date in query: {value}") from exc
    return int(day.timestamp() * 1000)


def _age_ms(value: str) -> int:
    match = re.fullmatch(r"(\d+)([dmy])", value.lower())
    if not match:
        raise invalid(f"Invalid relative date in query: {value}")
    days = int(match[1]) * {"d": 1, "m": 30, "y": 365}[match[2]]
    return days * 86_400_000


def _label_key(name: str) -> str:
    # Gmail lets "label:my-label" match a label named "My label".
    return re.sub(r"[\s/_-]+", "-", name.strip().lower())


def _term(token: str, now_ms: int) -> Predicate:
    operator, sep, value = token.partition(":")
    operator = operator.lower()
    if sep and value:
        if operator == "rfc822msgid":
            wanted = value.strip("<>")
            return lambda m: m.rfc822_id.strip("<>") == wanted
        if operator == "after":
            after = _instant_ms(value)
            return lambda m: m.internal_date_ms >= after
        if operator == "before":
            before = _instant_ms(value)
            return lambda m: m.internal_date_ms < before
        if operator == "newer_than":
            newer = now_ms - _age_ms(value)
            return lambda m: m.internal_date_ms >= newer
        if operator == "older_than":
            older = now_ms - _age_ms(value)
            return lambda m: m.internal_date_ms < older
        if operator in {"in", "label"}:
            key = _label_key(value)
            if key == "anywhere":
                return lambda m: True
            return lambda m: key in {_label_key(x) for x in m.label_names | m.label_ids}
        if operator == "from":
            return lambda m: value.lower() in m.sender.lower()
        if operator == "to":
            return lambda m: value.lower() in m.recipients.lower()
        if operator == "subject":
            return lambda m: value.lower() in m.subject.lower()
        if operator == "is":
            flag = value.lower()
            if flag == "unread":
                return lambda m: "UNREAD" in m.label_ids
            if flag == "read":
                return lambda m: "UNREAD" not in m.label_ids
            if flag == "starred":
                return lambda m: "STARRED" in m.label_ids
        if operator == "has" and value.lower() == "attachment":
            return lambda m: m.has_attachment
    word = token.lower()
    return lambda m: word in m.subject.lower() or word in m.text.lower() or word in m.sender.lower()


def compile_query(query: str, now_ms: int) -> tuple[Predicate, bool]:
    """Compile ``q`` into a predicate; the flag says whether the query names spam/trash itself."""
    try:
        tokens = shlex.split(query, posix=True)
    except ValueError:  # an unbalanced quote: Gmail searches the words anyway
        tokens = query.replace('"', " ").split()
    predicates: list[Predicate] = []
    names_spam_or_trash = False
    for token in tokens:
        negate = token.startswith("-") and len(token) > 1
        body = token[1:] if negate else token
        if re.fullmatch(r"(in|label):(trash|spam|anywhere)", body, flags=re.IGNORECASE):
            names_spam_or_trash = True
        predicate = _term(body, now_ms)
        predicates.append((lambda p: lambda m: not p(m))(predicate) if negate else predicate)
    return (lambda m: all(p(m) for p in predicates)), names_spam_or_trash
