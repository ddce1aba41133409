"""``/``: the first page a newcomer opens — the shell every page shares, where each face of Postdesk
lives, and in demo mode the demo's people (sign in as one) and what to try first."""

from __future__ import annotations

from flask import current_app, render_template
from sqlalchemy import select

from server.base.db import get_session
from server.base.models import Agent
from server.faces.web.auth import bp
from server.faces.web.local import is_local_demo


@bp.get("/")
def home() -> str:
    demo = is_local_demo()
    people = (
        get_session()
        .scalars(select(Agent).where(Agent.active.is_(True)).order_by(Agent.role, Agent.email))
        .all()
        if demo
        else []
    )
    return render_template(
        "web/home.html",
        demo=demo,
        people=people,
        previewer="addon_preview.page" in current_app.view_functions,
    )
