"""``/settings/api-tokens`` and ``/settings/webhooks``: the REST API's tokens and the mailboxes' webhooks.

Anyone makes tokens for themself (with the scopes their role allows); an admin makes and revokes
anyone's. A token's secret is shown once, on the page that made it, and never again. Webhooks are a
mailbox's: its admins (and Postdesk's admins) add, change, test and remove them; managers read them.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from server.base.db import get_session
from server.base.models import Agent, ApiToken, Mailbox, Role, Webhook, WebhookAttempt, WebhookDelivery
from server.faces.settings.base import bp, chosen_mailbox, signed_in
from server.faces.settings.forms import ApiTokenForm, WebhookForm
from server.faces.web.access import EVERYONE, allow, manages_mailbox, reads_mailbox
from server.services import api_tokens, webhooks

#: The delivery log's length on a webhook's page.
LOG_ROWS = 50


def _token_form(*, blank: bool = False) -> ApiTokenForm:
    me = signed_in()
    form = ApiTokenForm(formdata=None) if blank else ApiTokenForm()
    people = [me]
    if Role(me.role) is Role.ADMIN:
        people = list(
            get_session().scalars(select(Agent).where(Agent.active.is_(True)).order_by(Agent.email))
        )
    form.owner.choices = [SelectChoice(str(p.id), p.email) for p in people]
    if request.method == "GET" or blank:
        form.owner.data = str(me.id)
    form.scopes.choices = [SelectChoice(s.value, s.value) for s in api_tokens.Scope]
    return form


@bp.route("/api-tokens", methods=["GET", "POST"])
@allow(EVERYONE)
def api_tokens_page() -> str | tuple[str, int]:
    """Tokens for the REST API: yours (everyone's, for an admin), and a form to make one."""
    me = signed_in()
    db = get_session()
    form = _token_form()
    secret = None
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            chosen = form.owner.data or str(me.id)  # one's own token unless an admin chooses someone
            allowed_owners = {choice.value for choice in form.owner.choices}
            owner = db.get(Agent, int(chosen)) if chosen in allowed_owners else None
            now = datetime.now(UTC)
            expires = (
                datetime.combine(form.expires.data, time(23, 59, 59), UTC)
                if form.expires.data is not None
                else None
            )
            try:
                if owner is None:
                    raise api_tokens.TokenError(_("Choose who the token is for."))
                _token, secret = api_tokens.create(
                    db, owner=owner, name=form.name.data or "", scopes=form.scopes.data or [], expires_at=expires,
                    by=me, now=now,
                )  # fmt: skip
                db.commit()
                form = _token_form(blank=True)  # the secret is on the page; the form starts empty again
            except api_tokens.TokenError as exc:
                db.rollback()
                form.scopes.errors = [*form.scopes.errors, str(exc)]
                status = 400
        else:
            status = 400
    tokens = api_tokens.tokens_of(db, me)
    owners = {a.id: a for a in db.scalars(select(Agent).where(Agent.id.in_({t.agent_id for t in tokens})))}
    return render_template(
        "admin/api_tokens.html",
        form=form,
        tokens=tokens,
        owners=owners,
        secret=secret,
        allowed={s.value for s in api_tokens.SCOPES_OF_ROLE[Role(me.role)]},
        now=datetime.now(UTC),
        section="api",
    ), status


@bp.post("/api-tokens/<int:token_id>/revoke")
@allow(EVERYONE)
def revoke_api_token(token_id: int) -> Response:
    me = signed_in()
    db = get_session()
    token = db.get(ApiToken, token_id) if token_id < 2**31 else None
    if token is None:
        abort(404)
    try:
        api_tokens.revoke(db, token, by=me, now=datetime.now(UTC))
    except api_tokens.TokenError:
        abort(403)
    db.commit()
    flash(_("The token %(name)s was revoked.", name=token.name), "ok")
    return redirect(url_for("admin.api_tokens_page"))


def _settings() -> webhooks.Settings:
    return webhooks.Settings.from_config(current_app.config)


def _event_choices() -> list[SelectChoice]:
    return [SelectChoice(kind, kind) for kind in webhooks.EVENT_TYPES]


@bp.route("/webhooks", methods=["GET", "POST"])
@allow(EVERYONE)
def webhooks_page() -> str | tuple[str, int]:
    """A mailbox's webhooks; its admins add one here (its secret is shown once)."""
    me = signed_in()
    box, mailboxes = chosen_mailbox()
    if not reads_mailbox(me, box.id):
        abort(403)
    manages = manages_mailbox(me, box.id)
    db = get_session()
    form = WebhookForm()
    form.events.choices = _event_choices()
    if request.method == "GET":
        form.events.data = list(webhooks.EVENT_TYPES)
    secret, status = None, 200
    if request.method == "POST":
        if not manages:
            abort(403)
        if form.validate_on_submit():
            try:
                _hook, secret = webhooks.subscribe(
                    db, box, url=form.url.data or "", events=form.events.data or [], by=me, settings=_settings(),
                    now=datetime.now(UTC),
                )  # fmt: skip
                db.commit()
                form = WebhookForm(formdata=None)
                form.events.choices, form.events.data = _event_choices(), list(webhooks.EVENT_TYPES)
            except webhooks.WebhookError as exc:
                db.rollback()
                form.url.errors = [*form.url.errors, str(exc)]
                status = 400
        else:
            status = 400
    hooks = db.scalars(select(Webhook).where(Webhook.mailbox_id == box.id).order_by(Webhook.id)).all()
    return render_template(
        "admin/webhooks.html", box=box, mailboxes=mailboxes, hooks=hooks, form=form, secret=secret,
        manages=manages, section="webhooks",
    ), status  # fmt: skip


def _hook(hook_id: int, *, change: bool) -> tuple[Webhook, Mailbox]:
    me = signed_in()
    db = get_session()
    hook = db.get(Webhook, hook_id) if hook_id < 2**31 else None
    if hook is None:
        abort(404)
    if not reads_mailbox(me, hook.mailbox_id) or (change and not manages_mailbox(me, hook.mailbox_id)):
        abort(403)
    box = db.get(Mailbox, hook.mailbox_id)
    assert box is not None
    return hook, box


@bp.route("/webhooks/<int:hook_id>", methods=["GET", "POST"])
@allow(EVERYONE)
def webhook_page(hook_id: int) -> str | tuple[str, int] | Response:
    """One webhook: its address and events, on or off, and its delivery log with each attempt."""
    me = signed_in()
    hook, box = _hook(hook_id, change=request.method == "POST")
    db = get_session()
    form = WebhookForm(obj=hook if request.method == "GET" else None)
    form.events.choices = _event_choices()
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                webhooks.change(
                    db, hook, url=form.url.data or "", events=form.events.data or [], enabled=form.enabled.data,
                    by=me, settings=_settings(), now=datetime.now(UTC),
                )  # fmt: skip
                db.commit()
                flash(_("Saved."), "ok")
                return redirect(url_for("admin.webhook_page", hook_id=hook.id))
            except webhooks.WebhookError as exc:
                db.rollback()
                form.url.errors = [*form.url.errors, str(exc)]
        status = 400
    deliveries = db.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.webhook_id == hook.id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
        .limit(LOG_ROWS)
    ).all()
    attempts: dict[str, list[WebhookAttempt]] = {}
    for row in db.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_([d.id for d in deliveries]))
        .order_by(WebhookAttempt.id)
    ):
        attempts.setdefault(row.delivery_id, []).append(row)
    return render_template(
        "admin/webhook.html", hook=hook, box=box, form=form, deliveries=deliveries, attempts=attempts,
        manages=manages_mailbox(me, box.id), section="webhooks",
    ), status  # fmt: skip


@bp.post("/webhooks/<int:hook_id>/test")
@allow(EVERYONE)
def test_webhook(hook_id: int) -> Response:
    hook, _box = _hook(hook_id, change=True)
    db = get_session()
    outcome = webhooks.send_test(db, hook, _settings(), datetime.now(UTC))
    db.commit()
    if outcome.ok:
        flash(_("The receiver answered %(status)d.", status=outcome.status or 0), "ok")
    else:
        problem = str(outcome.status) if outcome.status is not None else (outcome.error or "")
        flash(_("The test failed: %(problem)s", problem=problem[:200]), "error")
    return redirect(url_for("admin.webhook_page", hook_id=hook.id))


@bp.post("/webhooks/<int:hook_id>/delete")
@allow(EVERYONE)
def delete_webhook(hook_id: int) -> Response:
    hook, box = _hook(hook_id, change=True)
    db = get_session()
    webhooks.remove(db, hook, by=signed_in(), now=datetime.now(UTC))
    db.commit()
    flash(_("The webhook was removed."), "ok")
    return redirect(url_for("admin.webhooks_page", mailbox=box.id))
