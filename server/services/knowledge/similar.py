"""Similar solved tickets: the index's entries nearest to a ticket's question, with their answers.

Two steps, so a suggestion costs the same with a thousand solved tickets as with a hundred thousand:

1. **Candidates, from the database's full-text index and by meaning.** The question's rarest stems
   (at most :data:`QUERY_TERMS`, by the mailbox's stem counts) are looked up in FTS5 (SQLite) or with
   the GIN index (PostgreSQL) among the mailbox's newest :data:`WINDOW` entries; the newest
   :data:`CANDIDATES` that contain any of them are read — in the same statement as the
   :data:`MEANING_CANDIDATES` entries nearest by meaning (:mod:`server.services.knowledge.meaning`,
   unless the mailbox's ``semantic_search`` is off), which need share no word.
2. **Ranking, here.** Each candidate gets a BM25 score over its question's stems (its answer's
   count for a third), every stem weighed by its rarity in the mailbox; the score divided by what a
   candidate asking exactly the same would get is the words' match (0–1); the meaning's cosine
   lifts it (:func:`server.services.knowledge.meaning.combined`), and the result, at most 1, is the
   *match* shown to agents; below :data:`MIN_MATCH` nothing is shown. Answers that say the same
   thing are shown once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, literal_column, select, text, union_all
from sqlalchemy.orm import Session

from server.base.models import KnowledgeEntry, Ticket
from server.services.knowledge import learnt, meaning
from server.services.knowledge.index import ALL, counts_of, question_of
from server.services.knowledge.related import MAX_RELATED, RELATED_WEIGHT, Lexicon
from server.services.knowledge.stemming import worded_terms

#: How many of the question's rarest stems look for candidates, and of the related stems.
QUERY_TERMS, RELATED_LOOKUPS = 8, 6
#: Suggestions come from the mailbox's newest entries: answers change, and the cost stays flat.
WINDOW = 20_000
#: The most candidates ranked for one suggestion, and of them the nearest by meaning.
CANDIDATES, MEANING_CANDIDATES = 200, 20
#: A suggestion matching less than this shares a word or two by chance: not shown. (On the generated
#: corpus of tests/knowledge_corpus.py, 95 % of right answers match 0.27 or more.)
MIN_MATCH = 0.2
#: BM25's term-frequency saturation and length normalisation; how much the answer's words count.
K1, B, ANSWER_WEIGHT = 1.2, 0.75, 0.3


@dataclass(frozen=True)
class Suggestion:
    ticket_id: int
    number: int
    subject: str
    answer: str
    solved_at: datetime | None
    match: float  # 0–1


def idf(total: int, containing: int) -> float:
    """How much a stem in ``containing`` of ``total`` entries says (BM25's, never negative)."""
    return math.log(1 + (total - containing + 0.5) / (containing + 0.5))


def weights(counts: Mapping[str, int], stems: Iterable[str]) -> dict[str, float]:
    total = counts.get(ALL, 0)
    return {stem: idf(total, counts.get(stem, 0)) for stem in set(stems)}


def _bm25(stems: list[str], query: Mapping[str, float], average: float) -> float:
    if not stems:
        return 0.0
    found: dict[str, int] = {}
    for stem in stems:
        if stem in query:
            found[stem] = found.get(stem, 0) + 1
    norm = K1 * (1 - B + B * len(stems) / max(average, 1.0))
    return sum(query[stem] * n * (K1 + 1) / (n + norm) for stem, n in found.items())


_COLUMNS = (
    KnowledgeEntry.id,
    KnowledgeEntry.ticket_id,
    KnowledgeEntry.question_terms,
    KnowledgeEntry.answer_terms,
    KnowledgeEntry.answer,
    Ticket.number,
    Ticket.subject,
    Ticket.solved_at,
)


def _candidates(
    session: Session, ticket: Ticket, chosen: list[tuple[str, str]], floor: int, nearest: list[int]
) -> list[Any]:
    """The newest entries that have any of the ``chosen`` stems (above ``floor``), and the ``nearest``
    by meaning (first, whatever their age): one query."""
    query = (
        select(*_COLUMNS)
        .join(Ticket, Ticket.id == KnowledgeEntry.ticket_id)
        .where(
            KnowledgeEntry.mailbox_id == ticket.mailbox_id,
            KnowledgeEntry.ticket_id != (ticket.id or 0),  # never the ticket itself (a new one has no id yet)
        )
    )
    found_by: list[Any] = []
    if chosen and session.get_bind().dialect.name == "postgresql":
        # The words themselves, stemmed by PostgreSQL as the generated document was.
        queries = [
            func.plainto_tsquery(literal_column("'russian'::regconfig"), word) for _stem, word in chosen
        ]
        either: Any = queries[0]
        for more in queries[1:]:
            either = either.op("||")(more)
        found_by.append(and_(KnowledgeEntry.id > floor, literal_column("document").op("@@")(either)))
    elif chosen:
        fts = " OR ".join(f'"{stem}"' for stem, _word in chosen)
        found_by.append(KnowledgeEntry.id > floor)
        found_by.append(
            KnowledgeEntry.id.in_(
                select(literal_column("rowid"))
                .select_from(text("knowledge_fts"))
                .where(text("knowledge_fts MATCH :fts AND rowid > :floor"))
            )
        )
        query = query.params(fts=fts, floor=floor)
    parts = [select(query.where(*found_by).order_by(KnowledgeEntry.id.desc()).limit(CANDIDATES).subquery())]
    if nearest:
        # A part of its own: in one condition with the words', the database would scan the mailbox.
        parts.append(query.where(KnowledgeEntry.id.in_(nearest)))
    if not found_by:
        parts = parts[1:]
    if not parts:
        return []
    rows = session.execute(parts[0] if len(parts) == 1 else union_all(*parts)).all()
    return list({row.id: row for row in rows}.values())


def _floor(session: Session, mailbox_id: int, entries: int) -> int:
    """The id above which the mailbox's newest :data:`WINDOW` entries lie, about (two index lookups,
    not a count): ids grow with every entry of every mailbox, so the mailbox's share of them
    stretches the window."""
    if entries <= WINDOW:
        return 0
    newest, issued = session.execute(
        select(
            select(func.max(KnowledgeEntry.id))
            .where(KnowledgeEntry.mailbox_id == mailbox_id)
            .scalar_subquery(),
            select(func.max(KnowledgeEntry.id)).scalar_subquery(),
        )
    ).one()
    if newest is None or issued is None:
        return 0
    return max(0, int(newest - WINDOW * issued / entries))


def _same_answer(answer: str) -> str:
    return re.sub(r"\W+", " ", answer.lower()).strip()[:2_000]


def suggest(
    session: Session,
    ticket: Ticket,
    *,
    limit: int = 3,
    question: str | None = None,
    lexicon: Lexicon | None = None,
    by_meaning: bool | None = None,
) -> list[Suggestion]:
    """Up to ``limit`` solved tickets of the mailbox that asked what ``ticket`` asks (or ``question``),
    best first, one per answer. Words related to the question's (``lexicon``; by default the shipped
    lists, the mailbox's own and what it learnt, server.services.knowledge.learnt; an empty one for the
    words alone) count too, for less; and, unless ``by_meaning``
    is False (default: the mailbox's ``semantic_search``), so does what the question means
    (:mod:`server.services.knowledge.meaning`), which finds the answers that share no word with it."""
    wording = question if question is not None else question_of(session, ticket)
    worded = worded_terms(wording)
    query_stems = [stem for stem, _word in worded]
    by_meaning = meaning.enabled(ticket.mailbox) if by_meaning is None else by_meaning
    if not query_stems and not (by_meaning and wording.strip()):
        return []
    related = learnt.related_terms(session, ticket.mailbox, query_stems, lexicon)
    counts = counts_of(session, ticket.mailbox_id, [*query_stems, *related])
    if not counts[ALL]:
        return []
    word_of = dict(reversed(worded))
    known = sorted((counts[stem], stem) for stem in set(query_stems) if counts.get(stem))
    chosen = [(stem, word_of[stem]) for _n, stem in known[:QUERY_TERMS]]
    near = sorted((counts[stem], stem) for stem in related if counts.get(stem))
    # Candidates come through the rarest related stems only (the lookup's cost stays that of the
    # question's own words); every related stem the index has counts in the ranking.
    chosen += [(stem, related[stem]) for _n, stem in near[:RELATED_LOOKUPS]]
    cosine: dict[int, float] = {}
    asked_script = meaning.script(wording)
    closest: dict[int, float] = {}
    if by_meaning:
        asked = meaning.ask(wording)
        shelf = meaning.shelf_of(session, ticket.mailbox_id)
        closest = shelf.nearest(asked, MEANING_CANDIDATES)
    found = _candidates(
        session,
        ticket,
        chosen,
        _floor(session, ticket.mailbox_id, counts[ALL]) if chosen else 0,
        list(closest),
    )
    if by_meaning:
        cosine = closest | shelf.cosines(asked, [row.id for row in found if row.id not in closest])
    if not found:
        return []
    own = weights(counts, query_stems)
    query = {
        stem: RELATED_WEIGHT * w for stem, w in weights(counts, [s for _n, s in near[:MAX_RELATED]]).items()
    }
    query |= own
    best = (1 + ANSWER_WEIGHT) * (sum(own.values()) or 1.0)
    lengths = [len(row.question_terms.split()) for row in found]
    average = sum(lengths) / len(lengths)
    answer_average = sum(len(row.answer_terms.split()) for row in found) / len(found)
    scored = sorted(
        (
            (
                meaning.combined(
                    min(
                        (
                            _bm25(row.question_terms.split(), query, average)
                            + ANSWER_WEIGHT * _bm25(row.answer_terms.split(), query, answer_average)
                        )
                        / best,
                        1.0,
                    ),
                    cosine.get(row.id),
                    same_script=asked_script in ("", meaning.script(row.question_terms)),
                ),
                row.id,
                row,
            )
            for row in found
        ),
        key=lambda item: (-item[0], -item[1]),
    )
    picked: dict[str, tuple[float, Any]] = {}
    for score, _id, row in scored:
        key = _same_answer(row.answer)
        if key not in picked:
            picked[key] = (score, row)
        if len(picked) == limit:
            break
    suggestions = [
        Suggestion(
            ticket_id=row.ticket_id,
            number=row.number,
            subject=row.subject,
            answer=row.answer,
            solved_at=row.solved_at,
            match=round(min(score, 1.0), 2),
        )
        for score, row in picked.values()
    ]
    return [suggestion for suggestion in suggestions if suggestion.match >= MIN_MATCH]
