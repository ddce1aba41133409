"""``/settings`` itself (where a person lands) and ``/settings/profile``: one's own name, language and time zone."""

from __future__ import annotations

import logging

from flask import (
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from server.base.db import get_session
from server.base.models import (
    Role,
)
from server.faces.settings.base import (
    acting,
    bp,
    show_problems,
    signed_in,
)
from server.faces.settings.forms import (
    ProfileForm,
)
from server.faces.web.access import (
    EVERYONE,
    READERS,
    allow,
)
from server.services.accounts import (
    AccountError,
    AgentChange,
    StaleEdit,
    administered,
    agent_version,
    update_agent,
)

log = logging.getLogger(__name__)


@bp.get("/")
@allow(EVERYONE)
def home() -> Response:
    """Each role's first page: the mailboxes for admins and managers, the profile for agents."""
    me = signed_in()
    return redirect(
        url_for("admin.mailboxes" if Role(me.role) in READERS or administered(me) else "admin.profile")
    )


@bp.route("/profile", methods=["GET", "POST"])
@allow(EVERYONE)
def profile() -> str | Response:
    me = signed_in()
    form = ProfileForm(obj=me if request.method == "GET" else None)
    if request.method == "GET":
        form.version.data = agent_version(me)
        form.digest.data = me.wants("digest")
        form.reminders.data = me.wants("reminders")
        form.mentions.data, form.following.data = me.wants("mentions"), me.wants("following")
        form.weekly_report.data = me.wants("weekly_report")
    elif form.validate_on_submit():
        change = AgentChange(
            name=form.name.data or "",
            locale=form.locale.data,
            timezone=form.timezone.data,
            away=form.away.data,
            notifications={
                "digest": bool(form.digest.data),
                "reminders": bool(form.reminders.data),
                "mentions": bool(form.mentions.data),
                "following": bool(form.following.data),
                "weekly_report": bool(form.weekly_report.data),
            },  # fmt: skip
        )
        try:
            update_agent(get_session(), me.email, change, actor=acting(), version=form.version.data)
        except StaleEdit:
            flash(_("Your profile was changed elsewhere since you opened this page: nothing was saved. "
                    "Here it is as it is now."), "error")  # fmt: skip
            return redirect(url_for("admin.profile"))
        except AccountError as exc:
            show_problems(form, exc.problems.items(), str(exc))
        else:
            flash(_("Profile saved."), "ok")
            return redirect(url_for("admin.profile"))
    return render_template("admin/profile.html", form=form, section="profile")
