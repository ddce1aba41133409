"""``make bench``: run every benchmark, even after one fails, then print one summary.

Each benchmark is its own process (its figures are printed as it runs). The summary lists each one
with PASS or FAIL and the lines it marked PASS or FAIL; the exit code is 1 when any failed.
``python tests/bench/run_all.py bench_sync bench_steady`` runs only the ones named.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: In the order they run: the per-message path first, the whole system last.
BENCHMARKS = (
    "bench_sync",
    "bench_steady",
    "bench_peer",
    "bench_reminders",
    "bench_addon",
    "bench_dryrun",
    "bench_reports",
    "bench_api",
    "bench_signals",
    "bench_knowledge",
    "bench_paraphrase",
    "bench_labels",
    "bench_push",
    "bench_workers",
    "bench_load",
)


def run(name: str) -> tuple[int, list[str], float]:
    """Run one benchmark, echoing its output; its exit code, its verdict lines and its seconds."""
    print(f"\n=== {name} ===", flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(HERE / f"{name}.py")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    verdicts: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        if line.rstrip().endswith(("PASS", "FAIL")) or line.lstrip().startswith(("PASS", "FAIL")):
            verdicts.append(line.strip())
    return process.wait(), verdicts, time.perf_counter() - started


def main(names: list[str]) -> int:
    chosen = names or list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    results = {name: run(name) for name in chosen}
    print("\n" + "=" * 100 + "\nbenchmark summary")
    for name, (code, verdicts, seconds) in results.items():
        print(f"  {'PASS' if code == 0 else 'FAIL'}  {name}  ({seconds:.0f} s)")
        for line in verdicts:
            print(f"          {line}")
    failed = [name for name, (code, *_rest) in results.items() if code != 0]
    print(
        f"{len(results) - len(failed)} passed, {len(failed)} failed"
        + (f": {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
