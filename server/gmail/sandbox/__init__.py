"""A local Gmail-API-compatible server for tests, benchmarks and the demo.

The real google-api-python-client talks to it (``client_options={"api_endpoint": url}``). Nothing in
``server`` outside ``server.gmail`` knows it exists. See docs/sandbox.md for the control API.
"""

from server.gmail.sandbox.api import create_sandbox_app
from server.gmail.sandbox.faults import Gate
from server.gmail.sandbox.runner import SandboxServer
from server.gmail.sandbox.store import Sandbox

__all__ = ["Gate", "Sandbox", "SandboxServer", "create_sandbox_app"]
