"""``make bench``: does search find the answer when the customer says it in other words?

The held-out paraphrase set (tests/fixtures/paraphrases/held_out_*.yaml: 150+ pairs in Russian and
English, written before any synonym list or learnt association and never tuned on) is filed as solved
tickets — each pair's question as the team wrote it, with the team's answer — in one mailbox. Each
pair's paraphrase is then asked as a new question: a hit is the pair's own solved ticket among the
suggestions (top 3) or first (top 1), per language. The figures are printed for the engine as the
mailbox has it by default and for each of its parts alone (the lexical engine without additions, then
with each addition; meaning with and without the adapter learnt from the tuning sets), so every
addition shows what it brings.

Target (issue 29): 0.8 in the top 3 per language with the default settings. Until the engine reaches
it the figure is printed as information, not yet a verdict (the issue stays open while it is so).
"""

from __future__ import annotations

import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import bench_app, support_mailbox  # noqa: E402

from server.base.db import get_session  # noqa: E402
from server.base.models import Message, Ticket, TicketStatus  # noqa: E402
from server.services.knowledge import adapter, learnt, meaning, related, similar  # noqa: E402
from server.services.tickets import actions  # noqa: E402

SETS = HERE.parent / "fixtures" / "paraphrases"
NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
TARGET_TOP3 = 0.8
DEFAULT = "with_related_terms_meaning_and_the_adapter (default)"


def pairs(language: str, kind: str = "held_out") -> list[dict[str, str]]:
    with (SETS / f"{kind}_{language}.yaml").open(encoding="utf-8") as source:
        found: list[dict[str, str]] = yaml.safe_load(source)["pairs"]
    return found


def file_pairs(
    session: Any, mailbox_id: int, cases: list[tuple[str, dict[str, str]]], first: int = 1
) -> dict[str, int]:
    """Each pair's question and answer as a solved ticket; the ticket id by ``language:index``."""
    ids: dict[str, int] = {}
    for n, (key, case) in enumerate(cases, start=first):
        at = NOW - timedelta(minutes=len(cases) - n)
        ticket = Ticket(mailbox_id=mailbox_id, number=n, subject=case["asked"], status="open",
                        created_at=at, updated_at=at)  # fmt: skip
        session.add(ticket)
        session.flush()
        session.add(Message(mailbox_id=mailbox_id, ticket_id=ticket.id, gmail_id=f"{n}-in", gmail_thread_id=str(n),
                            direction="inbound", text=case["asked"], sent_at=at))  # fmt: skip
        session.add(Message(mailbox_id=mailbox_id, ticket_id=ticket.id, gmail_id=f"{n}-out", gmail_thread_id=str(n),
                            direction="outbound", text=case["answer"], sent_at=at + timedelta(minutes=5)))  # fmt: skip
        actions.set_status(session, ticket, TicketStatus.SOLVED, at=at + timedelta(minutes=6))
        ids[key] = ticket.id
    session.commit()
    return ids


def hit_rates(
    session: Any,
    probe: Ticket,
    ids: dict[str, int],
    sets: dict[str, list[dict[str, str]]],
    lexicon: Any = None,
    by_meaning: bool | None = None,
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for language, cases in sets.items():
        top3 = top1 = shown = 0
        misses: list[str] = []
        for n, case in enumerate(cases):
            found = [
                s.ticket_id
                for s in similar.suggest(
                    session, probe, question=case["paraphrase"], lexicon=lexicon, by_meaning=by_meaning
                )
            ]
            right = ids[f"{language}:{n}"]
            top3 += right in found
            top1 += bool(found) and found[0] == right
            shown += bool(found)
            if right not in found and len(misses) < 5:
                misses.append(case["paraphrase"])
        figures[language] = {
            "pairs": len(cases),
            "top3_hit_rate": round(top3 / len(cases), 3),
            "top1_hit_rate": round(top1 / len(cases), 3),
            "anything_shown": round(shown / len(cases), 3),
            "first_misses": misses,
        }
    return figures


def main() -> int:
    kind = "tuning" if "--tuning" in sys.argv else "held_out"
    sets = {language: pairs(language, kind) for language in ("en", "ru")}
    with tempfile.TemporaryDirectory(prefix="postdesk-bench-") as folder:
        app = bench_app(Path(folder) / "paraphrase.sqlite3")
        with app.app_context():
            session = get_session()
            box, _anna = support_mailbox(session)
            session.commit()
            ids = file_pairs(session, box.id, [(f"{lang}:{n}", case) for lang, cases in sets.items()
                                               for n, case in enumerate(cases)])  # fmt: skip
            probe = Ticket(
                mailbox_id=box.id, number=0, subject="", status="open", created_at=NOW, updated_at=NOW
            )
            session.add(probe)
            session.flush()
            meaning.fill_all(session)
            figures = {
                "lexical": hit_rates(session, probe, ids, sets, related.Lexicon(), by_meaning=False),
                "with_related_terms": hit_rates(session, probe, ids, sets, by_meaning=False),
            }
            with adapter.left_out():
                figures["with_meaning"] = hit_rates(
                    session, probe, ids, sets, related.Lexicon(), by_meaning=True
                )
                figures["with_related_terms_and_meaning"] = hit_rates(session, probe, ids, sets)
            figures["with_meaning_and_the_adapter"] = hit_rates(
                session, probe, ids, sets, related.Lexicon(), by_meaning=True
            )
            figures[DEFAULT] = hit_rates(session, probe, ids, sets)
            # Learnt associations need a history where customers asked the same thing in other words:
            # the tuning set's pairs, each as two solved tickets with one answer (never the held-out set).
            tuning = [(f"tuning-{lang}:{n}:{side}", {"asked": case[side], "answer": case["answer"]})
                      for lang in sets for n, case in enumerate(pairs(lang, "tuning"))
                      for side in ("asked", "paraphrase")]  # fmt: skip
            if kind == "held_out":
                file_pairs(session, box.id, tuning, first=len(ids) + 1)
                meaning.fill_all(session)
                learnt.forget()
                shipped = related.mailbox_lexicon(box)
                figures["with_a_history: related_terms_and_meaning"] = hit_rates(
                    session, probe, ids, sets, shipped
                )
                figures["with_a_history: and_learnt_associations (default)"] = hit_rates(
                    session, probe, ids, sets
                )
                figures["learnt_associations"] = len(learnt.learnt(session, box.id).groups)
            session.rollback()
    import json

    print(json.dumps(figures, indent=2, ensure_ascii=False))
    default = figures[DEFAULT]
    before = figures["with_related_terms_and_meaning"]
    old = figures["lexical"]
    history = figures.get("with_a_history: and_learnt_associations (default)")

    def rates(row: dict[str, Any], rate: str = "top3_hit_rate") -> str:
        return ", ".join(f"{lang} {row[lang][rate]:.2f}" for lang in sets)

    print(
        f"paraphrase ({kind}): top-3 hit rate {rates(default)} (top-1 {rates(default, 'top1_hit_rate')}); "
        f"before the adapter {rates(before)}; words alone {rates(old)}"
        + (f"; with a history to learn from {rates(history)}" if history else "")
    )
    if kind != "held_out":
        return 0
    reached = all(default[lang]["top3_hit_rate"] >= TARGET_TOP3 for lang in sets)
    print(
        f"paraphrase: target top-3 >= {TARGET_TOP3} per language on the held-out set: "
        + ("PASS" if reached else "not yet (information until issue 29's engine reaches it)")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
