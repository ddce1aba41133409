"""``/settings/customers``: forget a customer (server.services.customers), for admins; the same as
``postdesk customer forget``."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from server.base.db import get_session
from server.faces.settings.base import acting, bp
from server.faces.settings.forms import ForgetCustomerForm
from server.faces.web.access import ADMINS, allow
from server.services.customers import ForgetError, forget


@bp.route("/customers", methods=["GET", "POST"])
@allow(ADMINS)
def customers() -> Response | tuple[str, int]:
    form = ForgetCustomerForm()
    if not form.is_submitted():
        return render_template("admin/customers.html", form=form, section="customers"), 200
    if form.validate_on_submit() and not form.confirm.data:
        form.confirm.errors = [*form.confirm.errors, _("Tick this to confirm.")]
    elif form.validate_on_submit():
        db = get_session()
        try:
            found = forget(db, form.email.data or "", actor=acting(), now=datetime.now(UTC))
        except ForgetError as exc:
            db.rollback()
            form.email.errors = [*form.email.errors, str(exc)]
        else:
            db.commit()
            flash(
                _("Forgotten: %(tickets)d tickets and %(messages)d messages no longer hold their words.",
                  tickets=found.tickets, messages=found.messages),
                "ok",
            )  # fmt: skip
            return redirect(url_for("admin.customers"))
    return render_template("admin/customers.html", form=form, section="customers"), 400
