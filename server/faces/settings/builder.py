"""``/settings/rules/builder``: one rule of a mailbox in the visual builder — trigger, conditions as rows
in all/any groups, actions as rows with the right choices — kept in step with its YAML, dry-run alone,
and saved into the mailbox's rule set. The builder's fields are :mod:`server.faces.settings.rule_forms`; rows are
added and removed by the server (no script needed).
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response

import rules as rule_engine
from server.base.db import get_session
from server.base.models import Agent, Mailbox, SlaPolicy, Template, mailbox_members
from server.faces.settings import rule_forms
from server.faces.settings.base import acting, bp, chosen_mailbox, signed_in
from server.faces.settings.rules import trigger_names
from server.faces.web.access import EVERYONE, allow, manages_mailbox
from server.services import rule_sets
from server.services.automation import load_mailbox_rules

#: Fields of the request that are not the rule's.
_NOT_THE_RULE = {"csrf_token", "mailbox", "rule", "edit", "do", "last"}


def _choices(box: Mailbox) -> dict[str, Any]:
    """What the builder offers: the engine's own lists, and the mailbox's agents, templates, policies."""
    db = get_session()
    agents = db.scalars(
        select(Agent.email)
        .join(mailbox_members, mailbox_members.c.agent_id == Agent.id)
        .where(mailbox_members.c.mailbox_id == box.id, Agent.active.is_(True))
        .order_by(Agent.email)
    ).all()
    templates = db.scalars(
        select(Template.name).where(Template.mailbox_id == box.id, Template.owner_id.is_(None)).distinct()
    ).all()
    return {
        "triggers": [t.value for t in rule_engine.Trigger],
        "fields": sorted(rule_engine.FIELDS),
        "field_types": {name: kind.value for name, kind in rule_engine.FIELDS.items()},
        "operators": list(rule_engine.OPERATORS),
        "action_kinds": [k.value for k in rule_engine.ActionKind],
        "assignees": ["round_robin", "least_open", *agents],
        "priorities": list(rule_engine.model.PRIORITIES),
        "statuses": list(rule_engine.model.STATUSES),
        "templates": sorted(templates),
        "policies": db.scalars(
            select(SlaPolicy.name).where(SlaPolicy.mailbox_id == box.id).order_by(SlaPolicy.name)
        ).all(),
        "notify_groups": list(rule_engine.model.NOTIFY_GROUPS),
    }


def _tree(form: dict[str, str], path: str = "c") -> dict[str, Any] | None:
    """The condition rows as a tree for the template to draw."""
    kind = form.get(f"{path}.kind")
    if kind is None:
        return None
    node: dict[str, Any] = {"path": path, "kind": kind}
    if kind == "leaf":
        node |= {k: form.get(f"{path}.{k}", "") for k in ("field", "op", "value", "value_kind")}
        return node
    children = []
    index = 0
    while f"{path}.{index}.kind" in form and index < rule_forms.MAX_NODES:
        child = _tree(form, f"{path}.{index}")
        if child is not None:
            children.append(child)
        index += 1
    node["children"] = children
    return node


def _actions(form: dict[str, str]) -> list[dict[str, str]]:
    found = []
    index = 0
    while f"a.{index}.kind" in form and index < rule_forms.MAX_ACTIONS:
        found.append(
            {k.split(".", 2)[2]: v for k, v in form.items() if k.startswith(f"a.{index}.")}
            | {"index": str(index)}
        )
        index += 1
    return found


def _stored(box: Mailbox) -> list[rule_engine.Rule]:
    return [rule for _row, rule in load_mailbox_rules(get_session(), box.id)]


def _page(
    box: Mailbox, mailboxes: list[Mailbox], position: str, form: dict[str, str], **extra: Any
) -> tuple[str, int]:
    status = int(extra.pop("status", 200))
    problems: list[str] = []
    yaml_text = ""
    try:
        rule = rule_forms.from_form(form)
        yaml_text = str(rule_engine.dumps_yaml([rule]))
    except rule_engine.RuleError as exc:
        problems = [str(p) for p in exc.problems]
    return render_template(
        "admin/builder.html",
        box=box,
        mailboxes=mailboxes,
        position=position,
        form=form,
        tree=_tree(form),
        actions=_actions(form),
        choices=_choices(box),
        trigger_names=trigger_names(),
        yaml_text=yaml_text,
        problems=extra.pop("problems", problems),
        report=extra.pop("report", None),
        manages=manages_mailbox(signed_in(), box.id),
        section="rules",
        **extra,
    ), status


@bp.get("/rules/builder")
@allow(EVERYONE)
def rule_builder() -> tuple[str, int]:
    box, mailboxes = chosen_mailbox()
    position = request.args.get("rule", "new")
    stored = _stored(box)
    if position.isdecimal() and int(position) < len(stored):
        form = rule_forms.to_form(stored[int(position)])
    else:
        position = "new"
        form = {
            "name": "",
            "trigger": "ticket_created",
            "enabled": "y",
            "a.0.kind": "add_tag",
            "a.0.value": "",
        }
    return _page(box, mailboxes, position, form)


@bp.post("/rules/builder")
@allow(EVERYONE)
def rule_builder_post() -> Response | tuple[str, int]:
    """An edit of the rows, a dry run of this rule alone, or saving it into the mailbox's rules."""
    box, mailboxes = chosen_mailbox()
    position = request.form.get("rule", "new")
    form = {key: value for key, value in request.form.items() if key not in _NOT_THE_RULE}
    if len(form) > 4 * rule_forms.MAX_NODES:
        abort(400)
    command = request.form.get("edit", "")
    if command:
        return _page(box, mailboxes, position, rule_forms.edit(form, command))
    try:
        rule = rule_forms.from_form(form)
    except rule_engine.RuleError as exc:
        return _page(box, mailboxes, position, form, problems=[str(p) for p in exc.problems], status=400)
    if not manages_mailbox(signed_in(), box.id):  # trying and saving are for who manages the rules
        abort(403)
    if request.form.get("do") == "dry-run":
        last = request.form.get("last", "")
        count = int(last) if last.isdecimal() else rule_sets.DRY_RUN_DEFAULT
        report = rule_sets.dry_run(get_session(), box, [rule], last=count)
        return _page(box, mailboxes, position, form, report=report)
    rules = _stored(box)
    if position.isdecimal() and int(position) < len(rules):
        rules[int(position)] = rule
    else:
        rules.append(rule)
    text = str(rule_engine.dumps_yaml(rules))
    try:
        checked = rule_sets.parse(get_session(), box, text)  # names the mailbox must have (templates …)
    except rule_sets.RuleSetError as exc:
        return _page(box, mailboxes, position, form, problems=[str(p) for p in exc.problems], status=400)
    rule_sets.save(get_session(), box, checked, actor=acting())
    flash(_("Rule %(name)s saved.", name=rule.name), "ok")
    return redirect(url_for("admin.rules", mailbox=box.id))
