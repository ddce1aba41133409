"""Searching a help centre's published articles: the knowledge engine's stems and BM25 weights over
the article's title (counted twice) and text, the rarer a word among the articles the more it weighs;
words related to the question's (server.services.knowledge.related) count too, for less.

A mailbox has hundreds of articles, not hundreds of thousands: they are ranked here, in one query for
their titles and bodies. Suggestions (similar solved tickets) and FAQ matching rank the same way
(:mod:`server.services.knowledge.similar`) with the same related terms.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.help_tables import Article
from server.services.knowledge.related import RELATED_WEIGHT, expand, mailbox_lexicon
from server.services.knowledge.similar import K1, B, idf
from server.services.knowledge.stemming import terms

#: A result must match at least this share of what a perfect match would score.
MIN_SHARE = 0.15


@dataclass(frozen=True)
class Found:
    article: Article
    score: float


def search(
    session: Session, mailbox_id: int, query: str, *, language: str | None = None, limit: int = 10
) -> list[Found]:
    """The mailbox's published articles that answer ``query``, best first (those in ``language`` first
    among equals)."""
    wanted = terms(query)[:30]
    if not wanted:
        return []
    published = list(
        session.scalars(select(Article).where(Article.mailbox_id == mailbox_id, Article.published.is_(True)))
    )
    if not published:
        return []
    documents = {a.id: terms(f"{a.title}\n{a.title}\n{a.category}\n{a.body}")[:3000] for a in published}
    containing: Counter[str] = Counter()
    for stems in documents.values():
        containing.update(set(stems))
    related = expand(mailbox_lexicon(published[0].mailbox), wanted)
    weights = {
        stem: RELATED_WEIGHT * idf(len(published), containing[stem]) for stem in related if containing[stem]
    }
    weights |= {stem: idf(len(published), containing[stem]) for stem in set(wanted)}
    average = sum(len(s) for s in documents.values()) / len(documents) or 1.0
    # A perfect match has every asked word the articles know (or, when they know none, every related one).
    known = [stem for stem in set(wanted) if containing[stem]] or [
        stem for stem in related if containing[stem]
    ]
    best = sum(weights[stem] for stem in known) * (K1 + 1) / (1 + K1 * (1 - B)) or 1.0
    scored = []
    for article in published:
        stems = documents[article.id]
        counts = Counter(stem for stem in stems if stem in weights)
        norm = K1 * (1 - B + B * len(stems) / average)
        score = sum(weights[stem] * n * (K1 + 1) / (n + norm) for stem, n in counts.items())
        if score / best >= MIN_SHARE:
            scored.append(Found(article, round(score, 4)))
    scored.sort(key=lambda f: (-f.score, f.article.language != language, f.article.id))
    return scored[:limit]
