"""Turn a raw RFC 822 message into the JSON shapes Gmail's API returns (payload, parts, snippet).

Bodies are transfer-decoded (base64 / quoted-printable) but keep their own charset, as Gmail does, and
are base64url-encoded. Parts with a filename or ``Content-Disposition: attachment`` are referenced by
``attachmentId`` instead of carrying ``data``.
"""

from __future__ import annotations

import base64
import email
import email.policy
import html
import re
from dataclasses import dataclass
from email.message import Message

SNIPPET_LENGTH = 200


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode base64url with or without padding; raises ``ValueError`` on anything else."""
    cleaned = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9_\-+/]*={0,2}", cleaned):
        raise ValueError("not base64url")
    padded = cleaned + "=" * (-len(cleaned) % 4)
    try:
        return base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise ValueError("not base64url") from exc


def parse_raw(raw: bytes) -> Message:
    """Parse with the lenient compat32 policy: broken mail still yields a message (with defects)."""
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def without_header(raw: bytes, name: str) -> bytes:
    """``raw`` without the header field ``name`` (with its folded lines); every other byte kept."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    newline = b"\r\n"
    if not sep or b"\n\n" in head:
        head, sep, body = raw.partition(b"\n\n")
        newline = b"\n"
    wanted = name.lower().encode("ascii")
    kept: list[bytes] = []
    dropping = False
    for line in head.split(newline):
        if line[:1] not in (b" ", b"\t"):  # a new field starts; folded lines belong to the one before
            field_name, colon, _value = line.partition(b":")
            dropping = bool(colon) and field_name.strip().lower() == wanted
        if not dropping:
            kept.append(line)
    return newline.join(kept) + sep + body


def _header_text(value: object) -> str:
    text = str(value)
    # compat32 keeps undeclared 8-bit bytes as surrogate escapes: give them back as UTF-8 when they are,
    # else byte for byte (latin-1), so nothing is lost on the way to JSON.
    raw = text.encode("utf-8", "surrogateescape")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    # Unfold: Gmail returns each header value on one line, encoded-words left as they are.
    return re.sub(r"\r?\n[ \t]*", " ", text).strip()


def _headers(part: Message) -> list[dict[str, str]]:
    return [{"name": name, "value": _header_text(value)} for name, value in part.raw_items()]


def _is_attachment(part: Message) -> bool:
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    return bool(part.get_filename()) or disposition == "attachment"


def _body_bytes(part: Message) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return inner[0].as_bytes()
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


@dataclass
class AttachmentRef:
    part_id: str
    data: bytes


def attachment_id(message_id: str, part_id: str) -> str:
    """Opaque, stable attachment id (Gmail's are opaque too; clients must not parse them)."""
    return "ANGjdJ" + b64url(f"{message_id}:{part_id}".encode()).rstrip("=")


def parse_attachment_id(value: str) -> tuple[str, str] | None:
    if not value.startswith("ANGjdJ"):
        return None
    try:
        decoded = b64url_decode(value[len("ANGjdJ") :]).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    message_id, sep, part_id = decoded.partition(":")
    return (message_id, part_id) if sep else None


def build_payload(message_id: str, part: Message, part_id: str = "") -> dict[str, object]:
    """The ``payload`` object of ``messages.get(format=full)`` for ``part`` (recursively)."""
    node: dict[str, object] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": part.get_filename() or "",
        "headers": _headers(part),
    }
    children = (
        part.get_payload() if part.is_multipart() and part.get_content_type() != "message/rfc822" else None
    )
    if isinstance(children, list):
        node["body"] = {"size": 0}
        node["parts"] = [
            build_payload(message_id, child, f"{part_id}.{index}" if part_id else str(index))
            for index, child in enumerate(children)
        ]
        return node
    data = _body_bytes(part)
    if _is_attachment(part) or part.get_content_type() == "message/rfc822":
        node["body"] = {"attachmentId": attachment_id(message_id, part_id), "size": len(data)}
    else:
        node["body"] = {"size": len(data), "data": b64url(data)} if data else {"size": 0}
    return node


def find_part(part: Message, part_id: str, current: str = "") -> Message | None:
    if current == part_id:
        return part
    if part.is_multipart() and part.get_content_type() != "message/rfc822":
        children = part.get_payload()
        if isinstance(children, list):
            for index, child in enumerate(children):
                child_id = f"{current}.{index}" if current else str(index)
                if part_id == child_id or part_id.startswith(child_id + "."):
                    return find_part(child, part_id, child_id)
    return None


def part_data(part: Message) -> bytes:
    return _body_bytes(part)


def _text_of(part: Message) -> str:
    charset = part.get_content_charset() or "utf-8"
    data = _body_bytes(part)
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def plain_text(message: Message) -> str:
    """The first text/plain (else text/html without tags) of a message, for snippets and search."""
    html_fallback = ""
    for part in message.walk():
        if part.is_multipart() or _is_attachment(part):
            continue
        if part.get_content_type() == "text/plain":
            return _text_of(part)
        if part.get_content_type() == "text/html" and not html_fallback:
            markup = re.sub(r"(?is)<(style|script|head)\b.*?</\1\s*>", " ", _text_of(part))
            html_fallback = html.unescape(re.sub(r"<[^>]*>", " ", markup))
    return html_fallback


def snippet(message: Message) -> str:
    text = " ".join(plain_text(message).split())
    return html.escape(text[:SNIPPET_LENGTH], quote=True)


def has_attachment(message: Message) -> bool:
    return any(_is_attachment(p) for p in message.walk() if not p.is_multipart())
