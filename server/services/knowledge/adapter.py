"""The meaning adapter: moves a customer's wording toward how the team writes the same question, from
support paraphrases learnt once and shipped with Postdesk.

The sentence encoder (:mod:`server.services.knowledge.meaning`) was trained on general text; in support,
a customer says "our office moved, the invoices still show the old street" where the team's solved
ticket says "How do I update my billing address?". The encoder places them near each other less often
than it places two texts on one topic. Two parts, both learnt from pairs of (customer's paraphrase,
team's question and answer):

- **a map**: a bilinear score ``question · W · entry`` with ``W = I + D``. ``D`` starts at zero (the
  encoder as it is) and follows the gradient of a contrastive loss (each paraphrase should score its
  own pair above every other pair of the batch, a softmax at :data:`TEMPERATURE`), with an L2 pull of
  :data:`SHRINK` back toward the encoder — a convex problem: the same pairs give the same map, to
  rounding. It moves every question the same way (what support wording as a whole does);
- **a memory** of the pairs themselves: each paraphrase's vector, and how far the map left it from its
  own entry (the *shift*). A question near remembered paraphrases (cosine above :data:`MEMORY_FLOOR`)
  moves by their shifts, weighted by a softmax of its nearness at :data:`MEMORY_TEMPERATURE`, for
  :data:`MEMORY_WEIGHT` — so "we moved offices" learns the way to "change the address" that one linear
  map cannot hold for every topic at once. A question near none of them keeps the map's vector.

Both apply to the question only (:func:`meaning.ask`): stored vectors stay the encoder's, and the cost
is a 512 × 512 product and one over the memory's rows per question (about 0.05 ms).

The shipped adapter (``data/meaning_adapter.npz``, float16, about 1.4 MB) was learnt from the tuning
paraphrase sets only (tests/fixtures/paraphrases/tuning_*.yaml; ``make adapter`` learns it again, and a
test checks that the shipped file is what they give). The held-out sets never reach it. The constants
were chosen by cross-validation on the tuning sets (docs/help-centre.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Where the shipped adapter lives (in the package: ``server.services.knowledge`` package data).
FILE = Path(__file__).resolve().parent / "data" / "meaning_adapter.npz"
#: The map's softmax temperature, the pull back toward the encoder, the step and the number of steps.
TEMPERATURE, SHRINK, STEP, STEPS = 0.1, 0.1, 0.5, 100
#: How far the memory moves a question, how sharply it prefers the nearest paraphrases, and the cosine
#: a remembered paraphrase must pass to count (below it, the question is left to the map).
MEMORY_WEIGHT, MEMORY_TEMPERATURE, MEMORY_FLOOR = 0.3, 0.03, 0.5

log = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded: Adapter | None = None
_unusable = False
_left_out: ContextVar[bool] = ContextVar("meaning_adapter_left_out", default=False)


def _unit(rows: np.ndarray) -> np.ndarray:
    scaled: np.ndarray = rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-9)
    return scaled


@dataclass(frozen=True)
class Adapter:
    map: np.ndarray  # (d, d)
    asked: np.ndarray  # (n, d): the remembered paraphrases, unit rows
    shift: np.ndarray  # (n, d): each one's entry minus where the map puts it

    def __post_init__(self) -> None:
        size = self.map.shape[0] if self.map.ndim == 2 else -1
        if self.map.shape != (size, size) or self.asked.ndim != 2 or self.asked.shape != self.shift.shape:
            raise ValueError(f"a map {self.map.shape} and a memory {self.asked.shape}/{self.shift.shape}")
        if self.asked.shape[1] != size or not np.isfinite(self.map).all():
            raise ValueError("the memory's vectors are not the map's size, or the map is not finite")

    @property
    def dimensions(self) -> int:
        return int(self.map.shape[0])

    def move(self, vector: np.ndarray) -> np.ndarray:
        """The unit vector of a question (a unit vector of the encoder's), moved toward the team's
        wording; zeros stay zeros."""
        if not vector.any():
            return vector
        moved = _unit(vector @ self.map)
        if len(self.asked):
            near = self.asked @ vector
            top = max(float(near.max()), MEMORY_FLOOR)
            weights = np.exp((near - top) / MEMORY_TEMPERATURE)
            # The floor competes as one more "paraphrase" that shifts nothing: far from every
            # remembered one, the weights vanish.
            weights /= weights.sum() + np.exp((MEMORY_FLOOR - top) / MEMORY_TEMPERATURE)
            moved = _unit(moved + MEMORY_WEIGHT * (weights @ self.shift))
        return moved.astype(np.float32)


def learn(questions: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """The map ``W`` (float32) for rows of unit ``questions`` (customers' wording), each paired with the
    same row of unit ``entries`` (the team's question with its answer, as the knowledge index encodes)."""
    if questions.shape != entries.shape or questions.ndim != 2 or not len(questions):
        raise ValueError("questions and entries must be two matrices of the same shape, not empty")
    asked, answered = questions.astype(np.float64), entries.astype(np.float64)
    size, dimensions = asked.shape
    change = np.zeros((dimensions, dimensions))
    for _step in range(STEPS):
        scores = asked @ (change + np.eye(dimensions)) @ answered.T / TEMPERATURE
        scores -= scores.max(axis=1, keepdims=True)
        chances = np.exp(scores)
        chances /= chances.sum(axis=1, keepdims=True)
        chances[np.arange(size), np.arange(size)] -= 1.0  # the loss's gradient by the scores
        change -= STEP * (asked.T @ chances @ answered / (TEMPERATURE * size) + SHRINK * change)
    return (change + np.eye(dimensions)).astype(np.float32)


def build(questions: np.ndarray, entries: np.ndarray) -> Adapter:
    """The map learnt from the pairs, and the pairs remembered with what the map left to do."""
    matrix = learn(questions, entries)
    shift = entries.astype(np.float32) - _unit(questions.astype(np.float32) @ matrix)
    return Adapter(matrix, questions.astype(np.float32), shift.astype(np.float32))


def shipped() -> Adapter | None:
    """The shipped adapter (float32), read once per process; None when the file is absent or unreadable
    (search by meaning then works as the encoder alone, and the log says why once)."""
    global _loaded, _unusable
    if _loaded is None and not _unusable:
        with _lock:
            if _loaded is None and not _unusable:
                try:
                    with np.load(FILE, allow_pickle=False) as found:
                        _loaded = Adapter(
                            *(np.asarray(found[name], dtype=np.float32) for name in ("map", "asked", "shift"))
                        )
                except (OSError, ValueError, KeyError) as error:
                    _unusable = True
                    log.error(
                        "the meaning adapter at %s cannot be used (%s): questions go unmoved", FILE, error
                    )
    return _loaded


def in_use() -> Adapter | None:
    """The adapter questions go through here: the shipped one, unless :func:`left_out` says otherwise."""
    return None if _left_out.get() else shipped()


@contextmanager
def left_out() -> Iterator[None]:
    """Within, questions are not moved (``make bench`` measures the engine with and without it)."""
    token = _left_out.set(True)
    try:
        yield
    finally:
        _left_out.reset(token)


def save(adapter: Adapter, path: Path = FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        np.savez_compressed(
            out,
            map=adapter.map.astype(np.float16),
            asked=adapter.asked.astype(np.float16),
            shift=adapter.shift.astype(np.float16),
        )
