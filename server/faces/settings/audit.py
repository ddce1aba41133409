"""``/settings/audit``: the audit log of every change, newest first."""

from __future__ import annotations

import logging

from flask import (
    render_template,
    request,
)
from sqlalchemy import select

from server.base.db import get_session
from server.base.models import (
    Agent,
    Event,
)
from server.faces.settings.base import (
    bp,
    page_number,
    page_size,
)
from server.faces.web.access import (
    ADMINS,
    allow,
)

log = logging.getLogger(__name__)


@bp.get("/audit")
@allow(ADMINS)
def audit() -> str:
    """Every settings change (who, when, what, before and after), newest first, filterable."""
    db = get_session()
    page = page_number()
    size = page_size()
    kind = request.args.get("kind", "").strip()[:64]
    who = request.args.get("who", "").strip().lower()[:320]
    query = select(Event).where(Event.ticket_id.is_(None))
    if kind:
        query = query.where(Event.kind == kind)
    if who:
        query = query.join(Agent, Agent.id == Event.actor_agent_id).where(Agent.email == who)
    events = db.scalars(query.order_by(Event.id.desc()).offset((page - 1) * size).limit(size + 1)).all()
    actor_ids = {e.actor_agent_id for e in events if e.actor_agent_id}
    actors = {a.id: a for a in db.scalars(select(Agent).where(Agent.id.in_(actor_ids)))} if actor_ids else {}
    kinds = db.scalars(
        select(Event.kind).where(Event.ticket_id.is_(None)).distinct().order_by(Event.kind)
    ).all()
    return render_template(
        "admin/audit.html",
        events=events[:size],
        actors=actors,
        kinds=kinds,
        kind=kind,
        who=who,
        page=page,
        more=len(events) > size,
        section="audit",
    )
