"""The rules package: every operator and action, validation messages with paths, and no crashes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rules
from rules import RuleError, evaluate, load_rule, load_rules, loads
from rules.model import ActionKind


def rule_with(condition, actions=None, trigger="ticket_created"):
    return load_rule(
        {"name": "r", "trigger": trigger, "conditions": condition, "actions": actions or [{"add_tag": "x"}]}
    )


def matches(condition, facts) -> bool:
    return evaluate(rule_with(condition), facts).matched


FACTS = {
    "from": "Ольга.Смирнова@Yandex.RU",
    "from_domain": "yandex.ru",
    "to": ["support@example.com", "Sales@Example.com"],
    "cc": [],
    "subject": "СРОЧНО: сайт не работает",
    "body": "Здравствуйте! Сайт не   работает с утра. URGENT",
    "has_attachment": True,
    "labels": ["INBOX", "UNREAD"],
    "within_business_hours": False,
    "weekday": "mon",
    "priority": "normal",
    "status": "open",
    "tags": ["billing"],
    "assignee": None,
    "mailbox": "support@example.com",
    "hours_since_created": 5,
    "hours_since_customer_reply": 1.5,
    "hours_since_agent_reply": None,
}


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("subject", "contains", "срочно", True),  # case-insensitive Cyrillic
        ("subject", "not_contains", "срочно", False),
        ("from", "equals", "ольга.смирнова@yandex.ru", True),
        ("from", "not_equals", "ольга.смирнова@yandex.ru", False),
        ("subject", "starts_with", "срочно:", True),
        ("subject", "not_starts_with", "срочно:", False),
        ("from_domain", "ends_with", ".RU", True),
        ("from_domain", "not_ends_with", ".ru", False),
        ("body", "matches", r"не\s+работает", True),
        ("body", "not_matches", r"не\s+работает", False),
        ("from_domain", "in", ["mail.ru", "YANDEX.RU"], True),
        ("from_domain", "not_in", ["mail.ru"], True),
        ("assignee", "is_empty", None, True),
        ("assignee", "is_not_empty", None, False),
        ("tags", "is_empty", None, False),
        ("cc", "is_empty", None, True),
        ("hours_since_created", "gt", 4, True),
        ("hours_since_created", "not_gt", 4, False),
        ("hours_since_customer_reply", "lt", 2, True),
        ("hours_since_customer_reply", "not_lt", 2, False),
        ("hours_since_agent_reply", "gt", 0, False),  # no agent reply yet: no value, no match
        ("hours_since_created", "equals", 5, True),
        ("hours_since_created", "in", [1, 5], True),
        ("to", "contains", "sales@", True),  # list fields: any element
        ("to", "equals", "sales@example.com", True),
        ("labels", "in", ["unread"], True),
        ("tags", "not_in", ["billing"], False),
        ("has_attachment", "equals", True, True),
        ("within_business_hours", "equals", True, False),
        ("weekday", "in", ["sat", "sun"], False),
    ],
)
def test_every_operator_and_its_negation(field, op, value, expected):
    condition = {"field": field, "op": op} | ({} if value is None else {"value": value})
    assert matches(condition, FACTS) is expected


def test_all_any_and_not_combine_and_explain_themselves():
    rule = rule_with(
        {
            "all": [
                {
                    "any": [
                        {"field": "subject", "op": "contains", "value": "urgent"},
                        {"field": "body", "op": "contains", "value": "urgent"},
                    ]
                },
                {"not": {"field": "status", "op": "equals", "value": "solved"}},
            ]
        }
    )
    result = evaluate(rule, FACTS)
    again = evaluate(rule, FACTS)
    assert result.matched and result == again  # deterministic
    assert result.explanation == [
        "all of:",
        "  any of:",
        "    ✗ subject contains 'urgent'",
        "    ✓ body contains 'urgent'",
        "  not:",
        "    ✗ status equals 'solved'",
    ]


def test_a_rule_without_conditions_always_matches():
    rule = load_rule({"name": "always", "trigger": "ticket_created", "actions": [{"assign": "round_robin"}]})
    assert evaluate(rule, {}).matched


def test_missing_facts_do_not_raise():
    rule = rule_with({"field": "subject", "op": "matches", "value": "x"})
    assert evaluate(rule, {}).matched is False


@pytest.mark.parametrize(
    "action",
    [
        {"assign": "anna@example.com"},
        {"assign": "round_robin"},
        {"assign": "least_open"},
        {"set_priority": "urgent"},
        {"add_tag": "billing"},
        {"remove_tag": "billing"},
        {"set_status": "pending"},
        {"set_sla_policy": "Gold"},
        {"auto_reply": {"template": "Acknowledgement"}},
        {"auto_reply": "Acknowledgement"},
        {"notify": {"to": ["assignee", "admins", "boss@example.com"], "template": "New urgent ticket"}},
        {"add_note": "Check the contract first"},
        {"gmail_label": "Postdesk/Urgent"},
    ],
)
def test_every_action_loads_and_dumps_back(action):
    rule = load_rule({"name": "r", "trigger": "customer_replied", "actions": [action]})
    dumped = rules.dump_rule(rule)
    assert load_rule(dumped) == rule
    assert rule.actions[0].kind in set(ActionKind)


def test_yaml_and_json_round_trip():
    text = """
rules:
  - name: Срочные письма
    trigger: ticket_created
    conditions:
      any:
        - {field: subject, op: contains, value: срочно}
        - {field: body, op: matches, value: 'не\\s+работает'}
    actions:
      - set_priority: high
      - add_tag: urgent
    stop_processing: true
"""
    loaded = loads(text)
    assert loads(rules.dumps_yaml(loaded)) == loaded
    assert loads(rules.dumps_json(loaded)) == loaded
    assert loaded[0].stop_processing and evaluate(loaded[0], FACTS).matched


def problems_of(data) -> list[str]:
    with pytest.raises(RuleError) as caught:
        load_rules(data)
    return [str(p) for p in caught.value.problems]


def test_validation_lists_every_problem_with_its_path():
    data = {
        "rules": [
            {"name": "fine", "trigger": "ticket_created", "actions": [{"add_tag": "a"}]},
            {"name": "fine too", "trigger": "ticket_created", "actions": [{"add_tag": "b"}]},
            {"name": "ok", "trigger": "time", "actions": [{"set_status": "pending"}]},
            {
                "name": "broken",
                "trigger": "ticket_createdd",
                "conditions": {
                    "any": [
                        {"field": "subject", "op": "contains", "value": "x"},
                        {"field": "subject", "op": "containz", "value": "y"},
                    ]
                },
                "actions": [{"set_priority": "super"}, {"explode": True}],
            },
        ]
    }
    assert problems_of(data) == [
        "rules[3].trigger: unknown trigger 'ticket_createdd'; expected one of ['ticket_created', 'customer_replied', 'agent_replied', 'time', 'csat_rated', 'faq_solved', 'ticket_merged']",
        "rules[3].conditions.any[1].op: unknown operator 'containz'; expected one of "
        + str(sorted(rules.OPERATORS)),
        "rules[3].actions[0].set_priority: unknown priority 'super'; expected one of ['low', 'normal', 'high', 'urgent']",
        "rules[3].actions[1].explode: unknown action 'explode'; expected one of "
        "['assign', 'set_priority', 'add_tag', 'remove_tag', 'set_status', 'set_sla_policy', 'auto_reply', 'notify', 'add_note', 'gmail_label']",
    ]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"trigger": "time", "actions": [{"add_tag": "a"}]}, "rules[0].name: a rule needs a name"),
        (
            {"name": "n", "trigger": "time", "actions": []},
            "rules[0].actions: a rule needs a list of at least one action",
        ),
        (
            {"name": "n", "trigger": "time", "actions": [{"add_tag": "a", "add_note": "b"}]},
            "rules[0].actions[0]: an action is an object with exactly one key",
        ),
        (
            {
                "name": "n",
                "trigger": "time",
                "conditions": {"field": "frm", "op": "equals", "value": "x"},
                "actions": [{"add_tag": "a"}],
            },
            "rules[0].conditions.field: unknown field 'frm'",
        ),
        (
            {
                "name": "n",
                "trigger": "time",
                "conditions": {"field": "subject", "op": "gt", "value": 3},
                "actions": [{"add_tag": "a"}],
            },
            "rules[0].conditions.op: operator 'gt' does not apply to text field 'subject'",
        ),
        (
            {
                "name": "n",
                "trigger": "time",
                "conditions": {"field": "hours_since_created", "op": "gt", "value": "3"},
                "actions": [{"add_tag": "a"}],
            },
            "rules[0].conditions.value: 'gt' on 'hours_since_created' needs a number",
        ),
        (
            {
                "name": "n",
                "trigger": "time",
                "conditions": {"field": "subject", "op": "matches", "value": "("},
                "actions": [{"add_tag": "a"}],
            },
            "rules[0].conditions.value: invalid regex",
        ),
        (
            {
                "name": "n",
                "trigger": "time",
                "conditions": {"field": "subject", "op": "matches", "value": "a" * 201},
                "actions": [{"add_tag": "a"}],
            },
            "rules[0].conditions.value: regex longer than 200 characters",
        ),
        (
            {
                "name": "n",
                "trigger": "time",
                "conditions": {"field": "subject", "op": "in", "value": []},
                "actions": [{"add_tag": "a"}],
            },
            "rules[0].conditions.value: 'in' needs a non-empty list of values",
        ),
        (
            {
                "name": "n",
                "trigger": "time",
                "conditions": {"field": "assignee", "op": "is_empty", "value": "x"},
                "actions": [{"add_tag": "a"}],
            },
            "rules[0].conditions.value: 'is_empty' takes no value",
        ),
        (
            {"name": "n", "trigger": "time", "conditions": {"all": []}, "actions": [{"add_tag": "a"}]},
            "rules[0].conditions.all: expected a non-empty list of conditions",
        ),
        (
            {
                "name": "n",
                "trigger": "time",
                "conditions": {"all": [], "any": []},
                "actions": [{"add_tag": "a"}],
            },
            "rules[0].conditions: 'all' must be the only key",
        ),
        (
            {"name": "n", "trigger": "time", "actions": [{"assign": "nobody"}]},
            "rules[0].actions[0].assign: assign to an agent's email or one of",
        ),
        (
            {"name": "n", "trigger": "time", "actions": [{"notify": {"to": ["everyone"], "template": "t"}}]},
            "rules[0].actions[0].notify.to[0]: expected an email or one of",
        ),
        (
            {"name": "n", "trigger": "time", "actions": [{"auto_reply": {}}]},
            "rules[0].actions[0].auto_reply: needs a template name",
        ),
        (
            {"name": "n", "trigger": "time", "enabled": "yes", "actions": [{"add_tag": "a"}]},
            "rules[0].enabled: must be true or false",
        ),
        (
            {"name": "n", "trigger": "time", "colour": "red", "actions": [{"add_tag": "a"}]},
            "rules[0].colour: unknown key",
        ),
    ],
)
def test_each_kind_of_mistake_is_named(rule, message):
    assert any(p.startswith(message) for p in problems_of([rule])), problems_of([rule])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [", "line 1, column 9: not valid YAML"),
        ('{"rules": [}', "line 1, column 12: not valid JSON"),
        ("42", "rules: expected a list of rules"),
        ("rules: {}", "rules: expected a list of rules"),
    ],
)
def test_broken_files_are_clear_errors(text, message):
    with pytest.raises(RuleError) as caught:
        loads(text)
    assert str(caught.value).startswith(message)


def test_a_catastrophic_regex_is_stopped_by_the_time_bound():
    rule = rule_with({"field": "body", "op": "matches", "value": "(a+)+$"})
    result = evaluate(rule, {"body": "a" * 5000 + "!"})
    assert result.matched is False and "regex timed out" in result.explanation[0]


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
FIELD_NAMES = st.sampled_from(sorted(rules.FIELDS) + ["nope"])
OP_NAMES = st.sampled_from(sorted(rules.OPERATORS) + ["containz"])
LEAVES = st.fixed_dictionaries({"field": FIELD_NAMES, "op": OP_NAMES, "value": JSONISH})
CONDITIONS = st.recursive(
    LEAVES,
    lambda c: (
        st.dictionaries(
            st.sampled_from(["all", "any"]), st.lists(c, min_size=1, max_size=3), min_size=1, max_size=1
        )
        | st.builds(lambda x: {"not": x}, c)
    ),
    max_leaves=6,
)


TEXT_FIELDS = [f for f, t in rules.FIELDS.items() if t.value in ("text", "list")]
NUMBER_FIELDS = [f for f, t in rules.FIELDS.items() if t.value == "number"]
VALID_LEAVES = st.one_of(
    st.fixed_dictionaries(
        {
            "field": st.sampled_from(TEXT_FIELDS),
            "op": st.sampled_from(
                ["equals", "contains", "starts_with", "ends_with", "matches", "not_contains"]
            ),
            "value": st.text(min_size=1, max_size=15),
        }
    ),
    st.fixed_dictionaries(
        {
            "field": st.sampled_from(NUMBER_FIELDS),
            "op": st.sampled_from(["gt", "lt", "not_gt", "equals"]),
            "value": st.integers(-1000, 1000) | st.floats(allow_nan=False, allow_infinity=False),
        }
    ),
    st.fixed_dictionaries(
        {"field": st.sampled_from(sorted(rules.FIELDS)), "op": st.sampled_from(["is_empty", "is_not_empty"])}
    ),
    st.fixed_dictionaries(
        {
            "field": st.sampled_from(TEXT_FIELDS),
            "op": st.just("in"),
            "value": st.lists(st.text(max_size=8), min_size=1, max_size=3),
        }
    ),
)
VALID_CONDITIONS = st.recursive(
    VALID_LEAVES,
    lambda c: (
        st.dictionaries(
            st.sampled_from(["all", "any"]), st.lists(c, min_size=1, max_size=3), min_size=1, max_size=1
        )
        | st.builds(lambda x: {"not": x}, c)
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(condition=CONDITIONS | VALID_CONDITIONS, facts=st.dictionaries(FIELD_NAMES, JSONISH), action=JSONISH)
def test_no_rule_and_fact_pair_raises(condition, facts, action):
    try:
        load_rule({"name": "fuzz", "trigger": "ticket_created", "conditions": condition, "actions": [action]})
    except RuleError as error:
        assert error.problems and all(str(p) for p in error.problems)
    try:
        valid = load_rule(
            {
                "name": "fuzz",
                "trigger": "ticket_created",
                "conditions": condition,
                "actions": [{"add_tag": "x"}],
            }
        )
    except RuleError:
        return
    result = evaluate(valid, facts)
    assert isinstance(result.matched, bool) and result.explanation
    assert evaluate(valid, facts) == result


@settings(max_examples=200, deadline=None)
@given(data=JSONISH)
def test_any_data_loads_or_is_a_rule_error(data):
    try:
        load_rules(data)
    except RuleError as error:
        assert error.problems
