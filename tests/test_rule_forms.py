"""The builder's form data and the engine's rules: every rule the engine accepts survives the round
trip through the builder's fields (hypothesis), and bad fields are refused with the engine's paths."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rules as rule_engine
from rules.model import BASE_OPERATORS, FIELDS, OPERATORS, FieldType
from server.faces.settings.rule_forms import from_form, to_form

TEXT = st.text(min_size=1, max_size=30).filter(lambda s: s.strip() != "")
NUMBER = st.one_of(st.integers(-(10**6), 10**6), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))


@st.composite
def leaves(draw):
    field = draw(st.sampled_from(sorted(FIELDS)))
    field_type = FIELDS[field]
    op = draw(
        st.sampled_from(
            sorted(o for o, (base, _neg) in OPERATORS.items() if field_type in BASE_OPERATORS[base])
        )
    )
    base = OPERATORS[op][0]
    leaf = {"field": field, "op": op}
    if base == "is_empty":
        return leaf
    if base in ("gt", "lt") or (field_type is FieldType.NUMBER and base == "equals"):
        leaf["value"] = draw(NUMBER)
    elif field_type is FieldType.BOOL:
        leaf["value"] = draw(st.booleans())
    elif base == "in":
        leaf["value"] = draw(st.lists(st.one_of(TEXT, NUMBER), min_size=1, max_size=4))
    elif base == "matches":
        leaf["value"] = draw(st.from_regex(r"[a-zа-я]{1,8}(\|[a-z]{1,5})?", fullmatch=True))
    else:
        leaf["value"] = draw(st.text(max_size=30) if base == "equals" else TEXT)
    return leaf


conditions = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        st.fixed_dictionaries({"all": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"any": st.lists(inner, min_size=1, max_size=3)}),
        st.fixed_dictionaries({"not": inner}),
    ),
    max_leaves=8,
)
EMAILS = st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.(ru|com)", fullmatch=True)
actions = st.one_of(
    st.builds(lambda v: {"assign": v}, st.one_of(st.sampled_from(["round_robin", "least_open"]), EMAILS)),
    st.builds(lambda v: {"set_priority": v}, st.sampled_from(["low", "normal", "high", "urgent"])),
    st.builds(lambda v: {"set_status": v}, st.sampled_from(["open", "pending", "on_hold", "solved", "closed"])),
    st.builds(lambda k, v: {k: v}, st.sampled_from(["add_tag", "remove_tag", "set_sla_policy", "gmail_label"]),
              st.text(min_size=1, max_size=100).filter(lambda s: s.strip() != "")),
    st.builds(lambda v: {"add_note": v}, TEXT),
    st.builds(lambda v: {"auto_reply": {"template": v}}, TEXT),
    st.builds(lambda to, t: {"notify": {"to": to, "template": t}},
              st.lists(st.one_of(st.sampled_from(["assignee", "admins", "agents", "customer"]), EMAILS),
                       min_size=1, max_size=3), TEXT),
)  # fmt: skip
rule_data = st.fixed_dictionaries(
    {
        "name": st.text(min_size=1, max_size=60).filter(lambda s: s.strip() != ""),
        "trigger": st.sampled_from([t.value for t in rule_engine.Trigger]),
        "actions": st.lists(actions, min_size=1, max_size=4),
        "stop_processing": st.booleans(),
        "enabled": st.booleans(),
    },
    optional={"conditions": conditions},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=rule_data)
def test_every_rule_the_engine_accepts_survives_the_builder(data):
    rule = rule_engine.load_rule(data)

    assert from_form(to_form(rule)) == rule


def test_bad_builder_fields_are_refused_with_the_engines_paths():
    form = {"name": "Broken", "trigger": "ticket_created", "c.kind": "any",
            "c.0.kind": "leaf", "c.0.field": "subject", "c.0.op": "contains", "c.0.value_kind": "text", "c.0.value": "x",
            "c.1.kind": "leaf", "c.1.field": "subject", "c.1.op": "containz", "c.1.value_kind": "text", "c.1.value": "y",
            "a.0.kind": "set_priority", "a.0.value": "sky-high"}  # fmt: skip

    with pytest.raises(rule_engine.RuleError) as refused:
        from_form(form)

    paths = {problem.path for problem in refused.value.problems}
    assert "rule.conditions.any[1].op" in paths and "rule.actions[0].set_priority" in paths


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=30))
def test_any_form_data_gives_a_rule_or_the_engines_error(data):
    try:
        from_form(data)
    except rule_engine.RuleError as error:
        assert error.problems


def test_rows_are_added_removed_and_switched_without_a_script():
    from server.faces.settings.rule_forms import edit

    form = {"name": "R", "trigger": "ticket_created", "a.0.kind": "add_tag", "a.0.value": "x"}
    form = edit(form, "add-leaf:c")  # the first condition makes an "all" group
    form = edit(form, "add-group:c")
    form = edit(form, "add-leaf:c.1")
    form = edit(form, "toggle:c")  # all -> any
    form |= {"c.0.field": "from_domain", "c.0.value": "example.org", "c.1.0.op": "in", "c.1.0.value": "a\nb",
             "c.1.1.value": "срочно"}  # fmt: skip
    form = edit(form, "remove:c.1.0")  # the "in" row goes
    form = edit(form, "add-action")
    form |= {"a.1.kind": "set_priority", "a.1.value": "urgent"}

    rule = from_form(form)

    assert rule_engine.dump_rule(rule)["conditions"] == {
        "any": [{"field": "from_domain", "op": "contains", "value": "example.org"},
                {"any": [{"field": "subject", "op": "contains", "value": "срочно"}]}]
    }  # fmt: skip
    assert [a.kind.value for a in rule.actions] == ["add_tag", "set_priority"]
    assert edit(form, "remove-action:0")["a.0.kind"] == "set_priority"
    assert "c.kind" not in edit(form, "remove:c")
