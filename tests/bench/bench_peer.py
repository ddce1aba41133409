"""``make bench``: Postdesk beside django-helpdesk 2.6.1's importer, on the same messages, in one run.

django-helpdesk (an open-source helpdesk on Django) files email from a mailbox into tickets; its
local-directory importer reads .eml files, so both tools get byte-for-byte the same mail and
neither waits on a network. It is installed into a throw-away virtual environment (build/peer-venv,
never a dependency of Postdesk) and run by peer_helpdesk.py on SQLite.

- First sync: bench_sync's mailbox (5,000 messages in 1,500 threads) — Postdesk's first sync
  (Gmail's wait taken out, as in bench_sync) against the importer on the same 5,000 files.
- Steady state: bench_steady's mailbox — the history filed first (not timed), then the new
  customer emails (each side's fastest of three rounds, as in bench_steady): Postdesk's incremental sync with the default rules, labels, readings, index and
  webhooks against the importer on the same new files (its own acknowledgements on).

Targets: Postdesk's own rate ≥ 10× the importer's on the first sync, ≥ 4× in steady state.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import bench_steady  # noqa: E402
import bench_sync  # noqa: E402

PEER = "django-helpdesk==2.6.1"
VENV = ROOT / "build" / "peer-venv"
TARGET_FIRST = 10.0
TARGET_STEADY = 4.0


def peer_python() -> Path:
    """The throw-away environment's Python with django-helpdesk (installed on first use)."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    if not stamp.exists() or stamp.read_text() != PEER:
        shutil.rmtree(VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", PEER], check=True)
        stamp.write_text(PEER)
    return python


def write_emails(folder: Path, raws: list[bytes], first: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number, raw in enumerate(raws, first):
        (folder / f"{number:07d}.eml").write_bytes(raw)


def peer_import(python: Path, work: Path, folder: Path) -> dict[str, float]:
    """The importer on every file of ``folder`` (in name order, which is time order here)."""
    out = subprocess.run(
        [str(python), str(HERE / "peer_helpdesk.py"), str(work), "import", str(folder)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1500)
    parser.add_argument("--history", type=int, default=2000)
    parser.add_argument("--new", type=int, default=500)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    python = peer_python()
    work = Path(tempfile.mkdtemp(prefix="postdesk-peer-"))

    # First sync: the same 5,000 messages.
    first = bench_sync.first_sync(args)
    filed = first["result"].messages_filed
    ours_first = filed / (first["elapsed"] - first["wait"])
    ours_first_e2e = filed / first["elapsed"]
    write_emails(
        work / "first" / "mail",
        [raw for raw, _ms in bench_sync.mailbox_messages(args.messages, args.threads, args.seed)],
    )
    theirs_first = peer_import(python, work / "first", work / "first" / "mail")

    # Steady state: the history first (not timed), then the new mail.
    (work / "steady-postdesk").mkdir()
    steady = bench_steady.fastest_of(
        3,
        lambda n: bench_steady.sqlite_database(work / "steady-postdesk", n),
        work / "steady-postdesk",
        argparse.Namespace(history=args.history, new=args.new, seed=args.seed, profile=None),
    )
    history, threads = bench_steady.history_messages(args.history, args.seed)
    fresh = bench_steady.new_messages(threads, args.new, args.seed)
    runs = []
    for round_ in range(3):  # as many rounds as Postdesk's steady state, each on a new database
        folder = work / f"steady-{round_}"
        write_emails(folder / "mail", [raw for raw, _ms in history])
        peer_import(python, folder, folder / "mail")
        write_emails(folder / "mail", fresh, len(history))
        runs.append(peer_import(python, folder, folder / "mail"))
    theirs_steady = max(runs, key=lambda run: run["filed"] / run["seconds"])
    print(
        "django-helpdesk steady rounds: "
        + ", ".join(f"{run['filed'] / run['seconds']:.0f} msg/s" for run in runs)
    )
    shutil.rmtree(work, ignore_errors=True)

    ours_steady = 1000 / steady["own_ms"]
    rows = [
        ("first sync", ours_first, ours_first_e2e, theirs_first, TARGET_FIRST),
        ("steady state", ours_steady, steady["end_to_end"], theirs_steady, TARGET_STEADY),
    ]
    print(json.dumps({"first": theirs_first, "steady": theirs_steady}, indent=2))
    print(f"\nPostdesk beside {PEER}'s local-directory importer (SQLite, same messages)")
    ok = True
    for name, own, end_to_end, peer, target in rows:
        peer_rate = peer["filed"] / peer["seconds"]
        ratio = own / peer_rate
        passed = ratio >= target
        ok = ok and passed
        print(f"  {name:<13} Postdesk {own:6.0f} msg/s own ({end_to_end:4.0f} end to end)   "
              f"django-helpdesk {peer_rate:5.0f} msg/s ({peer['filed']:.0f} files, {peer['tickets']:.0f} tickets)   "
              f"{ratio:5.1f}×  target ≥ {target:g}×  {'PASS' if passed else 'FAIL'}")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
