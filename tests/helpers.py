"""Helpers shared by tests (import as ``from helpers import …``)."""

from __future__ import annotations

import contextlib
import email.utils
import functools
import subprocess
import uuid

MAILBOX = "support@example.com"


def make_email(
    subject: str = "Help",
    body: str = "Hello",
    *,
    sender: str = "alice@example.org",
    to: str = MAILBOX,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    extra: str = "",
    date: str | None = None,
) -> bytes:
    """A small, valid RFC 822 message for tests."""
    message_id = message_id or f"<{uuid.uuid4().hex}@example.org>"
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: {message_id}",
        f"Date: {date or email.utils.formatdate()}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    if in_reply_to:
        lines += [f"In-Reply-To: {in_reply_to}", f"References: {in_reply_to}"]
    if extra:
        lines.append(extra.strip())
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


def http(
    method: str,
    url: str,
    body: object = None,
    *,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
):
    """One HTTP call with urllib; returns ``(status, parsed JSON or raw bytes, headers)``, never raises."""
    import json
    import urllib.error
    import urllib.request

    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if raw is None and body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, content, response_headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        with error:
            status, content, response_headers = error.code, error.read(), dict(error.headers)
    try:
        return status, (json.loads(content) if content else None), response_headers
    except ValueError:
        return status, content, response_headers


def examples(count: int) -> int:
    """A fuzz test's hypothesis budget for this pass: all of it on SQLite, half in the PostgreSQL pass.

    The second pass is there for what PostgreSQL answers differently (a NUL byte, an integer past its
    range, a malformed date — each a 500 the fuzz once found there); hypothesis reaches those values
    early, so half the examples find them, and the suite keeps its twelve minutes."""
    import os

    return (
        max(10, count // 2)
        if os.environ.get("POSTDESK_TEST_DATABASE_URL", "").startswith("postgresql")
        else count
    )


def run_postdesk(
    args: list[str], env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``postdesk ARGS`` as a separate process (a new user's command line); its completed process."""
    return subprocess.run(
        [postdesk_command(), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def wait_until(predicate, timeout: float = 30.0) -> bool:
    """Poll a condition another process makes true (a real worker runs on real time)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def a_deadlock_the_app_loses(engine):
    """A connection playing a worker's batch (PostgreSQL only), and ``app_waits()``: whether the app's
    request is waiting for a lock. The app's connections find a deadlock 3 s after they start waiting,
    this one only after 60 s, so the app's transaction is the one PostgreSQL undoes."""
    from sqlalchemy import text

    with engine.connect() as admin:
        name = admin.execute(text("SELECT current_database()")).scalar()
        admin.execute(text(f"ALTER DATABASE \"{name}\" SET deadlock_timeout = '3s'"))
        admin.commit()
    engine.dispose()  # the app's next connections take the setting
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"

    def app_waits() -> bool:
        with engine.connect() as look:  # a transaction per look: the view is a snapshot per transaction
            return bool(look.execute(text(waiting)).scalar())

    with engine.connect() as worker:
        worker.execute(text("SET deadlock_timeout = '60s'"))
        yield worker, app_waits


def postdesk_command() -> str:
    """The installed ``postdesk`` console script of this interpreter's environment."""
    import shutil
    import sys
    from pathlib import Path

    beside = Path(sys.executable).parent / "postdesk"
    return str(beside) if beside.exists() else (shutil.which("postdesk") or "postdesk")


class Process:
    """A real ``postdesk`` subprocess whose output is read line by line until a pattern shows up."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        import os
        import queue
        import subprocess
        import threading

        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [postdesk_command(), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
            cwd=cwd,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float = 60.0):
        import queue
        import re
        import time

        for line in self.lines:  # a line read while waiting for an earlier pattern
            match = re.search(pattern, line)
            if match:
                return match
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise AssertionError(f"{pattern!r} never appeared; output so far:\n{''.join(self.lines)}")

    def output(self) -> str:
        """Everything the process printed so far (without waiting for more)."""
        import queue

        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is None:
                self._queue.put(None)  # the end stays marked for wait_for
                break
            self.lines.append(line)
        return "".join(self.lines)

    def stop(self) -> int:
        import signal
        import subprocess

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode


@functools.cache
def service_account_key() -> dict[str, str]:
    """A syntactically real service-account key (a fresh RSA key; it opens nothing at Google)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {
        "type": "service_account",
        "project_id": "postdesk-test",
        "private_key_id": "test-key",
        "private_key": pem,
        "client_email": "postdesk@postdesk-test.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
