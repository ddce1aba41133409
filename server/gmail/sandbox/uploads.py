"""Resumable uploads (``uploadType=resumable``) as Google's upload protocol describes them.

The first request (metered as the method it starts) opens a session and answers its URI in
``Location``; the bytes follow in one or more ``PUT`` requests with ``Content-Range``. An unfinished
session answers ``308`` with the ``Range`` it holds (also to a status query, ``bytes */total``); the
request that completes it answers the method's result, and so does every later status query, so a
client that lost the final answer learns it instead of sending twice.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.gmail.sandbox.errors import GmailError, invalid, not_found

#: Open sessions kept at most (the oldest is forgotten first); Google keeps one for a week.
MAX_SESSIONS = 100
_RANGE = re.compile(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)")


@dataclass
class Upload:
    user: str
    metadata: dict[str, Any]
    declared_length: int | None
    received: bytearray = field(default_factory=bytearray)
    result: dict[str, Any] | None = None


@dataclass(frozen=True)
class Progress:
    """What a PUT answers: the method's result when complete, else how many bytes are held."""

    result: dict[str, Any] | None
    received: int


class Uploads:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.lock = threading.Lock()
        self.sessions: OrderedDict[str, Upload] = OrderedDict()

    def start(self, user: str, metadata: dict[str, Any], declared_length: str | None) -> str:
        length = None
        if declared_length is not None:
            if not declared_length.strip().isdecimal():
                raise invalid("X-Upload-Content-Length must be a number of bytes")
            length = int(declared_length)
            if length > self.max_bytes:
                raise GmailError(413, "uploadTooLarge", "Request Entity Too Large")
        upload_id = uuid.uuid4().hex
        with self.lock:
            self.sessions[upload_id] = Upload(user, metadata, length)
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
        return upload_id

    def put(
        self,
        upload_id: str,
        user: str,
        content_range: str | None,
        data: bytes,
        finish: Callable[[Upload, bytes], dict[str, Any]],
    ) -> Progress:
        """Take one PUT of session ``upload_id``; ``finish`` performs the method on the whole media."""
        with self.lock:
            upload = self.sessions.get(upload_id)
            if upload is None or upload.user != user:
                raise not_found("No active upload session with this id.")
            if upload.result is not None:
                return Progress(upload.result, upload.declared_length or 0)
            first, total = self._range(content_range, data, upload)
            if first is None or first != len(upload.received):
                # A status query, or bytes that do not continue what is held: say what is held.
                return Progress(None, len(upload.received))
            upload.received += data
            if total is None or len(upload.received) < total:
                return Progress(None, len(upload.received))
            media = bytes(upload.received)
            try:
                upload.result = finish(upload, media)
            except GmailError:
                del upload.received[first:]  # refused: the last request may be sent again
                raise
            upload.declared_length = len(media)
            upload.received = bytearray()  # the message is stored; keep only the answer
            return Progress(upload.result, len(media))

    def _range(self, header: str | None, data: bytes, upload: Upload) -> tuple[int | None, int | None]:
        """(first byte of ``data`` or None for a status query, total size or None while unknown)."""
        total: int | None
        if header is None:  # the whole media in one request
            first, last, total = 0, len(data) - 1, len(data)
        else:
            match = _RANGE.fullmatch(header.strip())
            if match is None:
                raise invalid(f"Content-Range {header!r} is not 'bytes first-last/total'")
            total = None if match[3] == "*" else int(match[3])
            if match[1] is None:
                return None, total
            first, last = int(match[1]), int(match[2])
        if last - first + 1 != len(data):
            raise invalid("Content-Range does not match the bytes sent")
        if total is not None:
            if total > self.max_bytes:
                raise GmailError(413, "uploadTooLarge", "Request Entity Too Large")
            if upload.declared_length is not None and total != upload.declared_length:
                raise invalid("Content-Range total differs from X-Upload-Content-Length")
            if last >= total:
                raise invalid("Content-Range ends beyond its total")
        return first, total
