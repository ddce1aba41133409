"""``/faq/<token>``: the customer says an FAQ answer in their acknowledgement solved their question.

A public page (the signed token is the only credential), rate-limited per address, in the customer's
language. GET only asks ("Did this answer your question?"), so a mail scanner that opens every link
solves nothing; the button POSTs the same link. That records a ``faq_solved`` Event on the ticket
(once) and runs the mailbox's ``faq_solved`` rules (by default: solve the ticket). A forged, altered
or expired link gets a page that says so and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, render_template, request
from flask_babel import force_locale
from sqlalchemy import select

from rules import Trigger
from server.base.db import get_session
from server.base.models import Event, Template, Ticket
from server.faces.web.extensions import limiter
from server.gmail.sync import TicketEvent
from server.services.automation import run_rules_on_events
from server.services.composing import ticket_locale
from server.services.knowledge.faq import LinkRefused, read_link
from server.services.tickets import record_event

bp = Blueprint("faq", __name__)


def _limit() -> str:
    return str(current_app.config["CSAT_RATE_LIMIT"])


@bp.route("/faq/<token>", methods=["GET", "POST"])
@limiter.limit(_limit)
def solved(token: str) -> tuple[str, int]:
    db = get_session()
    try:
        claim = read_link(token, secret=str(current_app.config["SECRET_KEY"]))
        ticket = db.get(Ticket, claim.ticket_id)
        if ticket is None:
            raise LinkRefused("this ticket no longer exists")
    except LinkRefused as problem:
        page = render_template("web/faq.html", state="expired" if problem.expired else "invalid", ticket=None)
        return page, 410 if problem.expired else 400
    template = db.get(Template, claim.template_id)
    said = db.scalar(
        select(Event.id).where(Event.ticket_id == ticket.id, Event.kind == "faq_solved").limit(1)
    )
    state = "said" if said is not None else "ask"
    if request.method == "POST" and said is None:
        now = datetime.now(UTC)
        record_event(
            db, ticket, "faq_solved", after={"template": template.name if template else None}, at=now
        )
        run_rules_on_events(db, ticket.mailbox, [TicketEvent(Trigger.FAQ_SOLVED, ticket.id, None, now)])
        db.commit()
        state = "thanks"
    locale = ticket_locale(db, ticket, ticket.mailbox)
    with force_locale(locale):
        page = render_template("web/faq.html", state=state, ticket=ticket, lang=locale)
    return page, 200
