"""Search by meaning (server.services.knowledge.meaning): a question asked in other words finds its
answer where no stem is shared, in Russian and English; the mailbox setting switches it; vectors are
written by the job, read by each process once and then only what is new; hostile text encodes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from addon_fixtures import solved_ticket
from helpers import MAILBOX
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event as sa_event
from sqlalchemy import select

from server.base.db import get_engine
from server.base.knowledge_tables import KnowledgeVector
from server.base.models import KnowledgeEntry, Ticket, TicketStatus
from server.services.knowledge import adapter, meaning, similar
from server.services.knowledge.stemming import terms
from server.services.tickets import set_status

# Written for this test (not from the paraphrase sets): the team's wording, the customer's, no stem shared.
PLAN = (
    "How do I change my subscription plan?",
    "Open Billing → Plan and pick the new plan; it applies today.",
)
PLAN_ASKED = "I'd like to upgrade to a bigger package"
SLOW = ("Медленно работает приложение", "Очистите кэш в настройках и перезапустите приложение.")
SLOW_ASKED = "Всё жутко тормозит уже второй день"
OTHERS = [
    ("Where is my parcel?", "Parcels arrive within five working days; the tracking link is in your email."),
    ("I forgot my password", "Use the Forgot password link on the sign-in page."),
    ("Can I get an invoice for my company?", "Invoices are under Billing → Documents."),
    ("Как удалить аккаунт?", "Напишите нам с адреса аккаунта, и мы удалим его за сутки."),
    ("Не приходит письмо с кодом", "Проверьте папку «Спам» и адрес в профиле."),
]


def _file(session: Any, box_id: int) -> dict[str, Ticket]:
    made = {}
    for question, answer in [PLAN, SLOW, *OTHERS]:
        made[question] = solved_ticket(session, box_id, question, question, answer)
    return made


def _probe(session: Any, box_id: int) -> Ticket:
    probe = Ticket(mailbox_id=box_id, number=999, subject="", status="open")
    session.add(probe)
    session.flush()
    return probe


def test_a_question_in_other_words_finds_its_answer_by_meaning_in_both_languages(helpdesk, session):
    box = helpdesk.connect(MAILBOX, ["anna@example.com"])
    made = _file(session, box.id)
    assert not set(terms(PLAN_ASKED)) & set(terms(PLAN[0] + " " + PLAN[1]))  # truly other words
    assert not set(terms(SLOW_ASKED)) & set(terms(SLOW[0] + " " + SLOW[1]))
    probe = _probe(session, box.id)

    # Before the job has written vectors, words alone: nothing shares a stem.
    assert [s.ticket_id for s in similar.suggest(session, probe, question=PLAN_ASKED)] == []
    assert meaning.fill_all(session) == len(made)
    assert meaning.fill_all(session) == 0  # nothing twice

    for asked, (question, _answer) in ((PLAN_ASKED, PLAN), (SLOW_ASKED, SLOW)):
        found = similar.suggest(session, probe, question=asked)
        assert found and found[0].ticket_id == made[question].id, (asked, found)
        assert 0 < found[0].match <= 1
        assert similar.suggest(session, probe, question=asked, by_meaning=False) == []

    # The mailbox's setting switches it off (and the job then writes no vectors for it).
    box.settings = {**box.settings, "semantic_search": False}
    session.commit()
    assert similar.suggest(session, probe, question=PLAN_ASKED) == []
    solved_ticket(session, box.id, "Another", "Another question about plans", PLAN[1])
    assert meaning.fill(session) == 0


def test_each_process_reads_only_new_vectors_and_a_reopened_ticket_is_never_suggested(
    helpdesk, session, app, monkeypatch
):
    box = helpdesk.connect(MAILBOX, ["anna@example.com"])
    made = _file(session, box.id)
    meaning.fill_all(session)
    probe = _probe(session, box.id)
    engine = get_engine(app)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    assert similar.suggest(session, probe, question=PLAN_ASKED)[0].ticket_id == made[PLAN[0]].id
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        similar.suggest(session, probe, question=PLAN_ASKED)
        warm = len(statements)
        monkeypatch.setattr(meaning, "FRESH_SECONDS", 0)  # the next look reads the table
        statements.clear()
        similar.suggest(session, probe, question=PLAN_ASKED)
        looked = [s for s in statements if "knowledge_vectors" in s]
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    # Meaning costs no statement of its own between looks (its candidates come with the words'), and a
    # look is one query for what is newer than the process knows.
    assert warm == 2, statements  # stem counts, candidates (no window below 20,000 entries)
    assert len(looked) == 1 and "knowledge_vectors.id >" in looked[0]

    # Reopened: its entry and vector go; the process's copy still has the vector, the answer is not shown.
    set_status(session, made[PLAN[0]], TicketStatus.OPEN, at=datetime.now(UTC))
    session.commit()
    assert session.scalar(select(KnowledgeVector).join(KnowledgeEntry).where(
        KnowledgeEntry.ticket_id == made[PLAN[0]].id)) is None  # fmt: skip
    assert made[PLAN[0]].id not in [s.ticket_id for s in similar.suggest(session, probe, question=PLAN_ASKED)]

    # Solved again: a new entry; after the job, this process finds it again.
    set_status(session, made[PLAN[0]], TicketStatus.SOLVED, at=datetime.now(UTC))
    session.commit()
    assert meaning.fill_all(session) == 1
    assert similar.suggest(session, probe, question=PLAN_ASKED)[0].ticket_id == made[PLAN[0]].id


def test_the_job_and_reindex_write_vectors(helpdesk, session, runner):
    box = helpdesk.connect(MAILBOX, ["anna@example.com"])
    _file(session, box.id)
    answer = runner.invoke(args=["knowledge", "reindex"])
    assert answer.exit_code == 0, answer.output
    assert f"placed {len([PLAN, SLOW, *OTHERS])} of them by meaning" in answer.output
    stored = session.scalars(select(KnowledgeVector)).all()
    assert len(stored) == 7 and all(len(row.vector) == 2 * meaning.DIMENSIONS for row in stored)
    vectors = np.stack([meaning.from_bytes(row.vector) for row in stored])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-2)


def test_a_stored_vector_of_the_wrong_size_is_left_out_not_a_crash(helpdesk, session):
    box = helpdesk.connect(MAILBOX, ["anna@example.com"])
    made = _file(session, box.id)
    meaning.fill_all(session)
    plan_entry = session.scalar(select(KnowledgeEntry.id).where(KnowledgeEntry.ticket_id == made[PLAN[0]].id))
    session.execute(
        KnowledgeVector.__table__.update()
        .where(KnowledgeVector.entry_id == plan_entry)
        .values(vector=b"\x00" * 10)
    )
    session.commit()
    # A process that reads the table now: the bad row is skipped; the other answers are still found.
    meaning._shelves.clear()
    probe = _probe(session, box.id)
    assert made[PLAN[0]].id not in [s.ticket_id for s in similar.suggest(session, probe, question=PLAN_ASKED)]
    assert similar.suggest(session, probe, question=SLOW_ASKED)[0].ticket_id == made[SLOW[0]].id


def test_vectors_made_before_the_encoder_read_plain_text_are_written_again(helpdesk, session):
    """Migration 0034: the stored vectors (made from the text as it was) are dropped, and the job
    writes each again from plain text; search by words works meanwhile."""
    from alembic import command

    from server.base.migrations import alembic_config

    box = helpdesk.connect(MAILBOX, ["anna@example.com"])
    made = _file(session, box.id)
    assert meaning.fill_all(session) == len(made)
    session.commit()
    engine = get_engine()
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0033")
        command.upgrade(config, "head")
    session.expire_all()
    assert session.scalars(select(KnowledgeVector)).all() == []
    probe = _probe(session, box.id)
    assert similar.suggest(session, probe, question=PLAN[0])[0].ticket_id == made[PLAN[0]].id  # words
    assert meaning.fill_all(session) == len(made)
    meaning._shelves.clear()
    assert similar.suggest(session, probe, question=PLAN_ASKED)[0].ticket_id == made[PLAN[0]].id


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=3_000), min_size=1, max_size=4))
def test_any_text_encodes_to_a_unit_vector_or_zeros(texts):
    vectors = meaning.encode(texts)
    assert vectors.shape == (len(texts), meaning.DIMENSIONS) and np.isfinite(vectors).all()
    for text, vector in zip(texts, vectors, strict=True):
        norm = float(np.linalg.norm(vector))
        assert abs(norm - 1.0) < 1e-3 or (norm == 0.0 and not meaning.plain(text))
        asked = meaning.ask(text)  # through the adapter: still a unit vector, or zeros for nothing
        assert np.isfinite(asked).all() and (abs(float(np.linalg.norm(asked)) - 1.0) < 1e-3 or norm == 0.0)


def test_the_other_script_counts_for_less_and_words_never_lower_a_match():
    assert meaning.script("Как поменять тариф?") == "cyrillic" and meaning.script("Change plan") == "latin"
    assert meaning.script("12345 !!") == ""
    assert meaning.combined(0.4, 0.45) > meaning.combined(0.4, 0.45, same_script=False)
    assert meaning.combined(0.9, 0.0) == 0.9  # a plain match is never lowered by meaning
    assert meaning.combined(0.3, None) == 0.3  # no vector yet: words alone


def test_a_full_cache_of_example_vectors_is_emptied_without_losing_the_ones_in_use(monkeypatch):
    from server.services.knowledge import faq

    kept = {f"filler {n}": np.zeros(meaning.DIMENSIONS, dtype=np.float32) for n in range(9_999)}
    kept["How do I change my plan?"] = meaning.encode(["How do I change my plan?"])[0]
    monkeypatch.setattr(faq, "_EXAMPLES", kept)
    found = faq._meanings(
        PLAN_ASKED, ["How do I change my plan?", "Where is my parcel?"]
    )  # one new: overflow
    assert set(found) == {"How do I change my plan?", "Where is my parcel?"}
    assert found["How do I change my plan?"] > found["Where is my parcel?"]


def test_the_adapter_moves_a_question_and_only_a_question():
    """A question goes through the learnt map (server.services.knowledge.adapter); left out, it is the
    encoder's own vector; an empty question stays zeros; entries keep the encoder's vector."""
    plain = meaning.encode([PLAN_ASKED])[0]
    moved = meaning.ask(PLAN_ASKED)
    assert abs(float(np.linalg.norm(moved)) - 1.0) < 1e-5
    assert float(moved @ plain) < 0.999  # it moved
    with adapter.left_out():
        assert np.allclose(meaning.ask(PLAN_ASKED), plain)
    assert not meaning.ask("   ").any()
    entry = meaning.encode([PLAN[0]])[0]
    # Moved toward the team's wording: nearer its own entry than the plain vector was.
    assert float(moved @ entry) > float(plain @ entry)


def test_the_adapter_learns_a_consistent_difference_and_refuses_bad_shapes():
    """On made-up pairs where every paraphrase is its entry turned by one fixed rotation plus noise,
    the learnt map ranks each pair's own entry first more often than the unmoved vectors do."""
    rng = np.random.default_rng(7)
    entries = rng.normal(size=(120, 32))
    entries /= np.linalg.norm(entries, axis=1, keepdims=True)
    turn, _ = np.linalg.qr(rng.normal(size=(32, 32)))
    asked = 0.4 * entries + 0.9 * entries @ turn + 0.3 * rng.normal(size=(120, 32))
    asked /= np.linalg.norm(asked, axis=1, keepdims=True)
    learnt = adapter.learn(asked[:80], entries[:80])
    assert learnt.shape == (32, 32) and learnt.dtype == np.float32

    def firsts(matrix: np.ndarray) -> int:  # the 40 pairs the map never saw
        return int(np.sum(np.argmax(asked[80:] @ matrix @ entries[80:].T, axis=1) == np.arange(40)))

    assert firsts(learnt) > firsts(np.eye(32)) + 5
    with pytest.raises(ValueError):
        adapter.learn(asked[:10], entries[:9])
    with pytest.raises(ValueError):
        adapter.learn(np.zeros((0, 32)), np.zeros((0, 32)))


def test_a_broken_adapter_file_leaves_questions_unmoved_and_says_so(tmp_path, monkeypatch, caplog):
    """A damaged or foreign map (a deployment mistake) does not break search: the question keeps the
    encoder's vector and the log names the file once."""
    broken = tmp_path / "meaning_adapter.npz"
    broken.write_bytes(b"\x93NUMPY not really")
    monkeypatch.setattr(adapter, "FILE", broken)
    monkeypatch.setattr(adapter, "_loaded", None)
    monkeypatch.setattr(adapter, "_unusable", False)
    with caplog.at_level("ERROR", logger="server.services.knowledge.adapter"):
        assert np.allclose(meaning.ask(PLAN_ASKED), meaning.encode([PLAN_ASKED])[0])
        meaning.ask(SLOW_ASKED)
    assert [str(broken) in r.getMessage() for r in caplog.records] == [True]
    nothing = np.zeros((0, 3), dtype=np.float32)
    adapter.save(adapter.Adapter(np.eye(3, dtype=np.float32), nothing, nothing), broken)  # not 512 wide
    monkeypatch.setattr(adapter, "_unusable", False)
    assert np.allclose(meaning.ask(PLAN_ASKED), meaning.encode([PLAN_ASKED])[0])
    with np.load(broken) as saved:
        assert sorted(saved.files) == ["asked", "map", "shift"]
    with pytest.raises(ValueError):  # a memory that is not the map's width is refused, not used
        adapter.Adapter(np.eye(3, dtype=np.float32), np.zeros((2, 4)), np.zeros((2, 4)))


def test_the_adapters_memory_moves_a_question_only_near_what_it_remembers():
    """A question near a remembered paraphrase moves by that pair's shift (toward its entry); one far
    from every remembered paraphrase (below MEMORY_FLOOR) gets the map's move alone."""
    rng = np.random.default_rng(3)
    remembered = rng.normal(size=(4, 16))
    remembered /= np.linalg.norm(remembered, axis=1, keepdims=True)
    shift = np.zeros((4, 16))
    shift[0, 5] = 1.0  # the first pair's entry lies along axis 5
    learnt = adapter.Adapter(
        np.eye(16, dtype=np.float32), remembered.astype(np.float32), shift.astype(np.float32)
    )
    near = remembered[0] + 0.05 * rng.normal(size=16)
    near /= np.linalg.norm(near)
    far = np.linalg.svd(remembered)[2][-1]  # orthogonal to every remembered paraphrase
    assert float(learnt.move(near) @ np.eye(16)[5]) > float(near @ np.eye(16)[5]) + 0.1
    assert np.allclose(learnt.move(far), far, atol=1e-5)
    assert abs(float(np.linalg.norm(learnt.move(near))) - 1.0) < 1e-5
    assert not learnt.move(np.zeros(16, dtype=np.float32)).any()


def test_the_encoder_reads_plain_text():
    """Case, ё and punctuation do not change what a text means to the encoder."""
    assert meaning.plain("  Ёлка — «ЗЕЛЁНАЯ»?!  ") == "елка зеленая"
    one, other = meaning.encode(["Как поменять тариф?", "как поменять тариф"])
    assert np.allclose(one, other)
    assert not meaning.encode(["?!…"]).any()
