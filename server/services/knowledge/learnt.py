"""Associations learnt from the team's own history: questions that received the same answer (or
linked the same help-centre article) vouch for each other's words.

Customers who got "Open Billing → Plan and pick the new plan" asked "how do I change my plan", "I want
a bigger package", "upgrade to pro?" — so *package* and *upgrade* stand for *plan* in this mailbox, in
its customers' words, which no shipped list knows. From the mailbox's newest :data:`MOST_ENTRIES`
knowledge entries:

1. entries are grouped by their answer (the same text, or a link to the same article);
2. in each group, every two questions give pairs of *telling* stems (in at most :data:`COMMON` of the
   mailbox's questions) that one has and the other lacks;
3. a pair seen in at least :data:`MIN_SUPPORT` such comparisons is an association.

The associations join the related terms (server.services.knowledge.related): a question containing one
stem of a pair also looks for the other, for :data:`~server.services.knowledge.related.RELATED_WEIGHT`.
Each process learns a mailbox's associations at most once every :data:`LEARN_SECONDS` (one query over
the entries' stems and the start of their answers: about 0.1 s for 5,000 entries here), on the first
suggestion that needs them.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from itertools import combinations

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from server.base.models import KnowledgeEntry, Mailbox
from server.services.knowledge.related import Lexicon, expand, mailbox_lexicon

#: The newest entries of a mailbox learnt from, and the most questions of one group compared.
MOST_ENTRIES, MOST_IN_GROUP = 5_000, 30
#: A stem in more than this share of the mailbox's questions tells nothing (greetings, "please").
COMMON = 0.05
#: How many comparisons must show a pair, and the most pairs a mailbox keeps (the best supported).
MIN_SUPPORT, MOST_PAIRS = 2, 5_000
#: How long a process keeps what it learnt of a mailbox.
LEARN_SECONDS = 3_600
#: The start of an answer that identifies it; a help-centre article link identifies it better.
ANSWER_KEY_CHARS = 300
_ARTICLE = re.compile(r"/help/[^/\s]+/articles/(\d+)")

_learnt: weakref.WeakKeyDictionary[Engine, dict[int, tuple[float, Lexicon]]] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def answer_key(answer: str) -> str:
    """What makes two answers the same one: the article they link, else their words."""
    linked = _ARTICLE.search(answer)
    if linked:
        return f"article:{linked[1]}"
    return " ".join(re.findall(r"\w+", answer.lower()))[:ANSWER_KEY_CHARS]


def pairs(questions_by_answer: list[list[list[str]]], total: int) -> Counter[tuple[str, str]]:
    """The supported pairs of stems, from the questions' stems grouped by answer."""
    seen_in: Counter[str] = Counter()
    for group in questions_by_answer:
        for stems in group:
            seen_in.update(set(stems))
    most = max(3, int(COMMON * total))
    support: Counter[tuple[str, str]] = Counter()
    for group in questions_by_answer:
        telling = [{s for s in stems if seen_in[s] <= most} for stems in group[:MOST_IN_GROUP]]
        for first, second in combinations(telling, 2):
            only_first, only_second = first - second, second - first
            if not only_first or not only_second or len(only_first) * len(only_second) > 150:
                continue
            support.update((a, b) if a < b else (b, a) for a in only_first for b in only_second)
    return Counter({pair: n for pair, n in support.most_common(MOST_PAIRS) if n >= MIN_SUPPORT})


def learn(session: Session, mailbox_id: int) -> Lexicon:
    """The mailbox's learnt associations as a lexicon of two-stem groups (read now, not cached)."""
    rows = session.execute(
        select(KnowledgeEntry.question_terms, func.substr(KnowledgeEntry.answer, 1, 2_000))
        .where(KnowledgeEntry.mailbox_id == mailbox_id)
        .order_by(KnowledgeEntry.id.desc())
        .limit(MOST_ENTRIES)
    ).all()
    groups: dict[str, list[list[str]]] = {}
    for question_terms, answer in rows:
        key = answer_key(answer or "")
        if key and question_terms:
            groups.setdefault(key, []).append(question_terms.split())
    found = pairs([group for group in groups.values() if len(group) > 1], len(rows))
    kept = tuple((((a,), a), ((b,), b)) for a, b in found)
    starts: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
    for index, group in enumerate(kept):
        for stems, _word in group:
            starts.setdefault(stems[0], []).append((index, stems))
    return Lexicon(kept, starts)


def learnt(session: Session, mailbox_id: int) -> Lexicon:
    """The mailbox's learnt associations as this process last learnt them (again after LEARN_SECONDS)."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    now = time.monotonic()
    with _lock:
        known = _learnt.setdefault(engine, {}).get(mailbox_id)
    if known is not None and now - known[0] < LEARN_SECONDS:
        return known[1]
    lexicon = learn(session, mailbox_id)
    with _lock:
        _learnt.setdefault(engine, {})[mailbox_id] = (now, lexicon)
    return lexicon


def forget() -> None:
    """Learn anew on the next suggestion (tests, and after ``postdesk knowledge reindex``)."""
    with _lock:
        _learnt.clear()


def related_terms(
    session: Session, mailbox: Mailbox, stems: Sequence[str], lexicon: Lexicon | None = None
) -> dict[str, str]:
    """The stems related to ``stems`` (with a word each): by ``lexicon`` when given; by default by the
    shipped lists, the mailbox's own groups and what it learnt."""
    if lexicon is not None:
        return expand(lexicon, stems)
    found = expand(mailbox_lexicon(mailbox), stems)
    for stem, word in expand(learnt(session, mailbox.id), stems).items():
        found.setdefault(stem, word)
    return found
