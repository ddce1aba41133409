"""Run the whole pytest suite twice: on SQLite, then on a throw-away PostgreSQL on loopback
(``POSTDESK_TEST_PASSES=together``: both at once — about 10 % faster on two cores, but the slowest
tests then come near their timeouts).

PostgreSQL is started from the machine's own binaries (Debian's /usr/lib/postgresql/*/bin, or
``initdb``/``pg_ctl`` on PATH) in a temporary folder, as a non-root user, and removed afterwards.
``POSTDESK_TEST_DATABASE_URL`` set beforehand means "use this server instead".
Without PostgreSQL the second run is skipped with a loud notice; with ``REQUIRE_POSTGRES=1`` it fails.
``POSTDESK_TEST_ONLY=postgresql`` runs the PostgreSQL pass alone (`make soak-short`).
Arguments are passed to pytest.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: A throw-away server's restart, by its URL (while it runs).
RESTARTS: dict[str, Callable[[], None]] = {}
#: By URL, a throw-away server's stop and start, for an outage longer than a restart (tests only).
OUTAGES: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {}


def banner(text: str) -> None:
    line = "=" * 100
    print(f"\n{line}\n{text}\n{line}", flush=True)


#: pytest-xdist workers per pass when the caller says ``-n matrix``: the SQLite pass's tests wait
#: on browsers and subprocesses often enough that a third worker gains (289 s against 315 s on the
#: 2-core machine); in the PostgreSQL pass the server is busy too, and a third lost (351 s against 322 s).
WORKERS = {"SQLite": "3", "PostgreSQL": "2"}


def run_pytest(label: str, extra_env: dict[str, str], args: list[str]) -> int:
    banner(f"pytest on {label}")
    # One BLAS thread per process: the xdist workers already fill both cores, and OpenBLAS's own
    # threads (the sentence encoder's matrix products) only spin against them (SQLite pass on the 2-core
    # machine, one run each: 287 s and 7 min 50 s of CPU, against 301 s and 8 min 16 s).
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", **os.environ, **extra_env}
    args = [
        WORKERS[label.split(" ")[0]] if a == "matrix" and args[i - 1] == "-n" else a
        for i, a in enumerate(args)
    ]
    return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=ROOT, env=env)


def run_together(passes: dict[str, dict[str, str]], args: list[str]) -> dict[str, int]:
    """The passes at the same time (much of the suite waits — on subprocesses, browsers, PostgreSQL —
    so two passes of two workers each keep a 2-core machine busier than one after the other); each
    pass's output is kept apart and printed whole when it ends."""
    running: dict[str, tuple[subprocess.Popen[str], Any]] = {}
    results: dict[str, int] = {}
    try:
        for label, extra_env in passes.items():
            output = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 (closed when the pass ends)
            process = subprocess.Popen(
                [sys.executable, "-m", "pytest", *args],
                cwd=ROOT,
                env={**os.environ, **extra_env},
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
            running[label] = (process, output)
            print(f"pytest on {label}: started (its output follows when it ends)", flush=True)
        while running:
            for label, (process, output) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                banner(f"pytest on {label}")
                output.seek(0)
                shutil.copyfileobj(output, sys.stdout)
                sys.stdout.flush()
                output.close()
                results[label] = code
                del running[label]
            time.sleep(0.5)
    finally:
        for process, output in running.values():
            process.terminate()
            process.wait(timeout=60)
            output.close()
    return results


def postgres_binaries() -> Path | None:
    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def throwaway_postgres(binaries: Path) -> Iterator[str]:
    """Start PostgreSQL in a temporary folder; yield its URL; stop and delete it afterwards."""
    run_as: dict[str, object] = {}
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        name = "postgres" if _user_exists("postgres") else "nobody"
        entry = pwd.getpwnam(name)
        run_as = {"user": entry.pw_uid, "group": entry.pw_gid}
    base = Path(tempfile.mkdtemp(prefix="postdesk-pg-"))
    data = base / "data"
    if run_as:
        os.chown(base, int(run_as["user"]), int(run_as["group"]))  # type: ignore[call-overload]
    port = free_port()
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}

    def pg(*command: str) -> None:
        subprocess.run(command, check=True, env=env, cwd=base, stdout=subprocess.DEVNULL, **run_as)  # type: ignore[call-overload]

    try:
        pg(
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        options = (
            f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        pg(
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(base / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        )
        print(f"PostgreSQL ({binaries}) running on 127.0.0.1:{port}", flush=True)
        url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        # The soak (tests/soak.py) restarts the server it owns once, as an operator's restart would.
        RESTARTS[url] = lambda: pg(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-o", options,
                                   "-w", "restart")  # fmt: skip
        OUTAGES[url] = (
            lambda: pg(str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"),
            lambda: pg(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(base / "server.log"), "-o", options,
                       "-w", "start"),
        )  # fmt: skip
        try:
            yield url
        finally:
            RESTARTS.pop(url, None)
            OUTAGES.pop(url, None)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                env=env,
                stdout=subprocess.DEVNULL,
                **run_as,  # type: ignore[arg-type]
            )
        shutil.rmtree(base, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def main(args: list[str]) -> int:
    # A SIGTERM (CI cancelled, Ctrl+C of make) still stops the throw-away PostgreSQL via ``finally``.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    required = os.environ.get("REQUIRE_POSTGRES") == "1"
    given = os.environ.get("POSTDESK_TEST_DATABASE_URL")
    binaries = postgres_binaries()
    if binaries is not None and not given and os.environ.get("POSTDESK_TEST_PASSES") == "together":
        try:
            with throwaway_postgres(binaries) as url:
                results = run_together(
                    {
                        "SQLite": {"POSTDESK_TEST_DATABASE_URL": ""},
                        "PostgreSQL": {"POSTDESK_TEST_DATABASE_URL": url},
                    },
                    args,
                )
        except (OSError, subprocess.CalledProcessError) as exc:
            banner(f"FAILED to start a throw-away PostgreSQL: {exc}")
            return 1
        return _summary(results)
    results = {}
    if os.environ.get("POSTDESK_TEST_ONLY") != "postgresql":  # `make soak-short`: its tests need PostgreSQL
        results["SQLite"] = run_pytest("SQLite", {"POSTDESK_TEST_DATABASE_URL": ""}, args)
    if given:
        results["PostgreSQL"] = run_pytest(f"PostgreSQL ({given})", {}, args)
    elif binaries is None:
        message = "PostgreSQL not found (no initdb/pg_ctl): the PostgreSQL run of the suite did NOT run."
        if required:
            banner(
                f"FAILED: {message} REQUIRE_POSTGRES=1 asks for it (.ci/run installs Debian's postgresql)."
            )
            return 1
        banner(f"!!! SKIPPED: {message} Install PostgreSQL (Debian: apt-get install postgresql) to run it.")
    else:
        try:
            with throwaway_postgres(binaries) as url:
                results["PostgreSQL"] = run_pytest("PostgreSQL", {"POSTDESK_TEST_DATABASE_URL": url}, args)
        except (OSError, subprocess.CalledProcessError) as exc:
            banner(f"FAILED to start a throw-away PostgreSQL: {exc}")
            return 1

    return _summary(results)


def _summary(results: dict[str, int]) -> int:
    banner(
        "summary: "
        + ", ".join(
            f"{name}: {'passed' if code == 0 else f'FAILED (exit {code})'}" for name, code in results.items()
        )
    )
    return 0 if all(code == 0 for code in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
