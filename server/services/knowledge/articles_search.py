"""Searching a help centre's published articles: the knowledge engine's stems and BM25 weights over
the article's title (counted twice) and text, the rarer a word among the articles the more it weighs;
words related to the question's (server.services.knowledge.related) count too, for less; and, unless
the mailbox's ``semantic_search`` is off, what the question means (server.services.knowledge.meaning:
an article that says it in other words is found). A result's score is the engine's match (0–1 for
words alone; meaning may lift it above 1 for ranking).

A mailbox has hundreds of articles, not hundreds of thousands: they are ranked here, in one query for
their titles and bodies. Suggestions (similar solved tickets) and FAQ matching rank the same way
(:mod:`server.services.knowledge.similar`) with the same related terms.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.help_tables import Article
from server.services.knowledge import learnt, meaning
from server.services.knowledge.related import RELATED_WEIGHT
from server.services.knowledge.similar import K1, B, idf
from server.services.knowledge.stemming import terms

#: A result must match at least this share of what a perfect match would score.
MIN_SHARE = 0.15


#: Articles' vectors by what was encoded (an edited article is encoded again), per process.
_VECTORS: dict[tuple[int, str], np.ndarray] = {}
_MOST_KEPT = 5_000


def _cosines(query: str, articles: list[Article]) -> dict[int, float]:
    """The cosine of the query's meaning with each article's (its title and start)."""
    wanted = [(article.id, f"{article.title}\n{article.body[:600]}") for article in articles]
    # Read into this request's own dict: another request may empty the shared one meanwhile.
    found = {key: _VECTORS.get(key) for key in wanted}
    missing = [key for key, vector in found.items() if vector is None]
    if missing:
        if len(_VECTORS) + len(missing) > _MOST_KEPT:
            _VECTORS.clear()
        for key, vector in zip(missing, meaning.encode([text for _id, text in missing]), strict=True):
            found[key] = _VECTORS[key] = vector
    asked = meaning.ask(query)
    return {key[0]: float(vector @ asked) for key, vector in found.items() if vector is not None}


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
    query = query[: meaning.MAX_CHARS]
    if not wanted and not query.strip():
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
    related = learnt.related_terms(session, published[0].mailbox, wanted)
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
    cosine = _cosines(query, published) if meaning.enabled(published[0].mailbox) else {}
    asked_script = meaning.script(query)
    scored = []
    for article in published:
        stems = documents[article.id]
        counts = Counter(stem for stem in stems if stem in weights)
        norm = K1 * (1 - B + B * len(stems) / average)
        share = sum(weights[stem] * n * (K1 + 1) / (n + norm) for stem, n in counts.items()) / best
        score = meaning.combined(
            share,
            cosine.get(article.id),
            same_script=asked_script in ("", meaning.script(article.title + " " + article.body[:300])),
        )
        if score >= MIN_SHARE:
            scored.append(Found(article, round(score, 4)))
    scored.sort(key=lambda f: (-f.score, f.article.language != language, f.article.id))
    return scored[:limit]
