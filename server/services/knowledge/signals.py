"""Urgency and tone of a customer's message, decided on this server, with the reasons that decided it.

Pure: text in, a :class:`Reading` out. Each word is reduced to its Snowball stem (Russian for
Cyrillic words, English for Latin ones, so mixed mail works), and the stems are matched against the
word lists (``words/en.yaml``, ``words/ru.yaml``, plus what admins add). Points, each a reason:

* **urgency** — an urgent word or phrase +2 (at most two count), a deadline in the text +2 (said as
  not needed, none), the customer's own count of their unanswered mail +2 ("my third email"),
  shouting (``!!``, or a word in capitals that is not an acronym) +1, an intensifier right before a
  cue +1, the customer writing again without an answer +2 (each time, at most twice). 2 points or
  more is ``high``; a calm phrase ("no rush", «не срочно») without an urgent one is ``low``.
* **tone** — a negative word or phrase +2 each, shouting +1 and an intensifier +1 once there is one;
  2 or more is ``negative``; shouting about an urgent problem counts as a complaint (+2). Positive
  words without any negative one are ``positive``.

A negator up to two words before a single-word cue, in the same clause, cancels it ("not broken",
«не ужасно»; but not «не включаются. Кошмар»); a phrase
that contains its own negation ("not working", «не работает») is a cue as a whole. Quoted history
and signatures are left out by the caller (``server.gmail.mime.split_reply``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml

from server.services.knowledge.stemming import CYRILLIC, TOKEN, stem, tokens

WORDS = Path(__file__).resolve().parent / "words"
LANGUAGES = ("en", "ru")
CATEGORIES = ("urgent", "calm", "negative", "positive", "intensifiers", "negators")
#: What admins may add to, per language (``deadlines`` are regular expressions).
EXTENSIBLE = (*CATEGORIES, "deadlines")
#: The most text read from one message (the start says what matters).
MAX_TEXT = 5_000
_SHOUT = re.compile(r"!{2,}|\?!|!\?")
#: Punctuation that ends a clause: a negation does not reach past it.
_CLAUSE_END = re.compile(r"[.!?;:…—–]")


class SignalWordsError(ValueError):
    """A word list cannot be used; ``str(exc)`` says which entry and why."""


@dataclass(frozen=True)
class Reason:
    """One thing that counted: what kind of signal, the words that showed it, and its points."""

    kind: (
        str  # urgent, calm, negated, deadline, shouting, capitals, intensifier, follow_up, negative, positive
    )
    words: str
    points: int = 0


@dataclass(frozen=True)
class Reading:
    urgency: str  # low, normal, high
    tone: str  # negative, neutral, positive
    language: str  # en or ru: the script most of the words are written in
    reasons: tuple[Reason, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "urgency": self.urgency,
            "tone": self.tone,
            "language": self.language,
            "reasons": [{"kind": r.kind, "words": r.words, "points": r.points} for r in self.reasons],
        }


@dataclass(frozen=True)
class Lexicon:
    """The word lists as stem sequences, ready to match (build with :func:`lexicon`)."""

    phrases: Mapping[str, tuple[tuple[str, ...], ...]]
    deadlines: tuple[re.Pattern[str], ...]
    acronyms: frozenset[str]
    originals: Mapping[tuple[str, ...], str] = field(default_factory=dict)
    #: Said around a deadline, these make it none (before it: ending at it; after it: from its end).
    deadline_negations: tuple[re.Pattern[str], ...] = ()
    #: The customer's own count of their unanswered mail ("my third email", «пишу уже в третий раз»).
    follow_ups: tuple[re.Pattern[str], ...] = ()


def shipped_words(language: str) -> dict[str, Any]:
    with (WORDS / f"{language}.yaml").open(encoding="utf-8") as source:
        loaded: dict[str, Any] = yaml.safe_load(source)
    return loaded


def lexicon(extra: Mapping[str, Mapping[str, Iterable[str]]] | None = None) -> Lexicon:
    """The shipped lists of both languages, plus ``extra`` (language → category → words) from admins."""
    phrases: dict[str, set[tuple[str, ...]]] = {category: set() for category in CATEGORIES}
    originals: dict[tuple[str, ...], str] = {}
    deadlines: list[re.Pattern[str]] = []
    acronyms: set[str] = set()
    negations: list[re.Pattern[str]] = []
    counts: list[re.Pattern[str]] = []
    for language in LANGUAGES:
        lists = shipped_words(language)
        added = (extra or {}).get(language) or {}
        for category in CATEGORIES:
            for entry in [*lists.get(category, []), *added.get(category, [])]:
                if not isinstance(entry, str):  # YAML reads a bare no, yes, on, off as true/false
                    raise SignalWordsError(f"{language}.{category}: {entry!r} is not text (quote it)")
                stems = tuple(stem(token) for token in tokens(str(entry)))
                if not stems:
                    raise SignalWordsError(f"{language}.{category}: {entry!r} has no words")
                phrases[category].add(stems)
                originals.setdefault(stems, str(entry))
        for pattern in [*lists.get("deadlines", []), *added.get("deadlines", [])]:
            try:
                deadlines.append(re.compile(str(pattern)))
            except re.error as exc:
                raise SignalWordsError(f"{language}.deadlines: {pattern!r} is not a pattern ({exc})") from exc
        acronyms.update(str(word) for word in lists.get("acronyms", []))
        negations += [re.compile(str(p)) for p in lists.get("deadline_negations", [])]
        counts += [re.compile(str(p)) for p in lists.get("follow_ups", [])]
    ordered = {c: tuple(sorted(p, key=lambda stems: (-len(stems), stems))) for c, p in phrases.items()}
    return Lexicon(ordered, tuple(deadlines), frozenset(acronyms), originals, tuple(negations), tuple(counts))


@cache
def default_lexicon() -> Lexicon:
    return lexicon()


@lru_cache(maxsize=64)
def _lexicon_of(extra_json: str) -> Lexicon:
    return lexicon(json.loads(extra_json))


def lexicon_with(extra: Mapping[str, Any]) -> Lexicon:
    """The shipped lists with a mailbox's own words (built once per distinct set of words)."""
    if not extra:
        return default_lexicon()
    return _lexicon_of(json.dumps(extra, sort_keys=True, ensure_ascii=False))


@lru_cache(maxsize=256)
def _by_first_stem(candidates: tuple[tuple[str, ...], ...]) -> dict[str, list[tuple[int, tuple[str, ...]]]]:
    """The phrases of a category by their first stem, each with its rank in the category's order."""
    index: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
    for rank, phrase in enumerate(candidates):
        index.setdefault(phrase[0], []).append((rank, phrase))
    return index


def _find(stems: Sequence[str], candidates: tuple[tuple[str, ...], ...]) -> list[tuple[int, tuple[str, ...]]]:
    """Where each phrase occurs (longest first; a word belongs to one phrase of a category).

    The phrases that occur are found through their first stem (one pass over the text, not one per
    phrase), then taken in the category's order, each where it does not overlap one taken before."""
    index = _by_first_stem(candidates)
    matches = [
        (rank, start, phrase)
        for start, first in enumerate(stems)
        for rank, phrase in index.get(first, ())
        if tuple(stems[start : start + len(phrase)]) == phrase
    ]
    taken: set[int] = set()
    found = []
    for _rank, start, phrase in sorted(matches):
        span = range(start, start + len(phrase))
        if not taken.intersection(span):
            taken.update(span)
            found.append((start, phrase))
    return sorted(found)


def read(text: str, *, follow_ups: int = 0, words: Lexicon | None = None) -> Reading:
    """Urgency and tone of ``text`` (subject and new text of one message); ``follow_ups``: how many
    earlier messages of this customer since the team last answered."""
    words = words or default_lexicon()
    text = text[:MAX_TEXT]
    spans = [(m.start(), m.end()) for m in TOKEN.finditer(text)]
    tokens = [text[start:end] for start, end in spans]
    stems = [stem(token) for token in tokens]
    cyrillic = sum(1 for token in tokens if CYRILLIC.search(token))
    language = "ru" if cyrillic * 2 > len(tokens) else "en"
    negators = {phrase[0] for phrase in words.phrases["negators"] if len(phrase) == 1}
    intensifiers = {phrase[0] for phrase in words.phrases["intensifiers"] if len(phrase) == 1}
    reasons: list[Reason] = []

    def shown(start: int, phrase: tuple[str, ...]) -> str:
        return " ".join(tokens[start : start + len(phrase)])

    def cues(category: str) -> list[tuple[int, tuple[str, ...]]]:
        """The category's phrases found, less single words a negator cancels (each cancel a reason)."""
        kept = []
        for start, phrase in _find(stems, words.phrases[category]):
            if len(phrase) == 1 and phrase[0] not in negators:
                negation = next(
                    (
                        i
                        for i in range(start - 1, max(-1, start - 3), -1)
                        if stems[i] in negators
                        and not _CLAUSE_END.search(text[spans[i][1] : spans[start][0]])
                    ),
                    None,
                )
                if negation is not None:
                    reasons.append(Reason("negated", " ".join(tokens[negation : start + 1])))
                    continue
            kept.append((start, phrase))
        return kept

    def intensified(found: list[tuple[int, tuple[str, ...]]]) -> str | None:
        for start, _phrase in found:
            if start > 0 and stems[start - 1] in intensifiers:
                return tokens[start - 1]
        return None

    urgent, calm = cues("urgent"), cues("calm")
    negative, positive = cues("negative"), cues("positive")
    # A calm phrase that contains an urgent word ("not urgent") is calm, not urgent.
    calm_spans = {i for start, phrase in calm for i in range(start, start + len(phrase))}
    urgent = [(s, p) for s, p in urgent if not calm_spans.intersection(range(s, s + len(p)))]

    shouting = _SHOUT.search(text)
    # Capitals shout, unless the word is a cue itself ("ASAP", «СРОЧНО» count once, as cues) or an acronym.
    cue_words = {
        i for found in (urgent, negative, calm, positive) for s, p in found for i in range(s, s + len(p))
    }
    capitals = next(
        (
            t
            for i, t in enumerate(tokens)
            if len(t) >= 3
            and t.isupper()
            and not t.isdigit()
            and t not in words.acronyms
            and i not in cue_words
        ),
        None,
    )
    loud = f"{shouting[0]}" if shouting else capitals

    points = 0
    for start, phrase in urgent[:2]:
        reasons.append(Reason("urgent", shown(start, phrase), 2))
        points += 2
    lowered = text.lower()
    deadline = next((found for pattern in words.deadlines if (found := pattern.search(lowered))), None)
    if deadline and any(
        n.search(lowered[max(0, deadline.start() - 40) : deadline.start()])
        or n.search(lowered[deadline.end() :])
        for n in words.deadline_negations
    ):
        reasons.append(Reason("negated", deadline[0]))  # "no need to answer by the end of the day"
        deadline = None
    if deadline:
        reasons.append(Reason("deadline", deadline[0], 2))
        points += 2
    counted = next((found for pattern in words.follow_ups if (found := pattern.search(lowered))), None)
    if counted and follow_ups < 2:  # the customer says they wrote before: as one follow-up more
        reasons.append(Reason("own_count", counted[0], 2))
        points += 2
    if loud and (urgent or negative or deadline):
        reasons.append(Reason("shouting" if shouting else "capitals", loud, 1))
        points += 1
    strong = intensified(urgent)
    if strong:
        reasons.append(Reason("intensifier", strong, 1))
        points += 1
    for n in range(min(follow_ups, 2)):
        reasons.append(Reason("follow_up", f"message {n + 2} without an answer", 2))
        points += 2
    if points >= 2:
        urgency = "high"
    elif calm and not urgent:
        urgency = "low"
        reasons += [Reason("calm", shown(start, phrase)) for start, phrase in calm]
    else:
        urgency = "normal"

    mood = 0
    for start, phrase in negative:
        reasons.append(Reason("negative", shown(start, phrase), 2))
        mood += 2
    if (negative or urgent) and loud:
        # Shouting about an outage is a complaint too ("DOWN AGAIN?!", «Это авария!!!»).
        mood += 1 if negative else 2
        if not any(r.kind in ("shouting", "capitals") for r in reasons):
            reasons.append(Reason("shouting" if shouting else "capitals", loud, 1))
    if negative and intensified(negative):
        mood += 1
    if mood >= 2:
        tone = "negative"
    elif positive and not negative:
        tone = "positive"
        reasons += [Reason("positive", shown(start, phrase)) for start, phrase in positive]
    else:
        tone = "neutral"
    return Reading(urgency, tone, language, tuple(reasons))
