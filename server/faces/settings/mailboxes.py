"""``/settings/mailboxes``: the list with each mailbox's health, connecting one (a key file or Google's consent), its settings, pause, resume and the connection test."""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime

from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.wrappers import Response

from server.base.db import get_session
from server.base.models import (
    AuthKind,
    Mailbox,
    Role,
)
from server.faces.settings.base import (
    acting,
    bp,
    page_number,
    page_size,
    settings_problems,
    show_problems,
    signed_in,
)
from server.faces.settings.forms import (
    AddMailboxForm,
    MailboxSettingsForm,
)
from server.faces.web.access import (
    ADMINS,
    EVERYONE,
    READERS,
    allow,
    manages_mailbox,
    reads_mailbox,
)
from server.faces.web.google import MAILBOX_SCOPE, GoogleSignIn, SignInError, public_url_for
from server.gmail.client import RetryPolicy, client_for_mailbox
from server.gmail.errors import GmailError
from server.services.accounts import (
    AccountError,
    MailboxSpec,
    add_mailbox,
    administered,
    normalize_address,
    parse_service_account,
    set_paused,
)
from server.services.help_settings import help_settings
from server.services.mailbox_health import health_of
from server.services.mailbox_settings import (
    LABEL_DEFAULTS,
    SettingsError,
    StaleSettings,
    csat_settings,
    faq_settings,
    label_settings,
    setting,
)
from server.services.mailbox_settings import save as save_settings
from server.services.mailbox_settings import version as settings_version

log = logging.getLogger(__name__)


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
        form.assign_to_responder.data = bool(setting(box, "assign_to_responder"))
        form.acknowledge_splits.data = bool(setting(box, "acknowledge_splits"))
        form.semantic_search.data = bool(setting(box, "semantic_search"))
        rating = csat_settings(box)
        form.csat_enabled.data, form.csat_scale.data, form.csat_days.data, form.csat_nps.data = (
            rating["enabled"],
            rating["scale"],
            rating["days"],
            rating["nps"],
        )
        answers = faq_settings(box)
        form.faq_enabled.data, form.faq_threshold.data = answers["enabled"], round(answers["threshold"] * 100)
        centre = help_settings(box)
        form.help_centre_enabled.data, form.help_centre_slug.data = centre["enabled"], centre["slug"] or ""
        form.help_centre_contact_form.data = centre["contact_form"]
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
            "assign_to_responder": bool(form.assign_to_responder.data),
            "acknowledge_splits": bool(form.acknowledge_splits.data),
            "semantic_search": bool(form.semantic_search.data),
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
            "help_centre": {
                "enabled": bool(form.help_centre_enabled.data),
                "slug": (form.help_centre_slug.data or "").strip().lower() or None,
                "contact_form": bool(form.help_centre_contact_form.data),
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
