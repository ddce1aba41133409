"""Urgency and tone, read on this server: the labelled messages, negation, clauses, both languages."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.services.knowledge import signals
from server.services.knowledge.signals import SignalWordsError, lexicon, read

sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))
from bench_signals import TARGET, evaluate


@pytest.mark.parametrize("language", ["en", "ru"])
def test_the_labelled_messages_are_read_as_people_read_them(language: str) -> None:
    figures, _misses = evaluate(language)
    assert figures["messages"] >= 150
    for signal in ("high_urgency", "negative_tone"):
        for measure in ("precision", "recall"):
            assert figures[signal][measure] >= TARGET, (language, signal, measure, figures)
    old = figures["old_keyword_rule_urgency"]
    assert (
        figures["high_urgency"]["recall"] > old["recall"]
        and figures["high_urgency"]["precision"] > old["precision"]
    )


def reasons(text: str, **options: int) -> list[tuple[str, str]]:
    return [(r.kind, r.words) for r in read(text, **options).reasons]


def test_an_urgent_word_with_a_deadline_is_high_and_says_why() -> None:
    found = read("Our checkout is down, please fix it by 5pm!!")
    assert (found.urgency, found.language) == ("high", "en")
    assert ("urgent", "is down") in reasons("Our checkout is down, please fix it by 5pm!!")
    assert any(kind == "deadline" for kind, _ in reasons("Please fix it by 5pm"))


def test_negation_cancels_a_cue_in_its_own_clause_only() -> None:
    assert read("This is not urgent, just a question.").urgency == "low"
    assert read("Вопрос не срочный, когда будет время.").urgency == "low"
    assert ("negated", "not broken") in reasons("The export is not broken after all.")
    # «не включаются. Кошмар»: the negation ends with its sentence.
    assert read("Планшеты не включаются. Кошмар.").tone == "negative"
    # A phrase that carries its own negation is a cue as a whole.
    assert read("The login page is not working for anyone, urgent").urgency == "high"


def test_calm_words_make_it_low_and_shouting_alone_is_not_urgent() -> None:
    assert read("No rush, but could you resend the invoice?").urgency == "low"
    assert read("HELLO THERE, a quick question about plans").urgency == "normal"
    assert read("We use the API and the CRM, how do we connect them?").urgency == "normal"  # acronyms


def test_a_customer_writing_again_without_an_answer_raises_urgency() -> None:
    assert read("Any news on my question?").urgency == "normal"
    found = read("Any news on my question?", follow_ups=1)
    assert found.urgency == "high" and found.reasons[-1].kind == "follow_up"


def test_mixed_russian_and_english_mail_is_read_in_both() -> None:
    found = read("ASAP please: сайт упал, клиенты не могут оплатить")
    assert found.urgency == "high" and found.language == "ru"
    assert {"ASAP", "упал"} <= {r.words for r in found.reasons}


def test_tone_positive_neutral_negative() -> None:
    assert read("Thank you so much, it works now!").tone == "positive"
    assert read("Спасибо, всё заработало").tone == "positive"
    assert read("Where do I find the invoice?").tone == "neutral"
    assert read("This is unacceptable, I want my money back.").tone == "negative"
    assert read("Thanks, but the app is still broken and I am really disappointed.").tone == "negative"


def test_admins_words_join_the_shipped_ones_and_bad_entries_are_refused() -> None:
    words = lexicon({"en": {"urgent": ["pager alarm"], "negative": ["meh"]}})
    assert read("The pager alarm went off twice", words=words).urgency == "high"
    assert read("Meh, meh and meh.", words=words).tone == "negative"
    with pytest.raises(SignalWordsError, match="not text"):
        lexicon({"en": {"negators": [False]}})  # what a bare `no` in YAML becomes
    with pytest.raises(SignalWordsError, match="no words"):
        lexicon({"ru": {"urgent": ["!!!"]}})
    with pytest.raises(SignalWordsError, match="not a pattern"):
        lexicon({"en": {"deadlines": ["(by"]}})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_gets_a_reading(text: str) -> None:
    found = read(text)
    assert found.urgency in ("low", "normal", "high") and found.tone in ("negative", "neutral", "positive")
    assert found.as_json()["urgency"] == found.urgency


def test_a_huge_message_is_read_from_its_start_only() -> None:
    text = "Please help, it is urgent. " + "filler words " * 200_000
    assert read(text).urgency == "high"
    assert len(text) > signals.MAX_TEXT


def test_a_deadline_said_relative_to_now_or_as_not_needed_and_the_customer_s_own_count():
    from server.services.knowledge.signals import read

    cases = {
        "We go live first thing tomorrow morning and the payment page is blank.": ("high", "deadline"),
        "Завтра в девять у нас презентация, а графики не строятся.": ("high", "deadline"),
        "This is my fourth email about the same broken export.": ("high", "own_count"),
        "Пишу вам уже в четвёртый раз, а деньги так и не вернули.": ("high", "own_count"),
        "No need to answer by the end of the day, next week is fine.": ("low", "negated"),
        "Отвечать до конца дня не нужно, можно на следующей неделе.": ("low", "negated"),
    }
    for text, (urgency, kind) in cases.items():
        reading = read(text)
        assert reading.urgency == urgency and kind in {r.kind for r in reading.reasons}, (text, reading)
    assert read("I wrote to you twice last year and you were very helpful.").urgency == "normal"
    assert read("Я уже второй год с вами и очень доволен!").urgency == "normal"
