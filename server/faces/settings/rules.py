"""``/settings/rules``: a mailbox's rules — the ordered list, the text face (YAML) with problems at
their paths, a dry run before saving, import and export. Every change goes through
:mod:`server.services.rule_sets` (the same service as ``postdesk rules``).

Who: anyone who works in the mailbox (and managers) reads; admins and the mailbox's own admins change.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from flask import Response, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response as WerkzeugResponse

import rules as rule_engine
from server.base.db import get_session
from server.base.models import Mailbox
from server.faces.settings.base import acting, bp, chosen_mailbox, signed_in
from server.faces.settings.forms import DryRunForm, RuleMoveForm, RuleSetForm
from server.faces.web.access import EVERYONE, allow, manages_mailbox
from server.services import rule_sets
from server.services.automation import load_mailbox_rules

#: The largest rule file accepted from the page.
MAX_RULES_TEXT = 512 * 1024


def trigger_names() -> dict[str, str]:
    return {
        "ticket_created": _("New ticket"),
        "customer_replied": _("Customer replied"),
        "agent_replied": _("Agent replied"),
        "time": _("Time-based"),
        "csat_rated": _("Customer rated"),
        "faq_solved": _("FAQ answer solved it"),
        "ticket_merged": _("Ticket merged into this one"),
    }


def _page(
    box: Mailbox,
    mailboxes: list[Mailbox],
    form: RuleSetForm,
    *,
    problems: list[str] | None = None,
    report: rule_sets.DryRun | None = None,
    dry: DryRunForm | None = None,
    status: int = 200,
) -> tuple[str, int]:
    db = get_session()
    rows = [row for row, _rule in load_mailbox_rules(db, box.id)]
    stats = rule_sets.stats(db, box, now=datetime.now(UTC))
    html = render_template(
        "admin/rules.html",
        box=box,
        mailboxes=mailboxes,
        rows=rows,
        stats=stats,
        form=form,
        dry=dry or DryRunForm(last=rule_sets.DRY_RUN_DEFAULT),
        move=RuleMoveForm(),
        problems=problems or [],
        report=report,
        manages=manages_mailbox(signed_in(), box.id),
        trigger_names=trigger_names(),
        section="rules",
    )
    return html, status


@bp.get("/rules")
@allow(EVERYONE)
def rules() -> tuple[str, int]:
    box, mailboxes = chosen_mailbox()
    form = RuleSetForm(text=rule_sets.export_yaml(get_session(), box))
    return _page(box, mailboxes, form)


def _parsed(box: Mailbox, form: RuleSetForm) -> tuple[list[rule_engine.Rule] | None, list[str]]:
    text = form.text.data or ""
    if form.file.data:
        content = form.file.data.read(MAX_RULES_TEXT + 1)
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            return None, [_("The file is not UTF-8 text.")]
        form.text.data = text
    if len(text) > MAX_RULES_TEXT:
        return None, [_("The rules are longer than %(n)d KB.", n=MAX_RULES_TEXT // 1024)]
    try:
        return rule_sets.parse(get_session(), box, text), []
    except rule_sets.RuleSetError as exc:
        return None, [str(problem) for problem in exc.problems]


@bp.post("/rules/dry-run")
@allow(EVERYONE)
def rules_dry_run() -> tuple[str, int]:
    """The rules in the editor, tried on the last tickets or a date range: nothing is changed or sent."""
    box, mailboxes = chosen_mailbox()
    if not manages_mailbox(signed_in(), box.id):  # a dry run runs regexes over thousands of tickets
        abort(403)
    form = RuleSetForm()
    dry = DryRunForm()
    if not form.validate_on_submit() or not dry.validate():
        return _page(box, mailboxes, form, dry=dry, status=400)
    loaded, problems = _parsed(box, form)
    if loaded is None:
        return _page(box, mailboxes, form, problems=problems, dry=dry, status=400)
    since = datetime.combine(dry.since.data, time(), UTC) if dry.since.data else None
    until = datetime.combine(dry.until.data, time(), UTC) + timedelta(days=1) if dry.until.data else None
    last = int(dry.last.data or rule_sets.DRY_RUN_DEFAULT)
    report = rule_sets.dry_run(get_session(), box, loaded, last=last, since=since, until=until)
    return _page(box, mailboxes, form, report=report, dry=dry)


@bp.post("/rules")
@allow(EVERYONE)
def rules_save() -> tuple[str, int] | WerkzeugResponse:
    """Save the editor's rule set (or an uploaded file) as the mailbox's rules, whole or not at all."""
    box, mailboxes = chosen_mailbox()
    if not manages_mailbox(signed_in(), box.id):
        abort(403)
    form = RuleSetForm()
    if not form.validate_on_submit():
        return _page(box, mailboxes, form, status=400)
    loaded, problems = _parsed(box, form)
    if loaded is None:
        return _page(box, mailboxes, form, problems=problems, status=400)
    rule_sets.save(get_session(), box, loaded, actor=acting())
    flash(_("%(count)d rules saved.", count=len(loaded)), "ok")
    return redirect(url_for("admin.rules", mailbox=box.id))


@bp.get("/rules/export")
@allow(EVERYONE)
def rules_export() -> Response:
    box, _mailboxes = chosen_mailbox()
    text = rule_sets.export_yaml(get_session(), box)
    name = f"rules-{box.address.replace('@', '-at-')}.yaml"
    return Response(
        text, mimetype="application/yaml", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@bp.post("/rules/<int:rule_id>/<any(up, down, enable, disable):change>")
@allow(EVERYONE)
def rule_change(rule_id: int, change: str) -> WerkzeugResponse:
    box, _mailboxes = chosen_mailbox()
    if not manages_mailbox(signed_in(), box.id):
        abort(403)
    if not RuleMoveForm().validate_on_submit():
        abort(400)
    db = get_session()
    if change in ("up", "down"):
        done = rule_sets.move(db, box, rule_id, -1 if change == "up" else 1, actor=acting())
    else:
        done = rule_sets.set_enabled(db, box, rule_id, change == "enable", actor=acting())
    if not done and change in ("enable", "disable"):
        abort(404)
    return redirect(url_for("admin.rules", mailbox=box.id))
