"""The meaning adapter: a linear map, learnt from support paraphrases, that moves a customer's wording
toward how the team writes the same question.

The sentence encoder (:mod:`server.services.knowledge.meaning`) was trained on general text; in support,
a customer says "our office moved, the invoices still show the old street" where the team's solved
ticket says "How do I update my billing address?". The encoder places them near each other less often
than it places two texts on one topic. A bilinear score ``question · W · entry`` with ``W = I + D``
learns the difference from pairs of (customer's paraphrase, team's question and answer):

- ``D`` starts at zero (the encoder as it is) and follows the gradient of a contrastive loss (each
  paraphrase should score its own pair above every other pair of the batch, a softmax at
  :data:`TEMPERATURE`), with an L2 pull of :data:`SHRINK` back toward the encoder — a convex problem:
  the same pairs give the same map, to rounding;
- the map is applied to the question only (:func:`meaning.ask`): stored vectors stay the encoder's, and
  the cost is one 512 × 512 product per question (about 0.02 ms).

The shipped map (``data/meaning_adapter.npy``, float16, 512 KB) was learnt from the tuning paraphrase
sets only (tests/fixtures/paraphrases/tuning_*.yaml; ``make adapter`` learns it again, and a test
checks that the shipped file is what they give). The held-out sets never reach it. The constants were
chosen by cross-validation on the tuning sets (docs/help-centre.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import numpy as np

#: Where the shipped map lives (in the package: ``server.services.knowledge`` package data).
FILE = Path(__file__).resolve().parent / "data" / "meaning_adapter.npy"
#: The softmax's temperature, the pull back toward the encoder, the step and the number of steps.
TEMPERATURE, SHRINK, STEP, STEPS = 0.1, 0.1, 0.5, 100

log = logging.getLogger(__name__)

_lock = threading.Lock()
_loaded: np.ndarray | None = None
_unusable = False
_left_out: ContextVar[bool] = ContextVar("meaning_adapter_left_out", default=False)


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


def shipped() -> np.ndarray | None:
    """The shipped map (float32), read once per process; None when the file is absent or unreadable
    (search by meaning then works as the encoder alone, and the log says why once)."""
    global _loaded, _unusable
    if _loaded is None and not _unusable:
        with _lock:
            if _loaded is None and not _unusable:
                try:
                    found = np.load(FILE, allow_pickle=False)
                    if found.ndim != 2 or found.shape[0] != found.shape[1]:
                        raise ValueError(f"a {found.shape} array, not a square map")
                    _loaded = found.astype(np.float32)
                except (OSError, ValueError) as error:
                    _unusable = True
                    log.error(
                        "the meaning adapter at %s cannot be used (%s): questions go unmoved", FILE, error
                    )
    return _loaded


def in_use() -> np.ndarray | None:
    """The map questions go through here: the shipped one, unless :func:`left_out` says otherwise."""
    return None if _left_out.get() else shipped()


@contextmanager
def left_out() -> Iterator[None]:
    """Within, questions are not moved (``make bench`` measures the engine with and without the map)."""
    token = _left_out.set(True)
    try:
        yield
    finally:
        _left_out.reset(token)


def save(matrix: np.ndarray, path: Path = FILE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, matrix.astype(np.float16), allow_pickle=False)
