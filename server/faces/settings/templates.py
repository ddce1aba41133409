"""``/settings/templates``: a mailbox's shared templates — the list, and an editor of one template's
English and Russian versions with the variables it may use and a live preview rendered through the
same sandboxed Jinja as sending (with a real ticket of the mailbox, or a sample). Saving goes through
:mod:`server.services.template_sets` (the same check as ``postdesk templates import``).
"""

from __future__ import annotations

from typing import Any

import nh3
from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from sqlalchemy import select
from werkzeug.wrappers import Response

from server.base.db import get_session
from server.base.models import Locale, Mailbox, Template, Ticket
from server.faces.settings.base import acting, bp, chosen_mailbox, signed_in
from server.faces.settings.forms import TemplateForm
from server.faces.web.access import EVERYONE, allow, manages_mailbox
from server.services import template_sets
from server.services.knowledge.faq import questions_from_text
from server.services.templating import TemplateError

LOCALES = [loc.value for loc in Locale]
#: The variables a template sees, and what each holds (shown on the page; docs/rules.md has them too).
VARIABLES: list[tuple[str, Any]] = [
    ("customer.name", _l("the customer's name (or empty)")),
    ("customer.email", _l("the customer's address")),
    ("ticket.number", _l("the ticket's number")),
    ("ticket.subject", _l("its subject")),
    ("ticket.status", _l("open, pending, on_hold, solved, closed")),
    ("ticket.priority", _l("low, normal, high, urgent")),
    ("ticket.first_response_due_at", _l("when the first answer is due, in the reader's language and zone")),
    ("ticket.resolution_due_at", _l("when it should be solved")),
    ("ticket.due_at", _l("the next promise of the two")),
    ("ticket.created_at", _l("when it came in")),
    ("ticket.assignee", _l("the assignee's name (or empty)")),
    ("ticket.link", _l("opens the thread in the shared mailbox's Gmail (for agents)")),
    ("agent.name", _l("the agent who sends it")),
    ("agent.email", _l("their address")),
    ("mailbox.address", _l("the shared mailbox")),
    ("mailbox.name", _l("its name as customers see it")),
]


@bp.get("/templates")
@allow(EVERYONE)
def templates() -> str:
    box, mailboxes = chosen_mailbox()
    rows = get_session().scalars(
        select(Template)
        .where(Template.mailbox_id == box.id, Template.owner_id.is_(None))
        .order_by(Template.name, Template.locale)
    )
    names: dict[str, list[str]] = {}
    for row in rows:
        names.setdefault(row.name, []).append(row.locale)
    return render_template(
        "admin/templates.html",
        box=box,
        mailboxes=mailboxes,
        names=names,
        manages=manages_mailbox(signed_in(), box.id),
        section="templates",
    )


def _forms(box: Mailbox, name: str, formdata: Any = None) -> dict[str, TemplateForm]:
    forms = {}
    for locale in LOCALES:
        stored = template_sets.find(get_session(), box, name, locale) if name else None
        form = TemplateForm(formdata=formdata, prefix=locale, meta={"csrf": False})
        if formdata is None:
            form.subject.data = stored.subject if stored else ""
            form.text.data = stored.body_text if stored else ""
            form.html.data = (stored.body_html or "") if stored else ""
            form.questions.data = "\n".join(map(str, stored.faq_questions or [])) if stored else ""
            form.version.data = template_sets.version(stored)
        forms[locale] = form
    return forms


def _ticket(box: Mailbox) -> Ticket | None:
    number = request.values.get("ticket", "").strip().lstrip("#")
    if not number.isdecimal() or len(number) > 18:
        return None
    return get_session().scalar(
        select(Ticket).where(Ticket.mailbox_id == box.id, Ticket.number == int(number))
    )


def _previews(box: Mailbox, forms: dict[str, TemplateForm]) -> dict[str, dict[str, Any]]:
    """Each locale's draft rendered as sending would render it (or its error, with part and line)."""
    ticket = _ticket(box)
    shown: dict[str, dict[str, Any]] = {}
    for locale, form in forms.items():
        draft = template_sets.Draft(form.subject.data or "", form.text.data or "", form.html.data or None)
        if not (draft.subject or draft.text):
            continue
        try:
            rendered = template_sets.preview(
                get_session(), box, draft, locale, ticket=ticket, agent=signed_in()
            )
        except TemplateError as exc:
            shown[locale] = {"error": str(exc)}
        else:
            # The HTML part is the template author's: shown cleaned, as a mail client would show it.
            html = Markup(nh3.clean(rendered.html)) if rendered.html else None
            shown[locale] = {"subject": rendered.subject, "text": rendered.text, "html": html}
    return shown


@bp.route("/templates/edit", methods=["GET", "POST"])
@allow(EVERYONE)
def template_edit() -> str | Response | tuple[str, int]:
    box, mailboxes = chosen_mailbox()
    name = (request.values.get("name") or "").strip()[:200]
    manages = manages_mailbox(signed_in(), box.id)
    status = 200
    if request.method == "GET":
        forms = _forms(box, name)
    elif request.args.get("preview"):  # the drafts shown, nothing saved (the preview without script)
        if not manages:  # rendering what someone typed is for who may save it
            abort(403)
        forms = _forms(box, name, request.form)
    else:
        if not manages:
            abort(403)
        forms = _forms(box, name, request.form)
        if not name:
            flash(_("A template needs a name."), "error")
            return render_template("admin/template.html", box=box, mailboxes=mailboxes, name=name, forms=forms,
                                   previews={}, variables=VARIABLES, ticket="", manages=manages,
                                   section="templates"), 400  # fmt: skip
        db = get_session()
        problems = False
        try:
            for locale, form in forms.items():
                if not form.validate():
                    problems = True
                    continue
                draft = template_sets.Draft(
                    form.subject.data or "",
                    form.text.data or "",
                    form.html.data or None,
                    tuple(questions_from_text(form.questions.data or "")),
                )
                if not (draft.subject or draft.text):
                    continue  # this language is not written (yet)
                try:
                    template_sets.save(db, box, name, locale, draft, actor=acting(),
                                       expected_version=form.version.data or None, commit=False)  # fmt: skip
                except template_sets.TemplateProblem as exc:
                    problems = True
                    for field, text in exc.problems.items():
                        target = (
                            field if field in ("subject", "text", "html", "questions", "version") else "text"
                        )
                        form[target].errors = [*form[target].errors, text]
        finally:
            if problems:
                db.rollback()
        if not problems:
            db.commit()
            flash(_("Template %(name)s saved.", name=name), "ok")
            return redirect(url_for("admin.template_edit", mailbox=box.id, name=name))
        status = 400
    return render_template(
        "admin/template.html",
        box=box,
        mailboxes=mailboxes,
        name=name,
        forms=forms,
        previews=_previews(box, forms),
        variables=VARIABLES,
        ticket=request.values.get("ticket", ""),
        manages=manages,
        section="templates",
        faq_ids=_faq_ids(box, name),
    ), status


def _faq_ids(box: Mailbox, name: str) -> dict[str, int]:
    """The template's FAQ versions (with example questions) by language: each can become a help article."""
    found = (
        {locale: template_sets.find(get_session(), box, name, locale) for locale in LOCALES} if name else {}
    )
    return {locale: t.id for locale, t in found.items() if t is not None and t.faq_questions}


@bp.post("/templates/preview")
@allow(EVERYONE)
def template_preview() -> Response:
    """The live preview: the drafts in the form, rendered; JSON for the editor's script."""
    box, _mailboxes = chosen_mailbox()
    if not manages_mailbox(signed_in(), box.id):  # rendering what someone typed is for who may save it
        abort(403)
    forms = _forms(box, "", request.form)
    previews = _previews(box, forms)
    return jsonify({locale: {k: str(v) if v is not None else None for k, v in shown.items()}
                    for locale, shown in previews.items()})  # fmt: skip
