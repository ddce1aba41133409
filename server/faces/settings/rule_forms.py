"""A rule as the flat form data of the settings page's builder, and back.

The builder is a second face of the same rule: :func:`to_form` writes any rule the engine accepts as
string fields, :func:`from_form` reads them back into the engine's own format and loads it with the
engine (so the problems are the engine's, at their paths). The round trip is exact (a property
test), so the builder refuses nothing the text allows.

Fields: ``name``, ``trigger``, ``enabled``/``stop_processing`` (present = true); the condition tree
under ``c`` — each node ``{path}.kind`` (``all``/``any``/``not``/``leaf``), children at ``{path}.0``,
``{path}.1`` …; a leaf's ``{path}.field``, ``{path}.op``, ``{path}.value`` and ``{path}.value_kind``
(``text``/``number``/``bool``/``list``/``none``; a list is written as JSON) — and actions
``a.{i}.kind`` with ``a.{i}.value``, or ``a.{i}.template`` (auto_reply, notify) and ``a.{i}.to``
(notify: one recipient a line).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import rules as rule_engine
from rules.model import All, AnyOf, Leaf, Not

#: The most condition nodes and actions a form may describe (a bound on what a request can make us build).
MAX_NODES = 500
MAX_ACTIONS = 100


def _value_kind(value: Any) -> tuple[str, str]:
    if value is None:
        return "none", ""
    if isinstance(value, bool):
        return "bool", "true" if value else "false"
    if isinstance(value, int | float):
        return "number", repr(value)
    if isinstance(value, list):
        return "list", json.dumps(value, ensure_ascii=False)
    return "text", str(value)


def _condition_to_form(condition: Any, path: str, out: dict[str, str]) -> None:
    if isinstance(condition, All | AnyOf):
        out[f"{path}.kind"] = "all" if isinstance(condition, All) else "any"
        for index, item in enumerate(condition.items):
            _condition_to_form(item, f"{path}.{index}", out)
    elif isinstance(condition, Not):
        out[f"{path}.kind"] = "not"
        _condition_to_form(condition.item, f"{path}.0", out)
    else:
        assert isinstance(condition, Leaf)
        kind, text = _value_kind(condition.value)
        out |= {f"{path}.kind": "leaf", f"{path}.field": condition.field, f"{path}.op": condition.op,
                f"{path}.value_kind": kind, f"{path}.value": text}  # fmt: skip


def to_form(rule: rule_engine.Rule) -> dict[str, str]:
    """The builder's fields for ``rule``."""
    out: dict[str, str] = {"name": rule.name, "trigger": rule.trigger.value}
    if rule.enabled:
        out["enabled"] = "y"
    if rule.stop_processing:
        out["stop_processing"] = "y"
    if rule.conditions is not None:
        _condition_to_form(rule.conditions, "c", out)
    _actions_to_form(rule, out)
    return out


def _actions_to_form(rule: rule_engine.Rule, out: dict[str, str]) -> None:
    for index, action in enumerate(rule.actions):
        key = f"a.{index}"
        out[f"{key}.kind"] = action.kind.value
        if action.kind is rule_engine.ActionKind.AUTO_REPLY:
            out[f"{key}.template"] = str(action.value.get("template", ""))
        elif action.kind is rule_engine.ActionKind.NOTIFY:
            out[f"{key}.template"] = str(action.value.get("template") or "")
            recipients = [str(r) for r in action.value.get("to") or []]
            plain = not any("\n" in r or r != r.strip() or not r for r in recipients)
            out[f"{key}.to"] = "\n".join(recipients) if plain else json.dumps(recipients, ensure_ascii=False)
        else:
            out[f"{key}.value"] = "" if action.value is None else str(action.value)


def _parse_value(kind: str, text: str) -> Any:
    """A leaf's value from its field; a value that does not parse is kept as text for the engine to refuse."""
    if kind == "none":
        return None
    if kind == "bool":
        return {"true": True, "false": False}.get(text.strip().lower(), text)
    if kind == "number":
        try:
            number = float(text)
        except ValueError:
            return text
        return int(text) if text.strip().lstrip("-").isdecimal() else number
    if kind == "list":
        try:
            parsed = json.loads(text)
        except ValueError:
            return [line.strip() for line in text.splitlines() if line.strip()]
        return parsed
    return text


def _recipients(text: str) -> Any:
    """One recipient a line, or (for recipients a line cannot hold) a JSON list."""
    if text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return [line.strip() for line in text.splitlines() if line.strip()]


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_NODES


def _condition_from_form(data: Mapping[str, str], path: str, budget: _Budget) -> Any:
    budget.left -= 1
    if budget.left < 0:
        return {"field": "subject", "op": "too_many_conditions"}  # the engine names it at its path
    kind = data.get(f"{path}.kind", "leaf")
    if kind in ("all", "any"):
        items = []
        index = 0
        while f"{path}.{index}.kind" in data and index < MAX_NODES:
            items.append(_condition_from_form(data, f"{path}.{index}", budget))
            index += 1
        return {kind: items}
    if kind == "not":
        return {"not": _condition_from_form(data, f"{path}.0", budget)}
    leaf: dict[str, Any] = {"field": data.get(f"{path}.field", ""), "op": data.get(f"{path}.op", "")}
    value = _parse_value(data.get(f"{path}.value_kind", "text"), data.get(f"{path}.value", ""))
    if value is not None:
        leaf["value"] = value
    return leaf


def from_form(data: Mapping[str, str]) -> rule_engine.Rule:
    """The rule the builder's fields describe, loaded by the engine; :class:`rules.RuleError` lists
    every problem with its path (``rule.conditions.any[1].op`` …)."""
    rule: dict[str, Any] = {
        "name": data.get("name", ""),
        "trigger": data.get("trigger", ""),
        "enabled": "enabled" in data,
        "stop_processing": "stop_processing" in data,
        "actions": [],
    }
    if "c.kind" in data:
        rule["conditions"] = _condition_from_form(data, "c", _Budget())
    index = 0
    while f"a.{index}.kind" in data and index < MAX_ACTIONS:
        key = f"a.{index}"
        kind = data[f"{key}.kind"]
        if kind == rule_engine.ActionKind.AUTO_REPLY.value:
            value: Any = {"template": data.get(f"{key}.template", "")}
        elif kind == rule_engine.ActionKind.NOTIFY.value:
            recipients = _recipients(data.get(f"{key}.to", ""))
            value = {"to": recipients, "template": data.get(f"{key}.template", "")}
        else:
            value = data.get(f"{key}.value", "")
        rule["actions"].append({kind: value})
        index += 1
    return rule_engine.load_rule(rule)


# --- editing the builder's fields (adding and removing rows without a script) --------------------------
#: The leaf a new condition row starts as.
NEW_LEAF: dict[str, Any] = {"field": "subject", "op": "contains", "value": ""}


def infer_value_kind(field: str, op: str) -> str:
    """How a leaf's value is written for this field and operator (a new row, or an operator changed)."""
    field_type = rule_engine.FIELDS.get(field)
    base = rule_engine.OPERATORS.get(op, ("", False))[0]
    if base == "is_empty":
        return "none"
    if base in ("gt", "lt") or (field_type is rule_engine.model.FieldType.NUMBER and base == "equals"):
        return "number"
    if field_type is rule_engine.model.FieldType.BOOL:
        return "bool"
    if base == "in":
        return "list"
    return "text"


def _raw_to_form(node: Any, path: str, out: dict[str, str]) -> None:
    if isinstance(node, Mapping) and len(node) == 1 and next(iter(node)) in ("all", "any"):
        ((kind, items),) = node.items()
        out[f"{path}.kind"] = kind
        for index, item in enumerate(items):
            _raw_to_form(item, f"{path}.{index}", out)
    elif isinstance(node, Mapping) and set(node) == {"not"}:
        out[f"{path}.kind"] = "not"
        _raw_to_form(node["not"], f"{path}.0", out)
    else:
        leaf = node if isinstance(node, Mapping) else {}
        field, op = str(leaf.get("field", "")), str(leaf.get("op", ""))
        value = leaf.get("value")
        wanted = infer_value_kind(field, op)  # the kind of value this field and operator take
        have, text = _value_kind(value)
        if have != wanted:  # e.g. the operator was changed: keep what was typed, as text
            text = "" if value is None else (text if have == "list" else str(value))
        out |= {f"{path}.kind": "leaf", f"{path}.field": field, f"{path}.op": op,
                f"{path}.value_kind": wanted, f"{path}.value": text}  # fmt: skip


def _node_at(tree: Any, path: str) -> tuple[Any, Any, int | None]:
    """(node, its parent list or None, its index there) for a path such as ``c.1.0``."""
    parent: Any = None
    index: int | None = None
    node = tree
    for step in path.split(".")[1:]:
        if not step.isdecimal() or not isinstance(node, Mapping):
            return None, None, None
        key = next(iter(node), "")
        children = node.get(key)
        if key == "not":
            children = [children]
        if not isinstance(children, list) or int(step) >= len(children):
            return None, None, None
        parent, index, node = children, int(step), children[int(step)]
    return node, parent, index


def edit(data: Mapping[str, str], command: str) -> dict[str, str]:
    """The builder's fields after one edit: ``add-leaf:PATH``, ``add-group:PATH`` (to a group),
    ``remove:PATH``, ``toggle:PATH`` (all ↔ any), ``add-action``, ``remove-action:I``."""
    verb, _sep, target = command.partition(":")
    head = {key: value for key, value in data.items() if not key.startswith(("c.", "a.")) and key != "c.kind"}
    tree = _condition_from_form(data, "c", _Budget()) if "c.kind" in data else None
    actions = []
    index = 0
    while f"a.{index}.kind" in data and index < MAX_ACTIONS:
        actions.append({k.split(".", 2)[2]: v for k, v in data.items() if k.startswith(f"a.{index}.")})
        index += 1
    if verb in ("add-leaf", "add-group"):
        row = dict(NEW_LEAF) if verb == "add-leaf" else {"any": [dict(NEW_LEAF)]}
        if tree is None:
            tree = {"all": [row]}
        else:
            node, _parent, _index = _node_at(tree, target or "c")
            if isinstance(node, Mapping) and next(iter(node), "") in ("all", "any"):
                node[next(iter(node))].append(row)
            elif target in ("", "c"):
                tree = {"all": [tree, row]}
    elif verb == "remove" and tree is not None:
        if target == "c":
            tree = None
        else:
            _node, parent, position = _node_at(tree, target)
            if parent is not None and position is not None and len(parent) > 1:
                parent.pop(position)
    elif verb == "toggle" and tree is not None:
        node, _parent, _index = _node_at(tree, target or "c")
        if isinstance(node, dict) and next(iter(node), "") in ("all", "any"):
            kind = next(iter(node))
            node["any" if kind == "all" else "all"] = node.pop(kind)
    elif verb == "add-action":
        actions.append({"kind": "add_tag", "value": ""})
    elif verb == "remove-action" and target.isdecimal() and int(target) < len(actions):
        actions.pop(int(target))
    out = dict(head)
    if tree is not None:
        _raw_to_form(tree, "c", out)
    for position, action in enumerate(actions):
        out |= {f"a.{position}.{key}": value for key, value in action.items()}
    return out
