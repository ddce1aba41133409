"""``/settings/system``: System health, the checks of ``postdesk doctor`` for admins (live on request)."""

from __future__ import annotations

from flask import render_template, request

from server.faces.doctor import run_checks
from server.faces.settings.base import bp
from server.faces.web.access import ADMINS, allow


@bp.get("/system")
@allow(ADMINS)
def system() -> str:
    """Every requirement ✓ or ✗ with its fix; "Check live" also calls the public URLs, Gmail and Google."""
    live = request.args.get("live") == "1"
    checks = run_checks(live=live)
    failed = sum(1 for check in checks if check.ok is False)
    return render_template("admin/system.html", checks=checks, failed=failed, live=live, section="system")
