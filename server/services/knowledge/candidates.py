"""FAQ candidates: the questions that keep coming back without an article (Deskun's rule 10 as a
screen). The solved tickets of the last :data:`DAYS` days, from the knowledge index, are grouped by the
same similarity suggestions use — the question's stems weighed by their rarity in the mailbox, and
related terms (:mod:`server.services.knowledge.related`) — and each group of at least
:data:`MIN_TICKETS` that no article of the mailbox already answers is a candidate: how many tickets,
the typical wording (the question nearest to all the others), and the team's most given answer, which
"Write the article" makes a draft of.

Grouping links two questions whose similarity is at least :data:`LINK` (single linkage over an
inverted index of each question's rarest stems, so the cost grows with the tickets, not their square).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.base.help_tables import Article
from server.base.models import KnowledgeEntry, Mailbox, Ticket
from server.services.knowledge.index import counts_of
from server.services.knowledge.related import RELATED_WEIGHT, Lexicon, expand, mailbox_lexicon
from server.services.knowledge.similar import weights
from server.services.knowledge.stemming import terms

DAYS = 90
MIN_TICKETS = 3
#: Two questions this similar (cosine of their weighed stems) ask the same thing.
LINK = 0.45
#: An article this similar to a group's questions already answers them.
COVERED = 0.35
#: Each question meets the others through its rarest stems only.
PROBES = 6
MOST_ENTRIES = 5_000


@dataclass(frozen=True)
class Candidate:
    tickets: list[int]
    wording: str
    question: str
    answer: str
    answer_ticket: int
    numbers: list[int]


def _vector(stems: list[str], weight: dict[str, float], lexicon: Lexicon) -> dict[str, float]:
    own = {stem: weight.get(stem, 0.0) for stem in stems}
    related = {stem: RELATED_WEIGHT * weight.get(stem, 0.0) for stem in expand(lexicon, stems)}
    return related | own


def _cosine(first: dict[str, float], second: dict[str, float]) -> float:
    shared = sum(w * second[s] for s, w in first.items() if s in second)
    if not shared:
        return 0.0
    return shared / math.sqrt(sum(w * w for w in first.values()) * sum(w * w for w in second.values()))


def faq_candidates(session: Session, mailbox: Mailbox, *, now: datetime, days: int = DAYS,
                   min_tickets: int = MIN_TICKETS) -> list[Candidate]:  # fmt: skip
    """The groups of similar solved questions no article answers, biggest first."""
    rows = session.execute(
        select(KnowledgeEntry.ticket_id, KnowledgeEntry.question, KnowledgeEntry.question_terms,
               KnowledgeEntry.answer, Ticket.subject, Ticket.number)
        .join(Ticket, Ticket.id == KnowledgeEntry.ticket_id)
        .where(KnowledgeEntry.mailbox_id == mailbox.id, KnowledgeEntry.solved_at >= now - timedelta(days=days))
        .order_by(KnowledgeEntry.id.desc()).limit(MOST_ENTRIES)
    ).all()  # fmt: skip
    if len(rows) < min_tickets:
        return []
    lexicon = mailbox_lexicon(mailbox)
    stems = [row.question_terms.split() for row in rows]
    counts = counts_of(session, mailbox.id, {s for found in stems for s in found})
    weight = weights(counts, {s for found in stems for s in found})
    vectors = [_vector(found, weight, lexicon) for found in stems]
    plain = [{stem: weight.get(stem, 0.0) for stem in found} for found in stems]
    by_stem: dict[str, list[int]] = defaultdict(list)
    probes = [sorted(set(found), key=lambda s: (-weight.get(s, 0.0), s))[:PROBES] for found in stems]
    for n, rarest in enumerate(probes):
        for stem in rarest:
            by_stem[stem].append(n)
    parent = list(range(len(rows)))

    def root(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for n, vector in enumerate(vectors):
        for other in sorted({m for stem in probes[n] for m in by_stem[stem] if m > n}):
            # Like FAQ matching: related terms may link a paraphrase, never part what the words join.
            # (one side's words with their related terms against the other's words, as a search does).
            similar = max(
                _cosine(plain[n], plain[other]),
                _cosine(vector, plain[other]),
                _cosine(plain[n], vectors[other]),
            )
            if root(n) != root(other) and similar >= LINK:
                parent[root(other)] = root(n)
    groups: dict[int, list[int]] = defaultdict(list)
    for n in range(len(rows)):
        groups[root(n)].append(n)
    documents = [
        {stem: weight.get(stem, 1.0) for stem in terms(f"{a.title}\n{a.body}")[:500]}
        for a in session.scalars(select(Article).where(Article.mailbox_id == mailbox.id))
    ]
    found: list[Candidate] = []
    for members in groups.values():
        if len(members) < min_tickets:
            continue
        middle: dict[str, float] = defaultdict(float)  # the group's words with their related terms
        for n in members:
            for stem, w in vectors[n].items():
                middle[stem] += w
        if any(_cosine(middle, document) >= COVERED for document in documents):
            continue  # an article answers these already
        typical = max(members, key=lambda n: _cosine(vectors[n], middle))
        answers = Counter(" ".join(rows[n].answer.lower().split())[:2_000] for n in members)
        best_key, _times = answers.most_common(1)[0]
        best = next(n for n in members if " ".join(rows[n].answer.lower().split())[:2_000] == best_key)
        found.append(Candidate(tickets=[rows[n].ticket_id for n in members], wording=rows[typical].subject,
                               question=rows[typical].question, answer=rows[best].answer,
                               answer_ticket=rows[best].ticket_id, numbers=sorted(rows[n].number for n in members)))  # fmt: skip
    return sorted(found, key=lambda c: (-len(c.tickets), c.wording))
