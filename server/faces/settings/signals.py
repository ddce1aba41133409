"""``/settings/signals``: the words that decide urgency and tone for a mailbox (docs/knowledge.md).

Shows the shipped words of each language and category, lets the mailbox's admins add their own (one
per line; saved whole through :func:`server.services.mailbox_settings.save`, checked by building the word
lists, so a bad pattern is refused at its field), and reads a sample text with the mailbox's words,
reasons and all — what the rules and the add-on card would see.
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from server.base.db import get_session
from server.base.models import Mailbox
from server.faces.settings.base import acting, bp, chosen_mailbox, show_problems, signed_in
from server.faces.settings.forms import SignalWordsForm
from server.faces.settings.forms import signal_field as _field
from server.faces.web.access import EVERYONE, allow, manages_mailbox
from server.gmail.mime import split_reply
from server.services.knowledge.signals import EXTENSIBLE, LANGUAGES, lexicon_with, read, shipped_words
from server.services.mailbox_settings import SettingsError, StaleSettings, signal_words
from server.services.mailbox_settings import save as save_settings
from server.services.mailbox_settings import version as settings_version

#: The longest sample the page reads.
MAX_SAMPLE = 5_000


def _fill(form: SignalWordsForm, box: Mailbox) -> None:
    added = signal_words(box)
    for language in LANGUAGES:
        for category in EXTENSIBLE:
            form[_field(language, category)].data = "\n".join(added.get(language, {}).get(category, []))
    form.version.data = settings_version(box)


def _page(box: Mailbox, mailboxes: list[Mailbox], form: SignalWordsForm, status: int) -> tuple[str, int]:
    sample = (request.args.get("sample") or "")[:MAX_SAMPLE]
    reading = read(split_reply(sample)[0], words=lexicon_with(signal_words(box))) if sample.strip() else None
    return render_template(
        "admin/signals.html",
        box=box,
        mailboxes=mailboxes,
        form=form,
        shipped={language: shipped_words(language) for language in LANGUAGES},
        languages=LANGUAGES,
        categories=EXTENSIBLE,
        field_name=_field,
        sample=sample,
        reading=reading,
        manages=manages_mailbox(signed_in(), box.id),
        section="signals",
    ), status


@bp.get("/signals")
@allow(EVERYONE)
def signals() -> tuple[str, int]:
    box, mailboxes = chosen_mailbox()
    form = SignalWordsForm()
    _fill(form, box)
    return _page(box, mailboxes, form, 200)


@bp.post("/signals")
@allow(EVERYONE)
def signals_save() -> Response | tuple[str, int]:
    box, mailboxes = chosen_mailbox()
    if not manages_mailbox(signed_in(), box.id):
        abort(403)
    form = SignalWordsForm()
    if not form.validate_on_submit():
        return _page(box, mailboxes, form, 400)
    wanted: dict[str, Any] = {}
    for language in LANGUAGES:
        for category in EXTENSIBLE:
            words = [line.strip() for line in (form[_field(language, category)].data or "").splitlines()]
            if any(words):
                wanted.setdefault(language, {})[category] = [w for w in words if w]
    db = get_session()
    try:
        save_settings(db, box, {**(box.settings or {}), "signal_words": wanted}, actor=acting(),
                      batch=int(current_app.config["RETIME_BATCH"]), expected_version=form.version.data or None)  # fmt: skip
    except StaleSettings:
        db.rollback()
        flash(_("These settings were changed elsewhere since you opened this page: nothing was saved. "
                "Here they are as they are now."), "error")  # fmt: skip
        return redirect(url_for("admin.signals", mailbox=box.id))
    except SettingsError as exc:
        db.rollback()
        problems = []
        for problem in exc.problems:
            path, _sep, text = problem.removeprefix("signal_words.").partition(": ")
            language, _dot, category = path.partition(".")
            problems.append((_field(language, category.split(":")[0]), text or problem))
        show_problems(form, problems, str(exc))
        return _page(box, mailboxes, form, 400)
    flash(_("The words were saved: new mail is read with them."), "ok")
    return redirect(url_for("admin.signals", mailbox=box.id))
