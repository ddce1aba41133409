"""``/settings``: the admins' and managers' pages, one module per page group (``profile``,
``mailboxes``, ``agents``, ``audit``, ``rules``, ``builder``, ``templates``, ``sla``, ``reminders``,
``signals``, ``integrations``, ``customers``), all on the one blueprint of ``base``; this module
registers them and the names every settings page reads.

Each view checks the caller's role (:func:`server.faces.web.access.allow`), parses its form, calls one
service (``server.services.accounts``, ``server.services.tickets``) and renders. Nothing here validates a value the
services validate too: their problems are shown next to the form's fields.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask_babel import gettext as _

from server.base.models import Role
from server.faces.settings.base import bp
from server.faces.web.access import READERS, current_agent
from server.services.accounts import administered


def init_app(app: Flask) -> None:
    from server.faces.settings import (  # noqa: F401  (their views join this blueprint)
        agents,
        articles,
        audit,
        builder,
        customers,
        integrations,
        mailboxes,
        profile,
        reminders,
        rules,
        signals,
        sla,
        system,
        templates,
    )

    app.register_blueprint(bp)

    @app.context_processor
    def names() -> dict[str, Any]:
        me = current_agent() if request and request.blueprint in ("admin", "reports") else None
        return {
            "manages_some": bool(me is not None and Role(me.role) not in READERS and administered(me)),
            "role_names": {"admin": _("Admin"), "manager": _("Manager"), "agent": _("Agent")},
            "status_titles": {
                400: _("Bad request"),
                401: _("Sign-in needed"),
                403: _("Not allowed"),
                404: _("Not found"),
                429: _("Too many attempts"),
            },  # fmt: skip
        }
