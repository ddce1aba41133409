"""``/settings/agents``: the team — invite, change a person's role and mailboxes, reassign their tickets."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import (
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from server.base.db import get_session
from server.base.models import (
    Agent,
    Mailbox,
    OutboxKind,
    Role,
)
from server.faces.settings.base import (
    acting,
    bp,
    mailbox_choices,
    page_number,
    page_size,
    show_problems,
    signed_in,
)
from server.faces.settings.forms import (
    AgentForm,
    InviteForm,
    ReassignForm,
)
from server.faces.web.access import (
    ADMINS,
    READERS,
    allow,
)
from server.faces.web.google import public_url_for
from server.gmail.send import enqueue
from server.services import tickets
from server.services.accounts import (
    AccountError,
    AgentChange,
    StaleEdit,
    add_agent,
    administered,
    agent_version,
    update_agent,
)

log = logging.getLogger(__name__)


@bp.get("/agents")
@allow(READERS)
def agents() -> str:
    db = get_session()
    page = page_number()
    size = page_size()
    rows = db.scalars(
        select(Agent)
        .options(selectinload(Agent.mailboxes))
        .order_by(Agent.email)
        .offset((page - 1) * size)
        .limit(size + 1)
    ).all()
    form = InviteForm()
    form.mailboxes.choices = mailbox_choices()
    return render_template(
        "admin/agents.html", agents=rows[:size], page=page, more=len(rows) > size, form=form, section="agents"
    )


@bp.post("/agents/invite")
@allow(ADMINS)
def invite() -> Response | tuple[str, int]:
    form = InviteForm()
    form.mailboxes.choices = mailbox_choices()
    if form.validate_on_submit():
        db = get_session()
        change = AgentChange(
            name=form.name.data or "",
            role=form.role.data,
            locale=form.locale.data,
            mailboxes=tuple(form.mailboxes.data or ()),
        )
        try:
            agent = add_agent(db, form.email.data or "", change, actor=acting())
        except AccountError as exc:
            show_problems(form, exc.problems.items(), str(exc))
        else:
            sent = _send_invitation(agent)
            flash(_("%(email)s was added.", email=agent.email) + " " + (
                _("An invitation is on its way.") if sent else _("Connect a mailbox to send invitations.")), "ok")  # fmt: skip
            return redirect(url_for("admin.agents"))
    db = get_session()
    rows = db.scalars(
        select(Agent).options(selectinload(Agent.mailboxes)).order_by(Agent.email).limit(page_size())
    ).all()
    page = render_template("admin/agents.html", agents=rows, page=1, more=False, form=form, section="agents")
    return page, 400


def _send_invitation(agent: Agent) -> bool:
    """The invitation email, in the invitee's language, from their first mailbox (through the Outbox)."""
    db = get_session()
    mailbox = agent.mailboxes[0] if agent.mailboxes else db.scalar(select(Mailbox).order_by(Mailbox.id))
    if mailbox is None:
        return False
    with force_locale(agent.locale):
        subject = _("You are invited to the helpdesk %(mailbox)s", mailbox=mailbox.address)
        text = _(
            "Hello %(name)s,\n\n%(inviter)s added you to the team of %(mailbox)s in Postdesk.\n"
            "Sign in with your Google account: %(url)s\n",
            name=agent.name or agent.email,
            inviter=signed_in().name or signed_in().email,
            mailbox=mailbox.address,
            url=public_url_for("web.sign_in"),
        )
    enqueue(
        db,
        mailbox=mailbox,
        kind=OutboxKind.NOTIFICATION,
        key=f"invite:{agent.id}",
        to=[agent.email],
        subject=subject,
        text=text,
        headers={"internal": True},
    )
    db.commit()
    return True


def _agent_or_404(agent_id: int) -> Agent:
    agent = get_session().get(Agent, agent_id)
    if agent is None:
        abort(404)
    return agent


def _reassign_form(agent: Agent) -> ReassignForm:
    form = ReassignForm()
    others = get_session().scalars(
        select(Agent).where(Agent.active.is_(True), Agent.id != agent.id).order_by(Agent.name, Agent.email)
    )
    form.to.choices = [SelectChoice("", _("Nobody (unassigned)"))] + [
        SelectChoice(str(a.id), a.name or a.email) for a in others
    ]
    return form


@bp.route("/agents/<int:agent_id>", methods=["GET", "POST"])
@allow(READERS)
def agent(agent_id: int) -> str | Response | tuple[str, int]:
    person = _agent_or_404(agent_id)
    if request.method == "POST" and Role(signed_in().role) is not Role.ADMIN:
        abort(403)
    form = AgentForm(obj=person if request.method == "GET" else None)
    form.mailboxes.choices = mailbox_choices()
    status = 200
    form.admin_of.choices = form.mailboxes.choices
    if request.method == "GET":
        form.mailboxes.data = [m.address for m in person.mailboxes]
        own = administered(person)
        form.admin_of.data = [m.address for m in person.mailboxes if m.id in own]
        form.version.data = agent_version(person)
    elif form.validate_on_submit():
        change = AgentChange(
            name=form.name.data or "",
            role=form.role.data,
            locale=form.locale.data,
            timezone=form.timezone.data,
            active=form.active.data,
            away=form.away.data,
            mailboxes=tuple(form.mailboxes.data or ()),
            admin_of=tuple(form.admin_of.data or ()),
        )
        try:
            update_agent(get_session(), person.email, change, actor=acting(), version=form.version.data)
        except StaleEdit:
            flash(_("%(email)s was changed by someone else since you opened this page: nothing was saved. "
                    "Here is the current version.", email=person.email), "error")  # fmt: skip
            return redirect(url_for("admin.agent", agent_id=agent_id))
        except AccountError as exc:
            show_problems(form, exc.problems.items(), str(exc))
            status = 400
        else:
            flash(_("%(email)s saved.", email=person.email), "ok")
            return redirect(url_for("admin.agent", agent_id=agent_id))
    else:
        status = 400
    open_tickets = tickets.open_tickets_of(get_session(), person.id)
    return render_template(
        "admin/agent.html",
        person=person,
        form=form,
        reassign=_reassign_form(person),
        open_tickets=open_tickets,
        section="agents",
    ), status


@bp.post("/agents/<int:agent_id>/reassign")
@allow(ADMINS)
def reassign(agent_id: int) -> Response:
    person = _agent_or_404(agent_id)
    form = _reassign_form(person)
    if not form.validate_on_submit():
        abort(400)
    target = int(form.to.data) if form.to.data else None
    db = get_session()
    moved = tickets.reassign_all(db, person.id, target, at=datetime.now(UTC), actor=acting())
    db.commit()
    flash(_("%(count)d open tickets reassigned.", count=moved), "ok")
    return redirect(url_for("admin.agent", agent_id=agent_id))
