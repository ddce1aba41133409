"""Words to Snowball stems, the one way Postdesk's knowledge reads text (signals, the index, FAQ).

Russian stems for Cyrillic words, English ones for Latin words, so mixed mail works; ``ё`` is
read as ``е``. PostgreSQL's ``russian`` text search configuration does the same (its Snowball
Russian stemmer for Cyrillic words, the English one for ASCII words), so both databases agree.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import snowballstemmer
import yaml

TOKEN = re.compile(r"[0-9A-Za-zÀ-ÿЀ-ӿ]+(?:['’][A-Za-z]+)?")
CYRILLIC = re.compile(r"[Ѐ-ӿ]")
#: A stem longer than this is not a word (a token, a hash, a pasted blob) and is not indexed.
LONGEST = 40


@cache
def _stemmer(language: str) -> Any:
    return snowballstemmer.stemmer("russian" if language == "ru" else "english")


@lru_cache(maxsize=100_000)
def stem(word: str) -> str:
    word = word.lower().replace("ё", "е").replace("’", "'")
    language = "ru" if CYRILLIC.search(word) else "en"
    found: str = _stemmer(language).stemWord(word)
    return found


def tokens(text: str) -> list[str]:
    return list(TOKEN.findall(text))


@cache
def stop_stems() -> frozenset[str]:
    """Stems of the words that say nothing about a question (``words/stop.yaml``, both languages)."""
    path = Path(__file__).resolve().parent / "words" / "stop.yaml"
    with path.open(encoding="utf-8") as source:
        lists: dict[str, list[str]] = yaml.safe_load(source)
    return frozenset(stem(word) for words in lists.values() for word in words)


def worded_terms(text: str) -> list[tuple[str, str]]:
    """The stems of ``text`` that can tell one question from another, each with the word it came
    from, in order, repeats kept: no stop words, no bare numbers, nothing longer than a word."""
    stop = stop_stems()
    found = []
    for token in TOKEN.findall(text):
        if token.isdecimal():
            continue
        stemmed = stem(token).replace("'", "")
        if stemmed and stemmed not in stop and len(stemmed) <= LONGEST:
            found.append((stemmed, token))
    return found


def terms(text: str) -> list[str]:
    """The stems of :func:`worded_terms` alone."""
    return [stemmed for stemmed, _word in worded_terms(text)]
