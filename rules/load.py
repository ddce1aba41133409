"""Load rules from plain data, JSON or YAML, with every problem reported by its path; dump them back."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import regex
import yaml

from rules.documents import load_document
from rules.errors import DocumentError, Problem, RuleError
from rules.model import (
    ASSIGN_STRATEGIES,
    BASE_OPERATORS,
    FIELDS,
    MAX_NAME_LENGTH,
    MAX_PATTERN_LENGTH,
    NOTIFY_GROUPS,
    OPERATORS,
    PRIORITIES,
    SETTABLE_STATUSES,
    Action,
    ActionKind,
    All,
    AnyOf,
    Condition,
    FieldType,
    Leaf,
    Not,
    Rule,
    Trigger,
)

#: The most rules one file may hold, and the deepest condition tree (both far above real use).
MAX_RULES = 500
MAX_DEPTH = 20


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))


def load_rules(data: Any) -> list[Rule]:
    """Rules from ``{"rules": [...]}`` or a list; raises :class:`RuleError` listing every problem."""
    problems = _Collector()
    items = data.get("rules") if isinstance(data, Mapping) else data
    if isinstance(data, Mapping) and set(data) - {"rules"}:
        problems.add("", f"unknown key(s) {sorted(map(str, set(data) - {'rules'}))}; expected 'rules'")
    if not isinstance(items, list):
        raise RuleError([Problem("rules", "expected a list of rules")])
    if len(items) > MAX_RULES:
        raise RuleError([Problem("rules", f"at most {MAX_RULES} rules")])
    rules = [_rule(item, f"rules[{index}]", problems) for index, item in enumerate(items)]
    if problems.problems:
        raise RuleError(problems.problems)
    return [rule for rule in rules if rule is not None]


def load_rule(data: Any, path: str = "rule") -> Rule:
    """One rule; raises :class:`RuleError` listing every problem."""
    problems = _Collector()
    rule = _rule(data, path, problems)
    if problems.problems or rule is None:
        raise RuleError(problems.problems or [Problem(path, "invalid rule")])
    return rule


def loads(text: str) -> list[Rule]:
    """Rules from YAML or JSON text (:func:`rules.documents.load_document`); a text that cannot be read
    is one problem with its line."""
    try:
        data = load_document(text)
    except DocumentError as exc:
        raise RuleError([Problem("", str(exc))]) from exc
    return load_rules(data)


def _rule(data: Any, path: str, problems: _Collector) -> Rule | None:
    if not isinstance(data, Mapping):
        problems.add(path, "a rule must be an object with name, trigger, conditions and actions")
        return None
    known = {"name", "trigger", "conditions", "actions", "stop_processing", "enabled"}
    for key in data:
        if key not in known:
            problems.add(f"{path}.{key}", f"unknown key; expected one of {sorted(known)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.add(f"{path}.name", "a rule needs a name")
        name = ""
    elif len(name) > MAX_NAME_LENGTH:
        problems.add(f"{path}.name", f"at most {MAX_NAME_LENGTH} characters")
    trigger_value = data.get("trigger")
    trigger: Trigger | None = None
    if trigger_value in {t.value for t in Trigger}:
        trigger = Trigger(trigger_value)
    else:
        problems.add(
            f"{path}.trigger",
            f"unknown trigger {trigger_value!r}; expected one of {[t.value for t in Trigger]}",
        )
    conditions = None
    if data.get("conditions") not in (None, {}, []):
        conditions = _condition(data["conditions"], f"{path}.conditions", problems, 0)
    actions_data = data.get("actions")
    actions: list[Action] = []
    if not isinstance(actions_data, list) or not actions_data:
        problems.add(f"{path}.actions", "a rule needs a list of at least one action")
    else:
        for index, item in enumerate(actions_data):
            action = _action(item, f"{path}.actions[{index}]", problems)
            if action is not None:
                actions.append(action)
    flags: dict[str, bool] = {}
    for flag, default in (("stop_processing", False), ("enabled", True)):
        value = data.get(flag, default)
        if not isinstance(value, bool):
            problems.add(f"{path}.{flag}", "must be true or false")
            value = default
        flags[flag] = value
    if trigger is None:
        return None
    return Rule(name.strip(), trigger, conditions, tuple(actions), flags["stop_processing"], flags["enabled"])


def _condition(data: Any, path: str, problems: _Collector, depth: int) -> Condition | None:
    if depth > MAX_DEPTH:
        problems.add(path, f"conditions nest deeper than {MAX_DEPTH} levels")
        return None
    if not isinstance(data, Mapping):
        problems.add(
            path, "a condition must be an object: {all: […]}, {any: […]}, {not: …} or {field, op, value}"
        )
        return None
    groups = [key for key in ("all", "any", "not") if key in data]
    if groups:
        if len(data) != 1:
            problems.add(path, f"'{groups[0]}' must be the only key of its condition")
            return None
        key = groups[0]
        if key == "not":
            inner = _condition(data["not"], f"{path}.not", problems, depth + 1)
            return Not(inner) if inner is not None else None
        items = data[key]
        if not isinstance(items, list) or not items:
            problems.add(f"{path}.{key}", "expected a non-empty list of conditions")
            return None
        parsed = [_condition(item, f"{path}.{key}[{i}]", problems, depth + 1) for i, item in enumerate(items)]
        if any(item is None for item in parsed):
            return None
        children = tuple(item for item in parsed if item is not None)
        return All(children) if key == "all" else AnyOf(children)
    return _leaf(data, path, problems)


def _leaf(data: Mapping[str, Any], path: str, problems: _Collector) -> Leaf | None:
    for key in data:
        if key not in {"field", "op", "value"}:
            problems.add(f"{path}.{key}", "unknown key; a condition has field, op and value")
    field_name, op, value = data.get("field"), data.get("op"), data.get("value")
    ok = True
    if field_name not in FIELDS:
        problems.add(f"{path}.field", f"unknown field {field_name!r}; expected one of {sorted(FIELDS)}")
        ok = False
    if op not in OPERATORS:
        problems.add(f"{path}.op", f"unknown operator {op!r}; expected one of {sorted(OPERATORS)}")
        ok = False
    if not ok:
        return None
    assert isinstance(field_name, str) and isinstance(op, str)
    base, _negated = OPERATORS[op]
    field_type = FIELDS[field_name]
    if field_type not in BASE_OPERATORS[base]:
        problems.add(
            f"{path}.op", f"operator '{op}' does not apply to {field_type.value} field '{field_name}'"
        )
        return None
    pattern = None
    if base == "is_empty":
        if value is not None:
            problems.add(f"{path}.value", f"'{op}' takes no value")
    elif base in {"gt", "lt"} or (field_type is FieldType.NUMBER and base == "equals"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            problems.add(f"{path}.value", f"'{op}' on '{field_name}' needs a number")
    elif field_type is FieldType.BOOL:
        if not isinstance(value, bool):
            problems.add(f"{path}.value", f"'{field_name}' is true or false")
    elif base == "in":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str | int | float) for v in value)
        ):
            problems.add(f"{path}.value", f"'{op}' needs a non-empty list of values")
    elif not isinstance(value, str) or (base != "equals" and not value):
        problems.add(f"{path}.value", f"'{op}' needs a text value")
    elif base == "matches":
        if len(value) > MAX_PATTERN_LENGTH:
            problems.add(f"{path}.value", f"regex longer than {MAX_PATTERN_LENGTH} characters")
        else:
            try:
                pattern = regex.compile(value, regex.IGNORECASE | regex.UNICODE | regex.V0)
            except (regex.error, ValueError, OverflowError) as exc:
                problems.add(f"{path}.value", f"invalid regex: {exc}")
    return Leaf(field_name, op, value, pattern)


def _action(data: Any, path: str, problems: _Collector) -> Action | None:
    if not isinstance(data, Mapping) or len(data) != 1:
        problems.add(
            path, f"an action is an object with exactly one key, one of {[k.value for k in ActionKind]}"
        )
        return None
    ((key, value),) = data.items()
    if key not in {k.value for k in ActionKind}:
        problems.add(
            f"{path}.{key}", f"unknown action {key!r}; expected one of {[k.value for k in ActionKind]}"
        )
        return None
    kind = ActionKind(key)
    where = f"{path}.{key}"
    if kind is ActionKind.ASSIGN:
        if not isinstance(value, str) or not (value in ASSIGN_STRATEGIES or "@" in value):
            problems.add(where, f"assign to an agent's email or one of {list(ASSIGN_STRATEGIES)}")
    elif kind is ActionKind.SET_PRIORITY:
        if value not in PRIORITIES:
            problems.add(where, f"unknown priority {value!r}; expected one of {list(PRIORITIES)}")
    elif kind is ActionKind.SET_STATUS:
        if value not in SETTABLE_STATUSES:
            problems.add(where, f"unknown status {value!r}; expected one of {list(SETTABLE_STATUSES)}")
    elif kind in {
        ActionKind.ADD_TAG,
        ActionKind.REMOVE_TAG,
        ActionKind.SET_SLA_POLICY,
        ActionKind.GMAIL_LABEL,
    }:
        if not isinstance(value, str) or not value.strip() or len(value) > 100:
            problems.add(where, "needs a name (1-100 characters)")
    elif kind is ActionKind.ADD_NOTE:
        if not isinstance(value, str) or not value.strip() or len(value) > 10_000:
            problems.add(where, "needs the note's text (at most 10,000 characters)")
    elif kind is ActionKind.AUTO_REPLY:
        value = {"template": value} if isinstance(value, str) else value
        if (
            not isinstance(value, Mapping)
            or not isinstance(value.get("template"), str)
            or not value["template"]
        ):
            problems.add(where, "needs a template name: auto_reply: {template: NAME}")
        elif set(value) - {"template"}:
            problems.add(where, "auto_reply takes only 'template'")
    elif kind is ActionKind.NOTIFY:
        value = _notify(value, where, problems)
    return Action(kind, value)


def _notify(value: Any, where: str, problems: _Collector) -> Any:
    if not isinstance(value, Mapping):
        problems.add(where, "notify needs {to: [assignee|admins|agents|customer|EMAIL …], template: NAME}")
        return value
    recipients = value.get("to")
    if isinstance(recipients, str):
        recipients = [recipients]
    if not isinstance(recipients, list) or not recipients:
        problems.add(f"{where}.to", "needs a list of recipients")
    else:
        for index, recipient in enumerate(recipients):
            if not isinstance(recipient, str) or not (recipient in NOTIFY_GROUPS or "@" in recipient):
                problems.add(f"{where}.to[{index}]", f"expected an email or one of {list(NOTIFY_GROUPS)}")
    if not isinstance(value.get("template"), str) or not value.get("template"):
        problems.add(f"{where}.template", "needs a template name")
    if set(value) - {"to", "template"}:
        problems.add(where, "notify takes only 'to' and 'template'")
    return {"to": recipients, "template": value.get("template")}


# --- dumping ------------------------------------------------------------------------------------------
def dump_condition(condition: Condition) -> dict[str, Any]:
    if isinstance(condition, All):
        return {"all": [dump_condition(c) for c in condition.items]}
    if isinstance(condition, AnyOf):
        return {"any": [dump_condition(c) for c in condition.items]}
    if isinstance(condition, Not):
        return {"not": dump_condition(condition.item)}
    leaf: dict[str, Any] = {"field": condition.field, "op": condition.op}
    if condition.value is not None:
        leaf["value"] = condition.value
    return leaf


def dump_rule(rule: Rule) -> dict[str, Any]:
    data: dict[str, Any] = {"name": rule.name, "trigger": rule.trigger.value}
    if rule.conditions is not None:
        data["conditions"] = dump_condition(rule.conditions)
    data["actions"] = [{action.kind.value: action.value} for action in rule.actions]
    data["stop_processing"] = rule.stop_processing
    data["enabled"] = rule.enabled
    return data


def dump_rules(rules: Sequence[Rule]) -> dict[str, Any]:
    return {"rules": [dump_rule(rule) for rule in rules]}


def dumps_yaml(rules: Sequence[Rule]) -> str:
    return yaml.safe_dump(dump_rules(rules), allow_unicode=True, sort_keys=False)


def dumps_json(rules: Sequence[Rule]) -> str:
    return json.dumps(dump_rules(rules), ensure_ascii=False, indent=2)
