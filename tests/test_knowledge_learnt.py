"""Associations learnt from the team's history (server.services.knowledge.learnt): questions that got
the same answer vouch for each other's words, so a new question in the customers' own words finds the
answer even by words alone; answers that differ teach nothing, and common words are never learnt."""

from __future__ import annotations

from addon_fixtures import solved_ticket
from helpers import MAILBOX

from server.base.models import Ticket
from server.services.knowledge import learnt, related, similar
from server.services.knowledge.stemming import terms

PLAN = "Open Billing, then Plan, and pick the new one; it applies today."
INVOICE = "Invoices are under Billing, then Documents."
# The customers' words for a plan change, each time with the team's word beside another.
ASKED = [
    "Please change my tariff, thanks",
    "Hello, I want another package please",
    "Can I move to a bigger package? thanks",
    "Please switch my subscription tier",
    "Hello, how do I change the tariff",
    "thanks, a different subscription tier please",
]


def test_questions_with_one_answer_teach_their_words(helpdesk, session):
    box = helpdesk.connect(MAILBOX, ["anna@example.com"])
    made = [solved_ticket(session, box.id, f"Q{n}", question, PLAN) for n, question in enumerate(ASKED)]
    for n in range(12):  # other questions, other answers: common words (please, thanks) everywhere
        solved_ticket(session, box.id, f"Invoice {n}", f"Please send invoice number {n}, thanks", INVOICE)
    learnt.forget()
    groups = learnt.learnt(session, box.id).groups
    pairs = {tuple(sorted(member[0][0] for member in group)) for group in groups}
    tariff, package = terms("tariff")[0], terms("package")[0]
    assert tuple(sorted((tariff, package))) in pairs  # seen together in several comparisons
    common = {*terms("please"), *terms("thanks"), *terms("hello")}  # (if not stop words already)
    assert not any(set(pair) & common for pair in pairs)
    assert not any(terms("invoice")[0] in pair for pair in pairs)  # one answer's words, never another's

    probe = Ticket(mailbox_id=box.id, number=999, subject="", status="open")
    session.add(probe)
    session.flush()
    # 'tariff' alone shares no stem with the questions that say 'package' or 'tier' — learnt, it looks
    # for them too; with the shipped lists only it does not.
    assert learnt.related_terms(session, box, [tariff]).get(package) == package
    assert package not in learnt.related_terms(session, box, [tariff], related.mailbox_lexicon(box))
    # And a suggestion weighs them: a question saying 'tariff' ranks the plan answers' tickets that say
    # only 'package' (no word of the question) among its candidates' scores.
    scored = similar.suggest(session, probe, question="tariff", by_meaning=False, limit=10)
    assert scored and all(s.ticket_id in {t.id for t in made} for s in scored)


def test_an_answer_is_one_by_its_article_link_or_its_words():
    assert learnt.answer_key("See https://x.test/help/acme/articles/12-plans for more") == "article:12"
    assert learnt.answer_key("Open  Billing!") == learnt.answer_key("open billing")
