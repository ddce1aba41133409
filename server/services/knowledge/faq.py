"""FAQ answers: a template with example questions answers a new ticket that asks one of them.

A mailbox's shared templates with ``faq_questions`` are its FAQ. A new ticket's text (subject and new
text, through the same Snowball stems as everything here) is compared with every example question:
the *score* is the cosine of the two sets of stems, each stem weighed by its rarity in the mailbox's
knowledge index (a word every ticket has says little); each template's examples together count as
one more example (a question may join two of them). The best template whose best example scores
at least the mailbox's ``faq.threshold`` is the match. The acknowledgement then carries its answer
and a signed "this solved it" link (``/faq/<token>``); a click is an Event and runs the mailbox's
``faq_solved`` rules, and the ticket stays open until one acts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.db import memo
from server.base.models import Mailbox, Template
from server.services.knowledge import learnt, meaning
from server.services.knowledge.index import ALL, counts_of
from server.services.knowledge.related import RELATED_WEIGHT
from server.services.knowledge.similar import weights
from server.services.knowledge.stemming import terms
from server.services.mailbox_settings import faq_settings
from server.services.templating import RenderedMail

SALT = "postdesk-faq-v1"
#: How long a "this solved it" link works.
LINK_DAYS = 30
#: The most example questions a template keeps, and the longest one.
MOST_QUESTIONS, LONGEST_QUESTION = 50, 500


@dataclass(frozen=True)
class FaqMatch:
    template: Template
    score: float  # 0–1
    example: str  # the example question that matched best


def _cosine(first: dict[str, float], second: set[str], weight: dict[str, float]) -> float:
    """The cosine of the question (its stems' weights, related stems' less) and an example's stems."""
    shared = sum(first[stem] * weight[stem] for stem in second if stem in first)
    if not shared:
        return 0.0
    own = sum(w**2 for w in first.values())
    return shared / math.sqrt(own * sum(weight[s] ** 2 for s in second))


#: The cosine from which meaning alone may pick an FAQ answer (it reaches the default threshold 0.5
#: at a cosine of 0.725).
MEANING_FLOOR = 0.45
#: Example questions' vectors by text, per process (an admin's edit is a new text).
_EXAMPLES: dict[str, Any] = {}


def _meanings(text: str, examples: list[str]) -> dict[str, float]:
    """The cosine of the question's meaning with each example question's."""
    # Read into this call's own dict: another thread may empty the shared one meanwhile.
    found = {example: _EXAMPLES.get(example) for example in dict.fromkeys(examples)}
    missing = [example for example, vector in found.items() if vector is None]
    if missing:
        if len(_EXAMPLES) + len(missing) > 10_000:
            _EXAMPLES.clear()
        for example, vector in zip(missing, meaning.encode(missing), strict=True):
            found[example] = _EXAMPLES[example] = vector
    asked = meaning.ask(text)
    return {example: float(vector @ asked) for example, vector in found.items() if vector is not None}


def faq_templates(session: Session, mailbox_id: int) -> list[Template]:
    """The mailbox's shared templates that have example questions."""

    def read() -> list[Template]:
        found = session.scalars(
            select(Template)
            .where(Template.mailbox_id == mailbox_id, Template.owner_id.is_(None))
            .order_by(Template.name, Template.locale)
        )
        return [template for template in found if template.faq_questions]

    return memo(session, ("faq_templates", mailbox_id), read)


def best_answer(session: Session, mailbox: Mailbox, text: str, *, locale: str) -> FaqMatch | None:
    """The FAQ template that answers ``text`` at or above the mailbox's threshold (the ``locale``
    version of a template when it has one), or None."""
    settings = faq_settings(mailbox)
    if not settings["enabled"]:
        return None
    templates = faq_templates(session, mailbox.id)
    asked = set(terms(text))
    if not templates or not asked:
        return None
    examples = [
        (template, str(example), set(terms(str(example))))
        for template in templates
        for example in template.faq_questions[:MOST_QUESTIONS]
    ]
    related = set(learnt.related_terms(session, mailbox, terms(text))) - asked
    every: set[str] = asked.union(related, *(stems for _t, _e, stems in examples))
    counts = counts_of(session, mailbox.id, every)
    weight = weights(counts, every) if counts[ALL] else dict.fromkeys(every, 1.0)
    # The question's own words, and the words related to them for less (server.services.knowledge.related).
    # Scored with and without them: related words may find a paraphrase, never lower a plain match.
    own = {stem: weight[stem] for stem in asked}
    question = {stem: RELATED_WEIGHT * weight[stem] for stem in related} | own
    # Each example alone, and each template's examples together (a question may join two of them).
    together: dict[int, tuple[Template, set[str]]] = {}
    for template, _example, stems in examples:
        together.setdefault(id(template), (template, set()))[1].update(stems)
    candidates = examples + [(template, "", stems) for template, stems in together.values()]
    # Meaning (server.services.knowledge.meaning) answers a customer only when it is sure: its cosine
    # counts from MEANING_FLOOR up (a paraphrase's median cosine is about 0.33, an unrelated
    # question's 99th percentile about 0.35 on the tuning sets: below that it would answer wrongly).
    sure = _meanings(text, [example for _t, example, _s in examples]) if meaning.enabled(mailbox) else {}
    best: FaqMatch | None = None
    for template, example, stems in candidates:
        plain = _cosine(own, stems, weight)
        score = round(max(plain, _cosine(question, stems, weight)) if related else plain, 3)
        if example in sure:
            score = round(max(score, (sure[example] - MEANING_FLOOR) / (1 - MEANING_FLOOR)), 3)
        if best is None or score > best.score:
            best = FaqMatch(template, score, example or "; ".join(map(str, template.faq_questions[:3])))
    if best is None or best.score < float(settings["threshold"]):
        return None
    return in_locale(templates, best, locale)


def in_locale(templates: Iterable[Template], match: FaqMatch, locale: str) -> FaqMatch:
    """The same template (by name) in the customer's language, when the mailbox has it."""
    for template in templates:
        if template.name == match.template.name and template.locale == locale:
            return FaqMatch(template, match.score, match.example)
    return match


def questions_from_text(raw: str) -> list[str]:
    """Example questions as an admin types them: one a line, blank lines and repeats dropped."""
    seen: dict[str, None] = {}
    for line in raw.splitlines():
        question = " ".join(line.split())
        if question:
            seen.setdefault(question, None)
    return list(seen)


def question_problems(questions: list[str]) -> list[str]:
    problems = []
    if len(questions) > MOST_QUESTIONS:
        problems.append(f"at most {MOST_QUESTIONS} example questions")
    for question in questions:
        if len(question) > LONGEST_QUESTION:
            problems.append(
                f"an example question of at most {LONGEST_QUESTION} characters: {question[:60]!r}…"
            )
        elif not terms(question):
            problems.append(f"{question[:60]!r} has no word that tells one question from another")
    return problems


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SALT)


def solved_link(ticket_id: int, template_id: int, *, secret: str, base_url: str) -> str:
    """The signed "this solved it" link of an FAQ answer on a ticket ('' without a public URL)."""
    if not base_url:
        return ""
    return f"{base_url.rstrip('/')}/faq/{_serializer(secret).dumps({'t': ticket_id, 'f': template_id})}"


class LinkRefused(ValueError):
    """Not a link of ours, altered, or older than :data:`LINK_DAYS` (``expired``)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class Claim:
    ticket_id: int
    template_id: int
    issued_at: datetime


def read_link(token: str, *, secret: str) -> Claim:
    if not token or len(token) > 500:
        raise LinkRefused("not an FAQ link")
    try:
        data, issued_at = _serializer(secret).loads(token, max_age=LINK_DAYS * 86_400, return_timestamp=True)
    except SignatureExpired as exc:
        raise LinkRefused("the link has expired", expired=True) from exc
    except BadSignature as exc:
        raise LinkRefused("not an FAQ link of ours") from exc
    if not isinstance(data, dict) or not isinstance(data.get("t"), int) or not isinstance(data.get("f"), int):
        raise LinkRefused("not an FAQ link of ours")
    return Claim(data["t"], data["f"], issued_at)


#: What an acknowledgement says around an FAQ answer when its template does not place it.
FAQ_BLOCK = {
    "en": ("This may already answer your question:", "If it did, tell us with one click: {link}",
           "If not, just reply: the ticket stays open and we will answer as promised."),
    "ru": ("Возможно, это уже отвечает на ваш вопрос:", "Если помогло, скажите нам одним нажатием: {link}",
           "Если нет, просто ответьте на это письмо: заявка остаётся открытой, и мы ответим, как обещали."),
}  # fmt: skip
#: The line that links the help-centre article made from the FAQ answer, once it is published.
ARTICLE_LINE = {"en": "More in our help centre: {link}", "ru": "Подробнее в справочном центре: {link}"}


def with_faq_answer(rendered: RenderedMail, faq: dict[str, Any], locale: str) -> RenderedMail:
    intro, solved, otherwise = FAQ_BLOCK.get(locale, FAQ_BLOCK["en"])
    more = ARTICLE_LINE.get(locale, ARTICLE_LINE["en"])
    lines = (
        [intro, "", faq["answer"], ""]
        + ([more.format(link=faq["article"])] if faq.get("article") else [])
        + ([solved.format(link=faq["link"])] if faq["link"] else [])
        + [otherwise]
    )
    text = rendered.text.rstrip("\n") + "\n\n---\n" + "\n".join(lines) + "\n"
    html = rendered.html
    if html is not None:
        link = f'<a href="{escape(faq["link"])}">{escape(solved.split(":")[0])}</a>' if faq["link"] else ""
        article = (
            f'<p><a href="{escape(faq["article"])}">{escape(more.split(":")[0])}</a></p>'
            if faq.get("article")
            else ""
        )
        html += (f"<hr><p>{escape(intro)}</p><p>{escape(faq['answer']).replace(chr(10), Markup('<br>'))}</p>"
                 f"{article}<p>{link}</p><p>{escape(otherwise)}</p>")  # fmt: skip
    return dataclasses.replace(rendered, text=text, html=html)
