"""The rule engine: conditions and actions as data, evaluated without Flask, a database or I/O.

``server`` imports it; it never imports ``server``. Load rules with :func:`load_rules` (or
:func:`loads` for JSON/YAML text), check them with :func:`evaluate`, dump them with :func:`dump_rules`.
"""

from rules.errors import Problem, RuleError
from rules.evaluate import Evaluation, evaluate
from rules.load import dump_rule, dump_rules, dumps_json, dumps_yaml, load_rule, load_rules, loads
from rules.model import FIELDS, OPERATORS, Action, ActionKind, Priority, Rule, TicketStatus, Trigger

__all__ = [
    "FIELDS",
    "OPERATORS",
    "Action",
    "ActionKind",
    "Evaluation",
    "Priority",
    "Problem",
    "Rule",
    "RuleError",
    "TicketStatus",
    "Trigger",
    "dump_rule",
    "dump_rules",
    "dumps_json",
    "dumps_yaml",
    "evaluate",
    "load_rule",
    "load_rules",
    "loads",
]
