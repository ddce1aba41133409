"""``/settings/sla``: a mailbox's SLA policies — the list, the policies as text (calendars with hours
per weekday, holidays by country and subdivision, closed and extra working days; targets per
priority; pausing statuses), saved through :mod:`server.services.sla_policies` with the open tickets re-timed,
and a "what if" box answered by the real deadline code.
"""

from __future__ import annotations

from datetime import UTC, datetime

from babel.dates import format_datetime
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from server.base.db import get_session
from server.base.models import Mailbox
from server.faces.settings.base import acting, bp, chosen_mailbox, signed_in
from server.faces.settings.forms import PolicySetForm
from server.faces.web.access import EVERYONE, allow, manages_mailbox
from server.services import sla_policies
from server.services.sla import PRIORITIES


def _what_if(box: Mailbox) -> dict[str, object] | None:
    """The "what if" box's answer for the query string (``policy``, ``priority``, ``at``), if asked."""
    at = request.args.get("at", "").strip()
    if not at:
        return None
    policy = sla_policies.policy_named(get_session(), box, request.args.get("policy") or None)
    zone = policy.calendar.zone  # the arrival and the answer are in the policy's own time zone
    priority = request.args.get("priority", "normal")
    if priority not in PRIORITIES:
        return {"error": _("Unknown priority.")}
    try:
        arriving = datetime.fromisoformat(at)
    except ValueError:
        return {"error": _("Give the arrival as a date and time.")}
    if arriving.tzinfo is None:
        arriving = arriving.replace(tzinfo=zone)
    arriving = arriving.astimezone(UTC)
    due = sla_policies.what_if(policy, priority=priority, arriving=arriving)
    locale = str(get_locale() or "en")

    def written(value: datetime | None) -> str:
        return format_datetime(value, "EEE d MMM yyyy, HH:mm", tzinfo=zone, locale=locale) if value else "—"

    return {
        "policy": policy.name,
        "priority": priority,
        "first_response": written(due.first_response_due_at),
        "resolution": written(due.resolution_due_at),
        "zone": str(zone),
    }


def _page(
    box: Mailbox, mailboxes: list[Mailbox], form: PolicySetForm, problems: list[str], status: int
) -> tuple[str, int]:
    return render_template(
        "admin/sla.html",
        box=box,
        mailboxes=mailboxes,
        policies=sla_policies.rows(get_session(), box),
        form=form,
        problems=problems,
        what_if=_what_if(box),
        priorities=PRIORITIES,
        manages=manages_mailbox(signed_in(), box.id),
        section="sla",
    ), status


@bp.get("/sla")
@allow(EVERYONE)
def sla() -> tuple[str, int]:
    box, mailboxes = chosen_mailbox()
    form = PolicySetForm(text=sla_policies.export_yaml(get_session(), box))
    return _page(box, mailboxes, form, [], 200)


@bp.post("/sla")
@allow(EVERYONE)
def sla_save() -> Response | tuple[str, int]:
    box, mailboxes = chosen_mailbox()
    if not manages_mailbox(signed_in(), box.id):
        abort(403)
    form = PolicySetForm()
    if not form.validate_on_submit():
        return _page(box, mailboxes, form, [], 400)
    try:
        items = sla_policies.parse(form.text.data or "")
        retimed = sla_policies.save(get_session(), box, items, actor=acting(),
                                    batch=int(current_app.config["RETIME_BATCH"]))  # fmt: skip
    except sla_policies.PolicyError as exc:
        get_session().rollback()
        return _page(box, mailboxes, form, exc.problems, 400)
    flash(_("%(count)d policies saved; %(retimed)d open tickets got new due times.", count=len(items),
            retimed=retimed), "ok")  # fmt: skip
    return redirect(url_for("admin.sla", mailbox=box.id))
