"""Evaluate a rule's conditions against facts: deterministic, explained, never raising."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rules.model import (
    FIELDS,
    MAX_MATCHED_TEXT,
    OPERATORS,
    REGEX_TIMEOUT,
    All,
    AnyOf,
    Condition,
    FieldType,
    Leaf,
    Not,
    Rule,
)

Facts = Mapping[str, Any]


@dataclass
class Evaluation:
    """Whether the rule matched, and why: one line per condition looked at."""

    matched: bool
    explanation: list[str] = field(default_factory=list)


def evaluate(rule: Rule, facts: Facts) -> Evaluation:
    """Do ``facts`` satisfy ``rule``'s conditions? (Trigger and ``enabled`` are the caller's business.)"""
    if rule.conditions is None:
        return Evaluation(True, ["no conditions: always matches"])
    lines: list[str] = []
    matched = _check(rule.conditions, facts, lines, 0)
    return Evaluation(matched, lines)


def _check(condition: Condition, facts: Facts, lines: list[str], depth: int) -> bool:
    indent = "  " * depth
    if isinstance(condition, All):
        lines.append(f"{indent}all of:")
        results = [_check(c, facts, lines, depth + 1) for c in condition.items]
        return all(results)
    if isinstance(condition, AnyOf):
        lines.append(f"{indent}any of:")
        results = [_check(c, facts, lines, depth + 1) for c in condition.items]
        return any(results)
    if isinstance(condition, Not):
        lines.append(f"{indent}not:")
        return not _check(condition.item, facts, lines, depth + 1)
    result, note = _leaf(condition, facts)
    mark = "✓" if result else "✗"
    value = "" if condition.value is None else f" {condition.value!r}"
    lines.append(f"{indent}{mark} {condition.field} {condition.op}{value}{note}")
    return result


def _fold(value: Any) -> str:
    return str(value).casefold()


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    return [value]


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def _leaf(leaf: Leaf, facts: Facts) -> tuple[bool, str]:
    base, negated = OPERATORS[leaf.op]
    field_type = FIELDS[leaf.field]
    raw = facts.get(leaf.field)
    result, note = _base(base, leaf, field_type, raw)
    return (not result if negated else result), note


def _base(base: str, leaf: Leaf, field_type: FieldType, raw: Any) -> tuple[bool, str]:
    if base == "is_empty":
        return (raw is None or raw == "" or _as_list(raw) == []), ""
    if field_type is FieldType.NUMBER:
        number = _number(raw)
        if number is None:
            return False, " (no value)"
        if base == "gt":
            return number > float(leaf.value), ""
        if base == "lt":
            return number < float(leaf.value), ""
        if base == "in":
            return any(_number(v) == number for v in leaf.value), ""
        return number == float(leaf.value), ""
    if field_type is FieldType.BOOL:
        return (bool(raw) if raw is not None else False) == leaf.value, ""
    values = [str(v)[:MAX_MATCHED_TEXT] for v in _as_list(raw) if v is not None]
    if base == "in":
        wanted = {_fold(v) for v in leaf.value}
        return any(_fold(v) in wanted for v in values), ""
    if base == "matches":
        if leaf.pattern is None:
            return False, " (no pattern)"
        for text in values:
            try:
                if leaf.pattern.search(text, timeout=REGEX_TIMEOUT):
                    return True, ""
            except TimeoutError:
                return False, " (regex timed out)"
        return False, ""
    needle = _fold(leaf.value)
    checks: dict[str, Callable[[str], bool]] = {
        "equals": lambda text: text == needle,
        "contains": lambda text: needle in text,
        "starts_with": lambda text: text.startswith(needle),
        "ends_with": lambda text: text.endswith(needle),
    }
    check = checks[base]
    return any(check(_fold(text)) for text in values), ""
