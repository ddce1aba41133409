"""``/settings/articles``: a mailbox's help-centre articles — the list (with views and "answered"
votes), an editor with a live preview (the Markdown rendered and cleaned as the public page shows it),
drafts, publishing, translations, deleting; "Make a help article" from an FAQ template; and the FAQ
candidates (questions that keep coming back without an article), each made a draft in one click. Everyone
who reads the mailbox sees them; admins, managers and the mailbox's admins write them. Saving goes
through :mod:`server.services.articles` (the same checks as the API).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import BooleanField, HiddenField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from server.base.db import get_session
from server.base.help_tables import Article
from server.base.models import Mailbox, Role, Template, Ticket
from server.faces.settings.base import bp, chosen_mailbox, signed_in
from server.faces.web.access import EVERYONE, allow, manages_mailbox
from server.services import articles
from server.services.help_settings import help_settings
from server.services.knowledge import candidates


class ArticleForm(FlaskForm):  # type: ignore[misc]
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=articles.MAX_TITLE)])
    body = TextAreaField(
        _l("Text (Markdown)"), validators=[Length(max=articles.MAX_BODY)], render_kw={"rows": 18}
    )
    language = SelectField(
        _l("Language"), choices=[SelectChoice("en", "English"), SelectChoice("ru", "Русский")]
    )
    category = StringField(_l("Category"), validators=[Length(max=articles.MAX_CATEGORY)])
    translation_of = SelectField(_l("Translation of"), choices=[])
    published = BooleanField(_l("Published: shown in the help centre"))
    version = HiddenField()


def writes(box: Mailbox) -> bool:
    """Admins, managers and the mailbox's admins write its articles."""
    me = signed_in()
    return Role(me.role) in (Role.ADMIN, Role.MANAGER) or manages_mailbox(me, box.id)


def _version(article: Article | None) -> str:
    return article.updated_at.isoformat() if article is not None and article.updated_at else ""


def _article(box: Mailbox) -> Article | None:
    raw = request.values.get("id", "")
    if not raw:
        return None
    found = get_session().get(Article, int(raw)) if raw.isdecimal() and len(raw) < 10 else None
    if found is None or found.mailbox_id != box.id:
        abort(404)
    return found


def _form(box: Mailbox, article: Article | None, formdata: Any = None) -> ArticleForm:
    form = ArticleForm(formdata=formdata)
    others = [a for a in articles.of_mailbox(get_session(), box.id) if article is None or a.id != article.id]
    form.translation_of.choices = [("", _("— none —"))] + [
        (str(a.id), f"{a.title} ({a.language})") for a in others
    ]
    if formdata is None and article is not None:
        form.title.data, form.body.data, form.category.data = article.title, article.body, article.category
        form.language.data, form.published.data = article.language, article.published
        form.translation_of.data = str(article.translation_of_id or "")
        form.version.data = _version(article)
    return form


def _draft(form: ArticleForm) -> articles.Draft:
    chosen = form.translation_of.data or ""
    return articles.Draft(title=form.title.data or "", body=form.body.data or "", language=form.language.data or "",
                          category=form.category.data or "", published=bool(form.published.data),
                          translation_of=int(chosen) if chosen.isdecimal() and len(chosen) < 10 else None)  # fmt: skip


def _public_url(box: Mailbox, article: Article | None) -> str | None:
    settings = help_settings(box)
    if article is None or not article.published or not settings["enabled"]:
        return None
    return url_for("help.article", slug=settings["slug"], article_id=article.id,
                   words=articles.words_of(article.title), _external=True)  # fmt: skip


@bp.get("/articles")
@allow(EVERYONE)
def articles_page() -> str:
    box, mailboxes = chosen_mailbox()
    settings = help_settings(box)
    home = url_for("help.home", slug=settings["slug"], _external=True) if settings["enabled"] else None
    return render_template("admin/articles.html", box=box, mailboxes=mailboxes, section="articles",
                           articles=articles.of_mailbox(get_session(), box.id), writes=writes(box), home=home)  # fmt: skip


@bp.route("/articles/edit", methods=["GET", "POST"])
@allow(EVERYONE)
def article_edit() -> str | Response | tuple[str, int]:
    box, mailboxes = chosen_mailbox()
    article = _article(box)
    may = writes(box)
    status, preview = 200, None
    if request.method == "GET":
        form = _form(box, article)
        preview = articles.render(article.body) if article is not None else None
    else:
        if not may:
            abort(403)
        form = _form(box, article, request.form)
        preview = articles.render(form.body.data or "")
        if not request.args.get("preview") and form.validate_on_submit():
            if article is not None and (form.version.data or "") != _version(article):
                flash(
                    _("Someone changed this article meanwhile: nothing was saved. Here it is as it is now."),
                    "error",
                )
                return redirect(url_for("admin.article_edit", mailbox=box.id, id=article.id))
            db = get_session()
            try:
                saved = articles.save(
                    db, box, _draft(form), author=signed_in(), article=article, at=datetime.now(UTC)
                )
            except articles.ArticleError as exc:
                db.rollback()
                for problem in exc.problems:
                    name, _sep, text = problem.partition(": ")
                    target = form._fields.get(name, form.body)
                    target.errors = [*target.errors, text]
                status = 400
            else:
                db.commit()
                flash(_("Article saved."), "ok")
                return redirect(url_for("admin.article_edit", mailbox=box.id, id=saved.id))
        elif not request.args.get("preview"):
            status = 400
    return render_template("admin/article.html", box=box, mailboxes=mailboxes, section="articles", form=form,
                           article=article, writes=may, preview=preview, public=_public_url(box, article)), status  # fmt: skip


@bp.post("/articles/preview")
@allow(EVERYONE)
def article_preview() -> Response:
    """The live preview: the Markdown in the form, rendered and cleaned as the public page shows it."""
    box, _mailboxes = chosen_mailbox()
    if not writes(box):
        abort(403)
    return jsonify({"html": str(articles.render(str(request.form.get("body", ""))[: articles.MAX_BODY]))})


@bp.post("/articles/delete")
@allow(EVERYONE)
def article_delete() -> Response:
    box, _mailboxes = chosen_mailbox()
    if not writes(box):
        abort(403)
    article = _article(box)
    if article is None:
        flash(_("Choose the article to delete."), "error")
        return redirect(url_for("admin.articles_page", mailbox=box.id))
    articles.delete(get_session(), article)
    get_session().commit()
    flash(_("Article deleted."), "ok")
    return redirect(url_for("admin.articles_page", mailbox=box.id))


@bp.post("/articles/from-template")
@allow(EVERYONE)
def article_from_template() -> Response:
    """An FAQ template's answer as a draft article (its first example question the title); the FAQ
    answers in acknowledgements link to the article once it is published."""
    box, _mailboxes = chosen_mailbox()
    if not writes(box):
        abort(403)
    raw = request.form.get("template", "")
    template = get_session().get(Template, int(raw)) if raw.isdecimal() and len(raw) < 10 else None
    if template is None or template.mailbox_id != box.id or template.owner_id is not None:
        flash(_("No such template of this mailbox."), "error")
        return redirect(url_for("admin.templates", mailbox=box.id))
    db = get_session()
    article = articles.from_template(db, box, template, author=signed_in(), at=datetime.now(UTC))
    db.commit()
    flash(_("A draft article was made from the template: check it and publish it."), "ok")
    return redirect(url_for("admin.article_edit", mailbox=box.id, id=article.id))


@bp.get("/articles/candidates")
@allow(EVERYONE)
def faq_candidates_page() -> str:
    """The questions that keep coming back without an article (solved in the last 90 days)."""
    box, mailboxes = chosen_mailbox()
    found = candidates.faq_candidates(get_session(), box, now=datetime.now(UTC))
    return render_template("admin/faq_candidates.html", box=box, mailboxes=mailboxes, section="articles",
                           candidates=found, writes=writes(box), days=candidates.DAYS)  # fmt: skip


@bp.post("/articles/from-ticket")
@allow(EVERYONE)
def article_from_ticket() -> Response:
    """A solved ticket's answer (a candidate's best) as a draft article, opened in the editor."""
    box, _mailboxes = chosen_mailbox()
    if not writes(box):
        abort(403)
    raw = request.form.get("ticket", "")
    ticket = get_session().get(Ticket, int(raw)) if raw.isdecimal() and len(raw) < 10 else None
    if ticket is None or ticket.mailbox_id != box.id:
        flash(_("No such ticket of this mailbox."), "error")
        return redirect(url_for("admin.faq_candidates_page", mailbox=box.id))
    db = get_session()
    try:
        article = articles.from_ticket(db, ticket, author=signed_in(), at=datetime.now(UTC))
    except articles.ArticleError as exc:
        db.rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.faq_candidates_page", mailbox=box.id))
    db.commit()
    flash(_("A draft article was made from the answer: check it and publish it."), "ok")
    return redirect(url_for("admin.article_edit", mailbox=box.id, id=article.id))
