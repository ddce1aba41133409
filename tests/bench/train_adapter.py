"""``make adapter``: learn the meaning adapter again from the tuning paraphrase sets and write it.

Only tests/fixtures/paraphrases/tuning_*.yaml is read (never the held-out sets). Each pair gives the
customer's paraphrase and the team's entry as the knowledge index encodes it
(:func:`~server.services.knowledge.meaning.entry_vectors`). ``--check`` writes nothing and
says whether the shipped file is what the tuning sets give (tests/test_paraphrase_sets.py runs it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from server.services.knowledge import adapter, meaning  # noqa: E402

SETS = ROOT / "tests" / "fixtures" / "paraphrases"


def tuning_pairs() -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for language in ("en", "ru"):
        with (SETS / f"tuning_{language}.yaml").open(encoding="utf-8") as source:
            found += yaml.safe_load(source)["pairs"]
    return found


def learnt() -> adapter.Adapter:
    pairs = tuning_pairs()
    entries = meaning.entry_vectors([p["asked"] for p in pairs], [p["answer"] for p in pairs])
    return adapter.build(meaning.encode([p["paraphrase"] for p in pairs]), entries)


def gap(one: adapter.Adapter, other: adapter.Adapter) -> float:
    """The largest difference between two adapters' numbers (inf when their shapes differ)."""
    parts = [(one.map, other.map), (one.asked, other.asked), (one.shift, other.shift)]
    if any(a.shape != b.shape for a, b in parts):
        return float("inf")
    return max(float(np.abs(a - b).max()) for a, b in parts)


def main() -> int:
    made = learnt()
    if "--check" in sys.argv:
        shipped = adapter.shipped()
        if shipped is None:
            print(f"no adapter at {adapter.FILE}")
            return 1
        # float16 keeps about three digits: the difference is rounding, or another source.
        difference = gap(shipped, made)
        print(f"the shipped adapter differs from the tuning sets' by at most {difference:.4f}")
        return 0 if difference < 0.01 else 1
    adapter.save(made)
    print(f"wrote {adapter.FILE} from {len(tuning_pairs())} tuning pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
