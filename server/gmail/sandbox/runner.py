"""Serve the sandbox on a loopback port, in a background thread or in the foreground."""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from werkzeug.serving import BaseWSGIServer, make_server

from server.gmail.sandbox.api import create_sandbox_app
from server.gmail.sandbox.faults import Gate
from server.gmail.sandbox.store import Sandbox

#: How often the serving thread looks whether it should stop (the library's default is half a second).
POLL_SECONDS = 0.02


class SandboxServer:
    """A running sandbox: ``url`` is the API endpoint to hand to the Gmail client."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        sandbox: Sandbox | None = None,
        *,
        enforce_rate_limit: bool = True,
        seed: int | None = None,
    ) -> None:
        self.sandbox = sandbox if sandbox is not None else Sandbox()
        self.gate = Gate(seed)
        self.gate.meter.enforce = enforce_rate_limit
        self.app = create_sandbox_app(self.sandbox, self.gate)
        # werkzeug's request log would print a line per Gmail call; keep it for errors only.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server: BaseWSGIServer = make_server(host, port, self.app, threaded=True)
        self._thread: threading.Thread | None = None

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> SandboxServer:
        # A short poll: stop() waits for the loop to look, and tests stop a sandbox after every test.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_SECONDS},
            name="gmail-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever()
        finally:
            self.sandbox.save()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sandbox.save()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
