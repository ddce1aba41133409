"""``/reports/help``: the help centre's figures for the period and mailboxes of the reports' filters
(server.services.figures.help_figures)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import render_template

from server.base.db import get_session
from server.faces.reports.views import BadFilter, bp, read_view
from server.faces.web.access import EVERYONE, allow
from server.services.figures.help_figures import help_figures


@bp.get("/help")
@allow(EVERYONE)
def help_centre() -> Any:
    try:
        view = read_view(datetime.now(UTC))
    except BadFilter as problem:
        return render_template("web/error.html", status=400, problem=str(problem)), 400
    figures = help_figures(get_session(), view.scope.mailbox_ids, view.period)
    return render_template("reports/help.html", view=view, figures=figures, section="reports")
