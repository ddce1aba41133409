"""Secrets at rest: mailbox credentials are stored encrypted with Fernet (AES-128-CBC + HMAC).

The key comes from ``ENCRYPTION_KEY``; without one, a key is generated on first use and kept in the
instance folder with mode 0600, so a single-host install works out of the box. Production deployments
set ``POSTDESK_ENCRYPTION_KEY`` from their secret manager (docs/configuration.md).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app


class SecretError(RuntimeError):
    """A stored secret cannot be decrypted (wrong or rotated key) or the key itself is malformed."""


def instance_secret(name: str, make: Callable[[], str]) -> str:
    """Read a generated secret from the instance folder, creating it (mode 0600) on first use."""
    path = Path(current_app.instance_path) / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = make()
    # Written whole to a private file, then linked into place: two processes starting together keep
    # one key, and neither can read a half-written file.
    draft = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        os.link(draft, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        draft.unlink(missing_ok=True)
    return value


def _fernet() -> Fernet:
    key = current_app.config.get("ENCRYPTION_KEY") or instance_secret(
        "encryption.key", lambda: Fernet.generate_key().decode()
    )
    try:
        return Fernet(key.encode() if isinstance(key, str) else key)
    except (ValueError, TypeError) as exc:
        raise SecretError("ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64 bytes)") from exc


def encrypt_json(value: dict[str, Any]) -> bytes:
    """Encrypt a JSON-serialisable dict for a ``LargeBinary`` column."""
    return _fernet().encrypt(json.dumps(value, separators=(",", ":")).encode())


def decrypt_json(token: bytes) -> dict[str, Any]:
    """Decrypt what :func:`encrypt_json` produced; a wrong key raises :class:`SecretError`."""
    try:
        data = _fernet().decrypt(token)
    except InvalidToken as exc:
        raise SecretError(
            "stored credentials cannot be decrypted with the configured ENCRYPTION_KEY"
        ) from exc
    result = json.loads(data)
    if not isinstance(result, dict):
        raise SecretError("stored credentials are not a JSON object")
    return result
