"""``/csat/<token>``: the customer's one click on a rating link, and their optional comment.

Public pages (the signed token is the only credential), rate-limited per address, in the customer's
language. A good link records the rating (or changes it, within the window) and runs the mailbox's
``csat_rated`` rules; a forged, altered or expired one gets a page that says so and stores nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, current_app, render_template, request
from flask_babel import force_locale

from rules import Trigger
from server.base.db import get_session
from server.base.models import Ticket
from server.faces.web.extensions import limiter
from server.gmail.sync import TicketEvent
from server.services.automation import run_rules_on_events
from server.services.composing import ticket_locale
from server.services.csat import MAX_COMMENT, RatingRefused, rate, read
from server.services.mailbox_settings import CSAT_MAX_DAYS, csat_settings

bp = Blueprint("csat", __name__)


def _limit() -> str:
    return str(current_app.config["CSAT_RATE_LIMIT"])


def _refused(problem: RatingRefused) -> tuple[str, int]:
    page = render_template("web/csat.html", state="expired" if problem.expired else "invalid", ticket=None,
                           value=None, token="", max_comment=MAX_COMMENT)  # fmt: skip
    return page, 410 if problem.expired else 400


def _nps_answer() -> int | None:
    """The NPS answer of the form (none when not given); anything but 0 … 10 is refused."""
    raw = request.form.get("nps", "").strip()
    if not raw:
        return None
    if not raw.isdecimal() or int(raw) > 10:
        raise RatingRefused("an answer from 0 to 10")
    return int(raw)


@bp.route("/csat/<token>", methods=["GET", "POST"])
@limiter.limit(_limit)
def rating(token: str) -> tuple[str, int]:
    """GET: the click (records the choice). POST: the same link with a comment."""
    secret = str(current_app.config["SECRET_KEY"])
    db = get_session()
    try:
        claim = read(token, secret=secret, max_age_days=CSAT_MAX_DAYS)  # the signature first, the window next
        ticket = db.get(Ticket, claim.ticket_id)
        if ticket is None:
            raise RatingRefused("this ticket no longer exists")
        now = datetime.now(UTC)
        claim.check_age(ticket.mailbox, now)
        comment = request.form.get("comment", "")[:MAX_COMMENT] if request.method == "POST" else None
        nps = _nps_answer() if request.method == "POST" else None
        changed = rate(db, ticket, claim.value, at=now, comment=comment, nps=nps)
    except RatingRefused as problem:
        db.rollback()
        return _refused(problem)
    if changed:
        run_rules_on_events(db, ticket.mailbox, [TicketEvent(Trigger.CSAT_RATED, ticket.id, None, now)])
    db.commit()
    locale = ticket_locale(db, ticket, ticket.mailbox)
    with force_locale(locale):
        page = render_template("web/csat.html", state="commented" if comment or nps is not None else "rated",
                               ticket=ticket, value=claim.value, token=token, max_comment=MAX_COMMENT, lang=locale,
                               asks_nps=csat_settings(ticket.mailbox)["nps"])  # fmt: skip
    return page, 200
