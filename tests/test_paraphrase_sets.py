"""The paraphrase sets and the related-term lists keep their promises: the held-out set is big enough
and never tuned on — no word of a shipped list (by its stem) appears in a held-out paraphrase unless
the tuning set has it too, so a list can only help the held-out figure through what was learnt on the
tuning set."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from server.services.knowledge import related
from server.services.knowledge.stemming import terms

SETS = Path(__file__).resolve().parent / "fixtures" / "paraphrases"


def _pairs(kind: str, language: str) -> list[dict[str, str]]:
    with (SETS / f"{kind}_{language}.yaml").open(encoding="utf-8") as source:
        found: list[dict[str, str]] = yaml.safe_load(source)["pairs"]
    return found


def test_the_held_out_set_has_at_least_150_pairs_in_two_languages():
    sizes = {language: len(_pairs("held_out", language)) for language in ("en", "ru")}
    assert sum(sizes.values()) >= 150 and min(sizes.values()) >= 70
    for language in ("en", "ru"):
        for pair in _pairs("held_out", language) + _pairs("tuning", language):
            assert set(pair) == {"asked", "answer", "paraphrase"} and all(pair.values())


@pytest.mark.parametrize("language", ["en", "ru"])
def test_no_list_word_comes_from_the_held_out_paraphrases(language):
    held = set().union(*(terms(p["paraphrase"]) for p in _pairs("held_out", language)))
    tuned = set().union(*(terms(" ".join(p.values())) for p in _pairs("tuning", language)))
    groups = related.load_groups(related.WORDS / f"related_{language}.yaml")
    leaked = {str(member) for group in groups for member in group if set(terms(str(member))) & held - tuned}
    assert leaked == set()


def test_a_phrase_is_found_by_its_stems_in_a_row_and_brings_its_group():
    lexicon = related.build([["slow", "takes ages", "sluggish"], ["тормозит", "долго грузится"]])
    assert set(related.expand(lexicon, terms("the page takes ages"))) == set(terms("slow sluggish"))
    assert related.expand(lexicon, terms("ages take the")) == {}  # not in a row
    assert set(related.expand(lexicon, terms("всё долго грузится"))) == set(terms("тормозит"))


def test_the_shipped_meaning_adapter_is_what_the_tuning_sets_give():
    """The adapter (server.services.knowledge.adapter) is learnt from the tuning sets alone: learning it
    again from them gives the shipped file, to float16's rounding — so the held-out sets never reached
    it (the learning reads nothing else)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))
    import train_adapter

    from server.services.knowledge import adapter

    shipped = adapter.shipped()
    assert shipped is not None and shipped.map.shape == (512, 512) and shipped.asked.shape[1] == 512
    assert train_adapter.gap(shipped, train_adapter.learnt()) < 0.01
