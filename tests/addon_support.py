"""What the add-on tests need: Google-style signing keys on loopback, ID tokens, the card schema."""

from __future__ import annotations

import json
import threading
import time
import uuid
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.auth import crypt, jwt

from server.gmail.sandbox.push import signing_key

CLIENT_ID = "1234567890-postdesk.apps.googleusercontent.com"
DISCOVERY_DOCUMENTS = Path(__import__("googleapiclient").__file__).parent / "discovery_cache" / "documents"


@cache
def _key_and_cert(kid: str, slot: int = 0) -> tuple[crypt.RSASigner, str]:
    """A key for ``kid`` made once per test process (an RSA key takes ~0.1 s); ``slot`` tells keys of
    the same kid apart (a forger's key is another slot)."""
    return signing_key(kid, days=30)


class GoogleKeys:
    """A certs endpoint like https://www.googleapis.com/oauth2/v1/certs, on loopback, and a signer.

    ``forger`` is a key Google never published: its tokens must be refused.
    """

    def __init__(self) -> None:
        self.signer, cert = _key_and_cert("postdesk-test-key")
        self.forger, _ = _key_and_cert("postdesk-test-key", 1)  # same kid, another key
        body = json.dumps({"postdesk-test-key": cert}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A path of its own: the backend caches keys by URL, and a later test may get the same port.
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/oauth2/v1/certs/{uuid.uuid4().hex}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def token(self, email: str, *, forged: bool = False, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": "https://accounts.google.com",
            "aud": CLIENT_ID,
            "sub": str(abs(hash(email))),
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + 3600,
        } | claims
        return jwt.encode(self.forger if forged else self.signer, payload).decode()


@cache
def discovery_schema(document: str, root: str, prefix: str) -> dict[str, Any]:
    """``root`` of a discovery document shipped with google-api-python-client, as a strict JSON Schema
    (an unknown field is an error); ``prefix`` picks the schemas it may refer to."""
    schemas = json.loads((DISCOVERY_DOCUMENTS / document).read_text(encoding="utf-8"))["schemas"]

    def convert(node: dict[str, Any]) -> dict[str, Any]:
        if "$ref" in node:
            return {"$ref": f"#/definitions/{node['$ref']}"}
        kind = node.get("type")
        if kind == "object" and "properties" in node:
            return {
                "type": "object",
                "properties": {name: convert(child) for name, child in node["properties"].items()},
                "additionalProperties": False,
            }
        if kind == "object":
            return {"type": "object"}
        if kind == "array":
            return {"type": "array", "items": convert(node.get("items", {}))}
        if kind == "string":
            # int64 values travel as strings in discovery JSON
            result: dict[str, Any] = {"type": "string"}
            if "enum" in node:
                result["enum"] = node["enum"]
            return result
        if kind == "integer":
            return {"type": "integer"}
        if kind == "number":
            return {"type": "number"}
        if kind == "boolean":
            return {"type": "boolean"}
        return {}

    definitions = {name: convert(schema) for name, schema in schemas.items() if name.startswith(prefix)}
    return {"$ref": f"#/definitions/{root}", "definitions": definitions}


def card_schema() -> dict[str, Any]:
    """``GoogleAppsCardV1Card`` from the chat.v1 discovery document, as a strict JSON Schema."""
    return discovery_schema("chat.v1.json", "GoogleAppsCardV1Card", "GoogleAppsCardV1")
