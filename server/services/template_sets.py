"""A mailbox's shared templates: check, save (with its audit event) and preview them.

The CLI (`postdesk templates import`) and the settings page's templates page both save through
:func:`save`, so a template is checked once: it must compile in the sandboxed Jinja and render with a
sample ticket (a misspelt variable is an error naming the part and line, before anything is saved).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.models import Agent, Customer, Locale, Mailbox, Template, Ticket
from server.services.composing import mail_context
from server.services.knowledge.faq import question_problems
from server.services.mailbox_settings import setting
from server.services.templating import RenderedMail, TemplateError, check_template, render_mail
from server.services.tickets import SYSTEM, Actor, record_event

NAME_LENGTH = 200


class TemplateProblem(ValueError):
    """A template cannot be saved; ``problems`` maps a form field (or "name") to what is wrong."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))


@dataclass(frozen=True)
class Draft:
    subject: str
    text: str
    html: str | None = None
    #: FAQ example questions (server.services.knowledge.faq); none: not an FAQ answer.
    questions: tuple[str, ...] = ()


def sample_ticket(mailbox: Mailbox, locale: str) -> Ticket:
    """A ticket that exists only for a preview (never added to a session)."""
    customer = Customer(
        email="maria@example.org", name="Мария Иванова" if locale == "ru" else "Maria Ivanova"
    )
    now = datetime.now(UTC)
    return Ticket(
        mailbox_id=mailbox.id,
        number=1042,
        subject="Не приходит счёт" if locale == "ru" else "The invoice did not arrive",
        status="open",
        priority="normal",
        customer=customer,
        created_at=now,
        first_response_due_at=now + timedelta(hours=4),
        resolution_due_at=now + timedelta(days=2),
        due_at=now + timedelta(hours=4),
        gmail_thread_id="sample",
    )


def sample_extras(locale: str) -> dict[str, Any]:
    """What reminder and digest templates see besides the ticket (``reminder.*``, ``digest.*``)."""
    item = {"number": 1042, "subject": "The invoice did not arrive", "due_at": "", "link": ""}
    return {
        "reminder": {"what": "первый ответ" if locale == "ru" else "first response", "due_at": ""},
        "digest": {"date": "", "open": [item], "overdue": [item], "due_today": []},
    }


def preview(
    session: Session,
    mailbox: Mailbox,
    draft: Draft,
    locale: str,
    *,
    ticket: Ticket | None,
    agent: Agent | None,
) -> RenderedMail:
    """``draft`` rendered as sending would render it, for ``ticket`` (or a sample); TemplateError else."""
    zone = str(setting(mailbox, "timezone"))
    shown = ticket if ticket is not None else sample_ticket(mailbox, locale)
    context = sample_extras(locale) | mail_context(shown, mailbox, locale=locale, zone=zone, agent=agent)
    return render_mail(draft.subject, draft.text, draft.html or None, context)


def check(mailbox: Mailbox, name: str, locale: str, draft: Draft) -> dict[str, str]:
    """Every problem of a template before it is saved, by field ({} when it is fine)."""
    problems: dict[str, str] = {}
    if not name.strip() or len(name) > NAME_LENGTH or any(ord(c) < 32 for c in name):
        problems["name"] = f"a name of 1 to {NAME_LENGTH} printable characters"
    if locale not in {loc.value for loc in Locale}:
        problems["locale"] = f"one of {', '.join(loc.value for loc in Locale)}"
    try:
        check_template(draft.subject, draft.text, draft.html)
        context = sample_extras(locale) | mail_context(
            sample_ticket(mailbox, locale), mailbox, locale=locale, zone="UTC"
        )
        render_mail(draft.subject, draft.text, draft.html or None, context)
    except TemplateError as exc:
        part = str(exc).split(",", 1)[0].split(":", 1)[0].strip()
        problems[part if part in ("subject", "text", "html") else "text"] = str(exc)
    if found := question_problems(list(draft.questions)):
        problems["questions"] = "; ".join(found)
    return problems


def version(template: Template | None) -> str:
    """A fingerprint of a stored template (a form saved over another version is refused)."""
    if template is None:
        return "new"
    content = "\x00".join(
        (
            template.subject,
            template.body_text,
            template.body_html or "",
            *map(str, template.faq_questions or []),
        )
    )
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def find(session: Session, mailbox: Mailbox, name: str, locale: str) -> Template | None:
    return session.scalar(
        select(Template).where(
            Template.mailbox_id == mailbox.id,
            Template.owner_id.is_(None),
            Template.name == name,
            Template.locale == locale,
        )
    )


def save(
    session: Session,
    mailbox: Mailbox,
    name: str,
    locale: str,
    draft: Draft,
    *,
    actor: Actor = SYSTEM,
    expected_version: str | None = None,
    commit: bool = True,
) -> Template:
    """Add or change the shared template ``name`` in ``locale``; :class:`TemplateProblem` otherwise.

    With ``expected_version`` (from :func:`version` when a form was opened) a newer change wins and
    nothing is saved (the problem is under ``version``)."""
    name = name.strip()
    problems = check(mailbox, name, locale, draft)
    stored = find(session, mailbox, name, locale) if "name" not in problems else None
    if expected_version is not None and expected_version != version(stored):
        problems["version"] = "changed by someone else since the page was opened: nothing was saved"
    if problems:
        raise TemplateProblem(problems)
    before = _content(stored)
    if stored is None:
        stored = Template(mailbox_id=mailbox.id, name=name, locale=locale)
        session.add(stored)
    stored.subject, stored.body_text, stored.body_html = draft.subject, draft.text, draft.html or None
    stored.faq_questions = list(draft.questions)
    after = _content(stored) or {}
    if after != before:
        record_event(session, None, "template_changed", actor=actor, mailbox_id=mailbox.id,
                     before=before and {"template": name, "locale": locale, **before},
                     after={"template": name, "locale": locale, **after})  # fmt: skip
    if commit:
        session.commit()
    return stored


def _content(template: Template | None) -> dict[str, Any] | None:
    if template is None:
        return None
    return {"subject": template.subject, "text": template.body_text, "html": template.body_html,
            "questions": list(template.faq_questions or [])}  # fmt: skip
