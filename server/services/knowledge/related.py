"""Related terms: words customers and teams use for the same thing (``slow`` / ``lags`` / ``takes
forever``; «тормозит» / «долго грузится»), so a search finds an answer written in other words.

The lists ship as data (``words/related_en.yaml``, ``words/related_ru.yaml``: groups of words and short
phrases) and a mailbox adds its own groups in its settings (``related_words``). Each member is read as
the stems of its words: a one-word member is found by its stem, a phrase by its stems in a row. A
question that contains a member of a group also looks for every other member of that group, each of
their stems weighed :data:`RELATED_WEIGHT` of what it would weigh if the customer had written it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml

from server.services.knowledge.stemming import terms, worded_terms

#: How much a related stem weighs beside one the customer wrote (tuned on the tuning set).
RELATED_WEIGHT = 0.5
#: The most related stems one question looks for (the rarest are kept).
MAX_RELATED = 24
WORDS = Path(__file__).resolve().parent / "words"


@dataclass(frozen=True)
class Lexicon:
    """Groups of members, each member the stems of a word or phrase (with the words, for PostgreSQL's
    own stemming of a lookup)."""

    groups: tuple[tuple[tuple[tuple[str, ...], str], ...], ...] = ()
    #: First stem of a member → (group, member) pairs that may start there.
    starts: dict[str, list[tuple[int, tuple[str, ...]]]] = field(default_factory=dict)


def build(groups: Iterable[Sequence[Any]]) -> Lexicon:
    kept: list[tuple[tuple[tuple[str, ...], str], ...]] = []
    for group in groups:
        members = []
        for member in group:
            stems = tuple(terms(str(member)))
            if stems:
                members.append((stems, str(member)))
        if len(members) >= 2:
            kept.append(tuple(members))
    starts: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
    for index, group_members in enumerate(kept):
        for stems, _word in group_members:
            starts.setdefault(stems[0], []).append((index, stems))
    return Lexicon(tuple(kept), starts)


def load_groups(path: Path) -> list[list[Any]]:
    with path.open(encoding="utf-8") as source:
        data = yaml.safe_load(source) or {}
    groups = data.get("groups") if isinstance(data, dict) else None
    return [g for g in groups or [] if isinstance(g, list)]


@cache
def _shipped_groups() -> tuple[tuple[str, ...], ...]:
    found = [g for language in ("en", "ru") for g in load_groups(WORDS / f"related_{language}.yaml")]
    return tuple(tuple(str(member) for member in group) for group in found)


def shipped() -> Lexicon:
    """The lists Postdesk ships, both languages."""
    return _combined(())


@lru_cache(maxsize=64)
def _combined(extra: tuple[tuple[str, ...], ...]) -> Lexicon:
    return build([*_shipped_groups(), *extra])


def with_extra(extra: Iterable[Sequence[Any]] | None) -> Lexicon:
    """The shipped lists and a mailbox's own groups (built once per distinct set of groups)."""
    return _combined(tuple(tuple(str(member) for member in group) for group in extra or []))


#: A mailbox's own groups: at most this many, of at most this many members, each this long.
MAX_GROUPS, MAX_MEMBERS, LONGEST_MEMBER = 500, 30, 80


def problems(value: Any) -> list[str]:
    """What is wrong with a mailbox's ``related_words`` setting (a list of groups of words)."""
    if not isinstance(value, list) or len(value) > MAX_GROUPS:
        return [f"related_words: a list of at most {MAX_GROUPS} groups, each a list of words or phrases"]
    found = []
    for n, group in enumerate(value):
        if not isinstance(group, list) or not 2 <= len(group) <= MAX_MEMBERS:
            found.append(f"related_words[{n}]: a list of 2 to {MAX_MEMBERS} words or phrases")
        elif any(not isinstance(m, str) or not m.strip() or len(m) > LONGEST_MEMBER for m in group):
            found.append(f"related_words[{n}]: each word or phrase is 1 to {LONGEST_MEMBER} characters")
    return found


def expand(lexicon: Lexicon, stems: Sequence[str]) -> dict[str, str]:
    """The stems related to a question's ``stems`` (not among them), each with a word it came from:
    every other member of each group one of whose members the question contains."""
    own = set(stems)
    matched: set[int] = set()
    for position, stem in enumerate(stems):
        for index, member in lexicon.starts.get(stem, ()):
            if tuple(stems[position : position + len(member)]) == member:
                matched.add(index)
    related: dict[str, str] = {}
    for index in sorted(matched):
        for stem, word in _stem_words(lexicon.groups[index]):
            if stem not in own and stem not in related:
                related[stem] = word
    return related


@lru_cache(maxsize=4096)
def _stem_words(group: tuple[tuple[tuple[str, ...], str], ...]) -> tuple[tuple[str, str], ...]:
    """Each stem of a group's members with the word it came from (stemmed once, not per question)."""
    pairs: list[tuple[str, str]] = []
    for member, word in group:
        words = dict(worded_terms(word))
        pairs += [(stem, words.get(stem, word)) for stem in member]
    return tuple(pairs)


def mailbox_lexicon(mailbox: Any) -> Lexicon:
    """The shipped lists and the groups the mailbox added (its ``related_words`` setting)."""
    extra = (getattr(mailbox, "settings", None) or {}).get("related_words") if mailbox is not None else None
    return with_extra(extra if isinstance(extra, list) else None)
