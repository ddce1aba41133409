"""``/settings/reminders``: a mailbox's reminder settings, each with what it does in words for a
person of the team, and each agent's own choices (from their profile). Saved whole through
:func:`server.services.mailbox_settings.save`, as ``postdesk mailbox settings`` saves them.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from server.base.db import get_session
from server.base.models import Mailbox
from server.faces.settings.base import acting, bp, chosen_mailbox, settings_problems, show_problems, signed_in
from server.faces.settings.forms import RemindersForm
from server.faces.web.access import EVERYONE, allow, manages_mailbox
from server.services.mailbox_settings import (
    REMINDER_DEFAULTS,
    SettingsError,
    StaleSettings,
    reminder_settings,
)
from server.services.mailbox_settings import save as save_settings
from server.services.mailbox_settings import version as settings_version


def effects(box: Mailbox) -> list[str]:
    """What the stored settings do, in words, for the first person of the team."""
    settings = reminder_settings(box)
    person = next(
        (a.name or a.email for a in sorted(box.members, key=lambda a: a.id) if a.active), _("An agent")
    )
    if not settings.enabled:
        return [_("No reminders are sent for this mailbox.")]
    said = [
        _("%(who)s gets a reminder %(n)d business minutes before a first response or resolution of their "
          "ticket is due.", who=person, n=settings.warn_minutes),
        _("%(n)d business minutes after a missed deadline, the admins hear of it too.", n=settings.escalate_minutes),
    ]  # fmt: skip
    if settings.unassigned_minutes:
        said.append(_("A ticket nobody took for %(n)d business minutes is sent to the whole team.",
                      n=settings.unassigned_minutes))  # fmt: skip
    if settings.snooze:
        said.append(_("%(who)s hears when a ticket they snoozed wakes up.", who=person))
    if settings.pending_followup_days:
        said.append(
            _(
                "A customer who has not answered for %(n)d days gets a follow-up.",
                n=settings.pending_followup_days,
            )
        )
        if settings.pending_autosolve_days:
            said.append(
                _("%(n)d days after the follow-up the ticket is solved.", n=settings.pending_autosolve_days)
            )
    if settings.digest:
        said.append(_("Every working day at %(time)s (in their own zone) %(who)s gets a digest of their tickets.",
                      time=settings.digest_time.strftime("%H:%M"), who=person))  # fmt: skip
    return said


def _fill(form: RemindersForm, box: Mailbox) -> None:
    stored = {**REMINDER_DEFAULTS, **((box.settings or {}).get("reminders") or {})}
    for name in REMINDER_DEFAULTS:
        form[name].data = stored[name]
    form.version.data = settings_version(box)


def _page(box: Mailbox, mailboxes: list[Mailbox], form: RemindersForm, status: int) -> tuple[str, int]:
    return render_template(
        "admin/reminders.html",
        box=box,
        mailboxes=mailboxes,
        form=form,
        effects=effects(box),
        members=sorted(box.members, key=lambda a: (a.name or a.email).lower()),
        manages=manages_mailbox(signed_in(), box.id),
        section="reminders",
    ), status


@bp.get("/reminders")
@allow(EVERYONE)
def reminders() -> tuple[str, int]:
    box, mailboxes = chosen_mailbox()
    form = RemindersForm()
    _fill(form, box)
    return _page(box, mailboxes, form, 200)


@bp.post("/reminders")
@allow(EVERYONE)
def reminders_save() -> Response | tuple[str, int]:
    box, mailboxes = chosen_mailbox()
    if not manages_mailbox(signed_in(), box.id):
        abort(403)
    form = RemindersForm()
    if not form.validate_on_submit():
        return _page(box, mailboxes, form, 400)
    wanted: dict[str, Any] = {name: form[name].data for name in REMINDER_DEFAULTS}
    db = get_session()
    try:
        save_settings(db, box, {**(box.settings or {}), "reminders": wanted}, actor=acting(),
                      batch=int(current_app.config["RETIME_BATCH"]), expected_version=form.version.data or None)  # fmt: skip
    except StaleSettings:
        db.rollback()
        flash(_("These settings were changed elsewhere since you opened this page: nothing was saved. "
                "Here they are as they are now."), "error")  # fmt: skip
        return redirect(url_for("admin.reminders", mailbox=box.id))
    except SettingsError as exc:
        db.rollback()
        show_problems(form, settings_problems(exc.problems, "reminders."), str(exc))
        return _page(box, mailboxes, form, 400)
    flash(_("Reminder settings saved."), "ok")
    return redirect(url_for("admin.reminders", mailbox=box.id, _anchor="effects"))
