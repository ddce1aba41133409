"""``/auth``: sign in with Google, the demo's "sign in as", sign out (here or everywhere), language.

Only active agents sign in; with ``SIGN_IN_DOMAINS`` set, a verified person of one of those Workspace
domains may too, and joins as an agent (an ``agent_added`` event says it was by sign-in). Every
sign-in gets a new session token. Attempts are rate-limited per client address.
"""

from __future__ import annotations

import logging
import secrets

from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response

from server.base.db import get_session
from server.base.models import ActorKind, Agent, Locale
from server.faces.web.access import current_agent, safe_next
from server.faces.web.extensions import limiter
from server.faces.web.google import GoogleSignIn, SignInError, public_url_for
from server.faces.web.local import is_local_demo, this_machine_only
from server.services.accounts import AccountError, AgentChange, add_agent, update_agent
from server.services.sessions import end, end_everywhere, rotate
from server.services.tickets import Actor

log = logging.getLogger(__name__)
bp = Blueprint("web", __name__)


def _sign_in_limit() -> str:
    return str(current_app.config["SIGN_IN_RATE_LIMIT"])


def _signed_in(agent: Agent, target: str) -> Response:
    """Start the agent's session under a new token (a token planted before sign-in dies here)."""
    language = session.get("lang")
    session.clear()
    if language:
        session["lang"] = language
    rotate(session, agent.id)
    log.info("sign_in agent_id=%d", agent.id)
    return redirect(safe_next(target))


def _problem(message: str, status: int) -> tuple[str, int]:
    return render_template("web/sign_in.html", problem=message, google=True, demo=is_local_demo()), status


@bp.get("/auth/sign-in")
@limiter.limit(_sign_in_limit)
def sign_in() -> Response | tuple[str, int]:
    """Start Google's flow (or, in demo mode without a Google client, go to the demo picker)."""
    target = safe_next(request.args.get("next"))
    google = GoogleSignIn.from_config(current_app.config)
    if google is None:
        if is_local_demo():
            return redirect(url_for("web.demo", next=target))
        return render_template("web/sign_in.html", problem=None, google=False, demo=False), 503
    url, pending = google.start(public_url_for("web.callback"))
    session["sign_in"] = {**pending, "next": target}
    return redirect(url)


@bp.get("/auth/callback")
@limiter.limit(_sign_in_limit)
def callback() -> Response | tuple[str, int]:
    pending = session.pop("sign_in", None)
    state = request.args.get("state", "")
    if not isinstance(pending, dict) or not secrets.compare_digest(str(pending.get("state", "")), state):
        return _problem(_("This sign-in link has expired or was already used. Please sign in again."), 400)
    if request.args.get("error"):
        return _problem(_("Google did not sign you in. Please try again."), 400)
    google = GoogleSignIn.from_config(current_app.config)
    code = request.args.get("code", "")
    if google is None or not code or len(code) > 2000:
        return _problem(_("Google did not sign you in. Please try again."), 400)
    try:
        identity = google.finish(public_url_for("web.callback"), code, pending)
    except SignInError as exc:
        log.warning("sign_in_refused reason=%s", exc)
        return _problem(_("Google's answer could not be verified. Please sign in again."), 401)
    db = get_session()
    agent = db.scalar(select(Agent).where(Agent.email == identity.email))
    if agent is None and _may_join(identity.email, identity.domain):
        try:
            agent = add_agent(
                db,
                identity.email,
                AgentChange(name=identity.name),
                actor=Actor(ActorKind.SYSTEM),
                joined=True,
            )
        except AccountError:
            agent = db.scalar(select(Agent).where(Agent.email == identity.email))
    if agent is None or not agent.active:
        log.info("sign_in_not_member domain=%s", identity.domain or "-")
        return _problem(_("%(email)s is not an active member of this helpdesk. Ask an admin to add you.",
                          email=identity.email), 403)  # fmt: skip
    return _signed_in(agent, str(pending.get("next") or ""))


def _may_join(email: str, domain: str) -> bool:
    allowed = {
        d.strip().lower() for d in str(current_app.config["SIGN_IN_DOMAINS"]).replace(",", " ").split()
    }
    return bool(domain) and domain.lower() in allowed and email.rsplit("@", 1)[-1] == domain.lower()


@bp.route("/auth/demo", methods=["GET", "POST"])
@limiter.limit(_sign_in_limit, methods=["POST"])
def demo() -> Response | str:
    """Demo mode on this machine only: sign in as any demo agent, no Google."""
    this_machine_only()
    db = get_session()
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        agent = db.scalar(select(Agent).where(Agent.email == email, Agent.active.is_(True)))
        if agent is None:
            abort(400, _("No active agent with that address."))
        return _signed_in(agent, request.form.get("next", ""))
    agents = db.scalars(select(Agent).where(Agent.active.is_(True)).order_by(Agent.role, Agent.email)).all()
    return render_template("web/demo.html", agents=agents, next=safe_next(request.args.get("next")))


@bp.post("/auth/sign-out")
def sign_out() -> Response:
    agent = current_agent()
    if agent is not None and request.form.get("everywhere"):
        db = get_session()
        end_everywhere(db, agent.id)
        db.commit()
    language = session.get("lang")  # the signed-out page (and the next sign-in) keep it
    end(session, keep={"lang": language} if language else None)
    return redirect(url_for("web.signed_out"))


@bp.get("/auth/signed-out")
def signed_out() -> str:
    return render_template("web/signed_out.html")


@bp.post("/auth/language")
def language() -> Response:
    """Switch the pages' language (and, when signed in, the person's own language everywhere)."""
    chosen = request.form.get("lang", "")
    if chosen not in {loc.value for loc in Locale}:
        abort(400, _("Unknown language."))
    session["lang"] = chosen
    agent = current_agent()
    if agent is not None and agent.locale != chosen:
        update_agent(
            get_session(), agent.email, AgentChange(locale=chosen), actor=Actor(ActorKind.AGENT, agent.id)
        )
    return redirect(safe_next(request.form.get("next")))
