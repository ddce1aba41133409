"""``/settings``: the admins' and managers' pages. This module: profile, mailboxes, agents, audit log;
``rules``, ``builder``, ``templates``, ``sla`` and ``reminders`` add theirs to the same blueprint.

Each view checks the caller's role (:func:`server.web.access.allow`), parses its form, calls one
service (``server.accounts``, ``server.tickets``) and renders. Nothing here validates a value the
services validate too: their problems are shown next to the form's fields.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime
from typing import Any

from flask import (
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from server import tickets
from server.accounts import (
    AccountError,
    AgentChange,
    MailboxSpec,
    StaleEdit,
    add_agent,
    add_mailbox,
    administered,
    agent_version,
    normalize_address,
    parse_service_account,
    set_paused,
    update_agent,
)
from server.admin.base import acting, bp, page_number, page_size, settings_problems, show_problems, signed_in
from server.admin.forms import (
    AddMailboxForm,
    AgentForm,
    InviteForm,
    MailboxSettingsForm,
    ProfileForm,
    ReassignForm,
)
from server.db import get_session
from server.gmail.client import RetryPolicy, client_for_mailbox
from server.gmail.errors import GmailError
from server.gmail.send import enqueue
from server.mailbox_health import health_of
from server.mailbox_settings import (
    LABEL_DEFAULTS,
    SettingsError,
    StaleSettings,
    csat_settings,
    faq_settings,
    label_settings,
    setting,
)
from server.mailbox_settings import save as save_settings
from server.mailbox_settings import version as settings_version
from server.models import (
    Agent,
    AuthKind,
    Event,
    Mailbox,
    OutboxKind,
    Role,
)
from server.web.access import ADMINS, EVERYONE, READERS, allow, current_agent, manages_mailbox, reads_mailbox
from server.web.google import MAILBOX_SCOPE, GoogleSignIn, SignInError, public_url_for

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    from server.admin import builder, customers, integrations, reminders, rules, signals, sla, templates  # noqa: F401  (their views join this blueprint)

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


@bp.get("/")
@allow(EVERYONE)
def home() -> Response:
    """Each role's first page: the mailboxes for admins and managers, the profile for agents."""
    me = signed_in()
    return redirect(
        url_for("admin.mailboxes" if Role(me.role) in READERS or administered(me) else "admin.profile")
    )


@bp.route("/profile", methods=["GET", "POST"])
@allow(EVERYONE)
def profile() -> str | Response:
    me = signed_in()
    form = ProfileForm(obj=me if request.method == "GET" else None)
    if request.method == "GET":
        form.version.data = agent_version(me)
        form.digest.data = me.wants("digest")
        form.reminders.data = me.wants("reminders")
        form.weekly_report.data = me.wants("weekly_report")
    elif form.validate_on_submit():
        change = AgentChange(
            name=form.name.data or "",
            locale=form.locale.data,
            timezone=form.timezone.data,
            away=form.away.data,
            notifications={
                "digest": bool(form.digest.data),
                "reminders": bool(form.reminders.data),
                "weekly_report": bool(form.weekly_report.data),
            },  # fmt: skip
        )
        try:
            update_agent(get_session(), me.email, change, actor=acting(), version=form.version.data)
        except StaleEdit:
            flash(_("Your profile was changed elsewhere since you opened this page: nothing was saved. "
                    "Here it is as it is now."), "error")  # fmt: skip
            return redirect(url_for("admin.profile"))
        except AccountError as exc:
            show_problems(form, exc.problems.items(), str(exc))
        else:
            flash(_("Profile saved."), "ok")
            return redirect(url_for("admin.profile"))
    return render_template("admin/profile.html", form=form, section="profile")


@bp.get("/mailboxes")
@allow(EVERYONE)
def mailboxes() -> str:
    """Every mailbox for admins and managers; their own for a mailbox's admins; 403 for the others."""
    return _mailboxes_page(AddMailboxForm())


def _mailboxes_page(form: FlaskForm) -> str:
    db = get_session()
    me = signed_in()
    query = select(Mailbox).order_by(Mailbox.address)
    if Role(me.role) not in READERS:
        own = administered(me)
        if not own:
            abort(403)
        query = query.where(Mailbox.id.in_(own))
    page = page_number()
    size = page_size()
    rows = db.scalars(query.offset((page - 1) * size).limit(size + 1)).all()
    ids = [m.id for m in rows[:size]]
    now = datetime.now(UTC)
    states = health_of(db, ids, now)
    health = []
    for box in rows[:size]:
        state = states[box.id]
        lag = None if box.last_sync_at is None else int((now - box.last_sync_at).total_seconds() // 60)
        healthy = (
            not box.paused
            and box.sync_state != "error"
            and box.last_sync_at is not None
            and not state.outbox_failed
        )
        health.append(
            {"mailbox": box, "lag_minutes": lag, "backlog": state.outbox_waiting, "failed": state.outbox_failed,
             "healthy": healthy, "quota": state.gmail_units_today}
        )  # fmt: skip
    return render_template(
        "admin/mailboxes.html",
        health=health,
        page=page,
        more=len(rows) > size,
        form=form,
        section="mailboxes",
    )


#: The largest service-account key file accepted (real ones are about 2.3 KB).
MAX_KEY_BYTES = 64 * 1024


@bp.post("/mailboxes/add")
@allow(ADMINS)
def add_mailbox_page() -> Response | tuple[str, int]:
    """Connect a Workspace mailbox through a service account with domain-wide delegation."""
    form = AddMailboxForm()
    if form.validate_on_submit():
        content = form.key.data.read(MAX_KEY_BYTES + 1)
        try:
            if len(content) > MAX_KEY_BYTES:
                raise AccountError(
                    "the key file is too large", {"key": _("This is not a service-account key file.")}
                )
            secret = parse_service_account(content)
            spec = MailboxSpec(form.address.data or "", AuthKind.SERVICE_ACCOUNT, None, secret,
                               form.display_name.data or "")  # fmt: skip
            mailbox = add_mailbox(get_session(), spec, actor=acting())
        except AccountError as exc:
            show_problems(form, exc.problems.items(), str(exc))
        else:
            flash(_("%(address)s is connected. Test the connection to see that Google lets Postdesk in.",
                    address=mailbox.address), "ok")  # fmt: skip
            return redirect(url_for("admin.mailbox", mailbox_id=mailbox.id))
    return _mailboxes_page(form), 400


@bp.get("/mailboxes/connect")
@allow(ADMINS)
def connect_gmail() -> Response:
    """ "Connect Gmail": the shared mailbox's owner consents on Google's page (gmail.modify, offline),
    and Postdesk keeps the refresh token, encrypted. A GET (it changes nothing yet): the browser's
    form-action rule would stop a POST from being redirected to Google."""
    google = GoogleSignIn.from_config(current_app.config)
    try:
        address = normalize_address(request.args.get("address") or "")
    except AccountError:
        flash(_("Enter the shared mailbox's address."), "error")
        return redirect(url_for("admin.mailboxes"))
    if google is None:
        flash(
            _("Connecting by consent needs the Google OAuth client of the sign-in (see docs/deployment.md)."),
            "error",
        )
        return redirect(url_for("admin.mailboxes"))
    url, pending = google.start(
        public_url_for("admin.gmail_connected"),
        scope=MAILBOX_SCOPE,
        access_type="offline",
        prompt="consent",
        login_hint=address,
    )
    session["connect"] = {
        **pending,
        "address": address,
        "name": (request.args.get("display_name") or "")[:200],
    }
    return redirect(url)


@bp.get("/mailboxes/connected")
@allow(ADMINS)
def gmail_connected() -> Response:
    """Google's answer to "Connect Gmail": the consent must come from the shared mailbox itself."""
    pending = session.pop("connect", None)
    google = GoogleSignIn.from_config(current_app.config)
    state = request.args.get("state", "")
    if (
        not isinstance(pending, dict)
        or google is None
        or not secrets.compare_digest(str(pending.get("state", "")), state)
    ):
        flash(_("This link has expired or was already used. Connect the mailbox again."), "error")
        return redirect(url_for("admin.mailboxes"))
    code = request.args.get("code", "")
    if request.args.get("error") or not code or len(code) > 2000:
        flash(_("Google did not give the consent. Connect the mailbox again."), "error")
        return redirect(url_for("admin.mailboxes"))
    address = str(pending["address"])
    try:
        token = google.exchange(public_url_for("admin.gmail_connected"), code, pending)
        identity = google.identity(token, pending)
    except SignInError as exc:
        log.warning("connect_refused reason=%s", exc)
        flash(_("Google's answer could not be verified. Connect the mailbox again."), "error")
        return redirect(url_for("admin.mailboxes"))
    refresh = token.get("refresh_token")
    if identity.email != address:
        flash(_("The consent came from %(who)s, not from %(address)s: sign in to Google as the shared "
                "mailbox when you connect it.", who=identity.email, address=address), "error")  # fmt: skip
        return redirect(url_for("admin.mailboxes"))
    if not isinstance(refresh, str) or not refresh:
        flash(_("Google gave no lasting access (no refresh token). Remove Postdesk from the account's "
                "third-party access and connect again."), "error")  # fmt: skip
        return redirect(url_for("admin.mailboxes"))
    secret = {"client_id": google.client_id, "client_secret": google.client_secret,
              "token_uri": google.token_url, "refresh_token": refresh}  # fmt: skip
    try:
        box = add_mailbox(get_session(), MailboxSpec(address, AuthKind.OAUTH, None, secret, str(pending.get("name") or "")),
                          actor=acting())  # fmt: skip
    except AccountError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.mailboxes"))
    flash(
        _(
            "%(address)s is connected. Test the connection to see that Google lets Postdesk in.",
            address=box.address,
        ),
        "ok",
    )
    return redirect(url_for("admin.mailbox", mailbox_id=box.id))


@bp.route("/mailboxes/<int:mailbox_id>", methods=["GET", "POST"])
@allow(EVERYONE)
def mailbox(mailbox_id: int) -> str | Response | tuple[str, int]:
    box = _mailbox_or_404(mailbox_id, change=request.method == "POST")
    form = MailboxSettingsForm()
    status = 200
    if request.method == "GET":
        form.locale.data = setting(box, "locale")
        form.timezone.data = setting(box, "timezone")
        form.auto_replies_per_sender_per_hour.data = setting(box, "auto_replies_per_sender_per_hour")
        form.team_addresses.data = "\n".join(setting(box, "team_addresses") or [])
        rating = csat_settings(box)
        form.csat_enabled.data, form.csat_scale.data, form.csat_days.data, form.csat_nps.data = (
            rating["enabled"],
            rating["scale"],
            rating["days"],
            rating["nps"],
        )
        answers = faq_settings(box)
        form.faq_enabled.data, form.faq_threshold.data = answers["enabled"], round(answers["threshold"] * 100)
        labels = label_settings(box)
        form.labels_enabled.data, form.labels_root.data, form.labels_archive.data = (
            labels["enabled"],
            labels["root"],
            labels["archive_on_solve"],
        )
        form.version.data = settings_version(box)
    elif form.validate_on_submit():
        addresses = [line.strip() for line in (form.team_addresses.data or "").splitlines() if line.strip()]
        data = {
            **(box.settings or {}),
            "locale": form.locale.data,
            "timezone": (form.timezone.data or "").strip(),
            "auto_replies_per_sender_per_hour": form.auto_replies_per_sender_per_hour.data,
            "team_addresses": addresses,
            "csat": {
                "enabled": bool(form.csat_enabled.data),
                "scale": form.csat_scale.data,
                "days": form.csat_days.data,
                "nps": bool(form.csat_nps.data),
            },
            "faq": {
                "enabled": bool(form.faq_enabled.data),
                "threshold": faq_settings(box)["threshold"]
                if form.faq_threshold.data is None
                else form.faq_threshold.data / 100,
            },
            "gmail_labels": {
                "enabled": bool(form.labels_enabled.data),
                "root": (form.labels_root.data or "").strip() or LABEL_DEFAULTS["root"],
                "archive_on_solve": bool(form.labels_archive.data),
            },
        }
        db = get_session()
        try:
            retimed = save_settings(
                db,
                box,
                data,
                actor=acting(),
                batch=int(current_app.config["RETIME_BATCH"]),
                expected_version=form.version.data or None,
            )
        except StaleSettings:
            db.rollback()
            flash(_("These settings were changed elsewhere since you opened this page: nothing was saved. "
                    "Here they are as they are now."), "error")  # fmt: skip
            return redirect(url_for("admin.mailbox", mailbox_id=mailbox_id))
        except SettingsError as exc:
            db.rollback()
            show_problems(form, settings_problems(exc.problems), str(exc))
            status = 400
        else:
            flash(_("Settings saved; %(count)d open tickets got new due times.", count=retimed), "ok")
            return redirect(url_for("admin.mailbox", mailbox_id=mailbox_id))
    else:
        status = 400
    return render_template(
        "admin/mailbox.html",
        box=box,
        form=form,
        manages=manages_mailbox(signed_in(), box.id),
        section="mailboxes",
    ), status


@bp.post("/mailboxes/<int:mailbox_id>/pause")
@allow(EVERYONE)
def pause(mailbox_id: int) -> Response:
    set_paused(get_session(), _mailbox_or_404(mailbox_id, change=True), True, actor=acting())
    flash(_("Paused: Postdesk neither reads nor sends this mailbox's mail until you resume it."), "ok")
    return redirect(url_for("admin.mailbox", mailbox_id=mailbox_id))


@bp.post("/mailboxes/<int:mailbox_id>/resume")
@allow(EVERYONE)
def resume(mailbox_id: int) -> Response:
    set_paused(get_session(), _mailbox_or_404(mailbox_id, change=True), False, actor=acting())
    flash(_("Resumed: the next poll reads the mail that came meanwhile."), "ok")
    return redirect(url_for("admin.mailbox", mailbox_id=mailbox_id))


@bp.post("/mailboxes/<int:mailbox_id>/test")
@allow(EVERYONE)
def test_connection(mailbox_id: int) -> Response:
    """One cheap Gmail call (getProfile) with the stored credentials: does Google let Postdesk in?"""
    box = _mailbox_or_404(mailbox_id, change=True)
    try:
        with client_for_mailbox(box, retry=RetryPolicy(max_attempts=2, base=0.2, cap=1.0)) as client:
            profile = client.profile()
    except GmailError as exc:
        flash(_("Google refused the connection: %(problem)s", problem=str(exc)[:300]), "error")
    else:
        flash(_("Connected: %(address)s holds %(count)s messages.", address=profile.get("emailAddress", "?"),
                count=profile.get("messagesTotal", "?")), "ok")  # fmt: skip
    return redirect(url_for("admin.mailbox", mailbox_id=mailbox_id))


def _mailbox_or_404(mailbox_id: int, *, change: bool = False) -> Mailbox:
    """The mailbox if the caller may read it (or, with ``change``, manage it): else 403, or 404."""
    box = get_session().get(Mailbox, mailbox_id)
    if box is None:
        abort(404)
    allowed = manages_mailbox if change else reads_mailbox
    if not allowed(signed_in(), box.id):
        abort(403)
    return box


def _mailbox_choices() -> list[SelectChoice]:
    return [
        SelectChoice(a, a) for a in get_session().scalars(select(Mailbox.address).order_by(Mailbox.address))
    ]


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
    form.mailboxes.choices = _mailbox_choices()
    return render_template(
        "admin/agents.html", agents=rows[:size], page=page, more=len(rows) > size, form=form, section="agents"
    )


@bp.post("/agents/invite")
@allow(ADMINS)
def invite() -> Response | tuple[str, int]:
    form = InviteForm()
    form.mailboxes.choices = _mailbox_choices()
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
    form.mailboxes.choices = _mailbox_choices()
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
