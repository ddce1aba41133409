"""Parse a Gmail API message (``messages.get(format=full)``) into what a ticket shows.

Pure functions: values in, values out. Never raises on bad mail: whatever cannot be decoded is kept
as well as it can be and listed in ``problems``. Headers are decoded (RFC 2047 encoded-words, RFC
2231 file names, raw 8-bit); text comes from text/plain or, failing that, from HTML; HTML is
sanitized with nh3 before anything shows it; charsets are the declared one, else detected.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import html as html_lib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header
from html.parser import HTMLParser
from typing import Any

import nh3
from charset_normalizer import from_bytes

#: Stored text and HTML are cut beyond these sizes (a flagged problem); the mail stays in Gmail.
MAX_TEXT_CHARS = 512 * 1024
MAX_HTML_CHARS = 1024 * 1024
#: Guards against pathological MIME trees.
MAX_PARTS = 500
MAX_DEPTH = 40
#: Raw bytes of an undecodable part kept for inspection, at most this many.
MAX_RAW_KEPT = 16 * 1024
#: Charsets tried, in order, when a part declares none (or a wrong one) and is not UTF-8.
GUESS_CHARSETS = ("utf_8", "cp1251", "koi8_r", "cp866", "iso8859_5", "cp1252", "iso8859_1")

#: The one list of automatic-mail markers (DESIGN: "Auto-replies, loop-safe").
AUTOMATIC_PRECEDENCE = frozenset({"bulk", "list", "junk", "auto_reply"})
AUTOMATIC_SUPPRESS = frozenset({"all", "autoreply", "oof"})
AUTOMATIC_SENDERS = re.compile(
    r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|donotreply|bounces?|auto-?reply)([+.-].*)?$"
)
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True)
class Address:
    name: str
    email: str

    def as_text(self) -> str:
        return email.utils.formataddr((self.name, self.email)) if self.name else self.email


@dataclass(frozen=True)
class Attachment:
    filename: str
    mime_type: str
    size: int
    attachment_id: str | None
    part_id: str

    def as_json(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size": self.size,
            "attachment_id": self.attachment_id,
            "part_id": self.part_id,
        }


@dataclass
class ParsedMessage:
    gmail_id: str
    thread_id: str
    label_ids: list[str]
    internal_date: datetime
    subject: str = ""
    sender: Address | None = None
    to: list[Address] = field(default_factory=list)
    cc: list[Address] = field(default_factory=list)
    date: datetime | None = None
    message_id: str | None = None
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    text: str = ""
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    content_type: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    automatic: str | None = None
    problems: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sent_at(self) -> datetime:
        """The Date header when it is believable, else when Gmail received the message."""
        if self.date is not None and abs((self.date - self.internal_date).total_seconds()) < 7 * 86_400:
            return self.date
        return self.internal_date

    @property
    def referenced_ids(self) -> list[str]:
        """Message-IDs this message answers, the most direct (In-Reply-To) first."""
        ordered = self.in_reply_to + list(reversed(self.references))
        return list(dict.fromkeys(ordered))

    def problem(self, kind: str, detail: str, **extra: Any) -> None:
        self.problems.append({"kind": kind, "detail": detail[:500], **extra})


# --- charsets ----------------------------------------------------------------------------------------
def _codec(name: str | None) -> str | None:
    if not name:
        return None
    import codecs

    cleaned = name.strip().strip("\"'").lower()
    aliases = {"win-1251": "cp1251", "cp-1251": "cp1251", "x-cp1251": "cp1251", "windows-1251": "cp1251"}
    cleaned = aliases.get(cleaned, cleaned)
    try:
        return codecs.lookup(cleaned).name
    except LookupError:
        return None


def guess_text(data: bytes) -> tuple[str, str]:
    """Decode bytes of unknown charset: UTF-8 when valid, else the likeliest Cyrillic/Latin charset."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data, cp_isolation=list(GUESS_CHARSETS)).best()
    if best is not None and best.encoding:
        return str(best), best.encoding
    return data.decode("cp1252", errors="replace"), "cp1252"


def decode_bytes(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """Text of ``data`` in its declared charset, else a guess; the second value names a problem, if any."""
    codec = _codec(declared)
    if codec is not None:
        try:
            return data.decode(codec), None
        except UnicodeDecodeError:
            text, guessed = guess_text(data)
            return text, f"declared charset {declared} does not fit the bytes; read as {guessed}"
    if declared and declared.strip().lower() not in {"us-ascii", "ascii"}:
        text, guessed = guess_text(data)
        return text, f"unknown charset {declared!r}; read as {guessed}"
    if data.isascii():
        return data.decode("ascii"), None
    text, guessed = guess_text(data)
    return text, f"8-bit text without a charset; read as {guessed}"


# --- headers -----------------------------------------------------------------------------------------
def decode_header_value(value: str) -> str:
    """An RFC 2047 header as text; raw 8-bit bytes (seen as latin-1 characters) are decoded too."""
    value = re.sub(r"\r?\n[ \t]*", " ", value or "")
    if "=?" not in value:
        return _raw_8bit(value).strip()
    try:
        chunks = decode_header(value)
    except (ValueError, IndexError, binascii.Error):
        return _raw_8bit(value).strip()
    out: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(_raw_8bit(chunk))
        else:
            out.append(decode_bytes(chunk, charset)[0])
    return "".join(out).strip()


def _raw_8bit(value: str) -> str:
    if value.isascii() or any(ord(c) > 0xFF for c in value):
        return value
    return guess_text(value.encode("latin-1"))[0]


def parse_addresses(value: str) -> list[Address]:
    result = []
    for name, address in email.utils.getaddresses([value or ""]):
        address = address.strip().lower()
        if "@" not in address or " " in address or len(address) > 320:
            continue
        result.append(Address(decode_header_value(name)[:200], address))
    return result


def message_ids(value: str) -> list[str]:
    found = _MESSAGE_ID.findall(value or "")
    if not found and value and value.strip() and " " not in value.strip() and len(value.strip()) < 900:
        found = [f"<{value.strip().strip('<>')}>"]
    return [m[:998] for m in found]


def parse_date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def automatic_reason(headers: Mapping[str, str], content_type: str, sender: str) -> str | None:
    """Why this mail is automatic (auto-reply, bounce, list …), or None for a person's mail."""
    auto_submitted = headers.get("auto-submitted", "").strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in AUTOMATIC_PRECEDENCE:
        return f"Precedence: {precedence}"
    for name in ("list-id", "list-unsubscribe"):
        if name in headers:
            return f"mailing list ({name})"
    for name in ("x-autoreply", "x-autorespond", "x-autogenerated"):
        if name in headers:
            return f"{name} header"
    suppress = {s.strip().lower() for s in headers.get("x-auto-response-suppress", "").split(",")}
    if suppress & AUTOMATIC_SUPPRESS:
        return "X-Auto-Response-Suppress"
    if content_type == "multipart/report":
        return "delivery report"
    if "return-path" in headers and headers["return-path"].strip() in {"", "<>"}:
        return "empty Return-Path"
    local = sender.split("@", 1)[0].lower()
    if AUTOMATIC_SENDERS.match(local):
        return f"automatic sender {local}@"
    return None


# --- bodies ------------------------------------------------------------------------------------------
class _TextFromHtml(HTMLParser):
    BLOCKS = frozenset(
        [
            "p",
            "div",
            "br",
            "tr",
            "li",
            "ul",
            "ol",
            "table",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "blockquote",
            "pre",
            "hr",
            "section",
            "article",
            "header",
            "footer",
        ]
    )
    SKIP = frozenset({"script", "style", "head", "title", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
            if tag == "li":
                self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Readable text from HTML: blocks become lines, scripts and styles vanish, entities decode."""
    parser = _TextFromHtml()
    try:
        parser.feed(markup)
        parser.close()
    except (AssertionError, ValueError):  # HTMLParser gives up on some broken markup
        return html_lib.unescape(re.sub(r"<[^>]*>", " ", markup))
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def sanitize_html(markup: str) -> str:
    """HTML safe to show in Postdesk's pages: no scripts, styles, handlers or javascript: links."""
    return nh3.clean(
        markup,
        clean_content_tags={"script", "style", "title", "head"},
        url_schemes={"http", "https", "mailto", "cid"},
        link_rel="noopener noreferrer nofollow",
    )


_QUOTE_HEADER = re.compile(
    r"^\s*(On .{1,200} wrote:|.{1,200} (написал|написала|пишет)\(?а?\)?:|"
    r"-{2,}\s*(Original Message|Исходное сообщение|Forwarded message|Пересылаемое сообщение)\s*-{2,}|"
    r"(From|От|De|Von):\s.+)\s*$",
    re.IGNORECASE,
)
_SIGNATURE = re.compile(
    r"^(-- ?|--|_{5,}|Sent from my \w+.*|Отправлено с (iPhone|iPad|Android|мобильного).*|Get Outlook for .*)$",
    re.IGNORECASE,
)


def split_reply(text: str) -> tuple[str, str]:
    """Split a reply into its new text and what follows (quoted history, signature) for display.

    Conservative: when nothing new would remain, everything counts as new.
    """
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith(">") or _QUOTE_HEADER.match(line) or _SIGNATURE.match(line.rstrip()):
            new = "\n".join(lines[:index]).rstrip()
            if new.strip():
                return new, "\n".join(lines[index:])
            break
    return text, ""


def _part_headers(part: Mapping[str, Any]) -> dict[str, str]:
    result: dict[str, str] = {}
    for header in part.get("headers") or []:
        if isinstance(header, Mapping):
            name, value = str(header.get("name", "")).lower(), str(header.get("value", ""))
            result.setdefault(name, value)
    return result


def _param(header: str, name: str) -> str | None:
    from email.message import Message

    holder = Message()
    holder["Content-Type"] = header or "text/plain"
    value = holder.get_param(name)
    if isinstance(value, tuple):  # RFC 2231
        return email.utils.collapse_rfc2231_value(value)
    return str(value) if value is not None else None


def _walk(part: Mapping[str, Any], depth: int = 0) -> Iterator[Mapping[str, Any]]:
    yield part
    if depth >= MAX_DEPTH:
        return
    for child in part.get("parts") or []:
        if isinstance(child, Mapping):
            yield from _walk(child, depth + 1)


def _body_bytes(part: Mapping[str, Any], parsed: ParsedMessage) -> bytes | None:
    data = (part.get("body") or {}).get("data")
    if not data:
        return None
    try:
        return base64.urlsafe_b64decode(str(data) + "=" * (-len(str(data)) % 4))
    except (binascii.Error, ValueError):
        parsed.problem("bad_base64", "a body part is not valid base64url", part=part.get("partId", ""))
        return None


def parse_gmail_message(message: Mapping[str, Any]) -> ParsedMessage:
    """A :class:`ParsedMessage` from Gmail's JSON; never raises, whatever the JSON or the mail."""
    internal = _internal_date(message.get("internalDate"))
    parsed = ParsedMessage(
        gmail_id=str(message.get("id", "")),
        thread_id=str(message.get("threadId", "")),
        label_ids=[str(x) for x in message.get("labelIds") or []],
        internal_date=internal,
    )
    payload = message.get("payload")
    if not isinstance(payload, Mapping):
        parsed.problem("no_payload", "Gmail returned no MIME structure for this message")
        parsed.text = html_lib.unescape(str(message.get("snippet", "")))
        return parsed
    try:
        _fill(parsed, payload)
    except Exception as exc:  # the contract is "never raises": keep what was read
        parsed.problem("unparsable", f"{type(exc).__name__}: {exc}")
        if not parsed.text:
            parsed.text = html_lib.unescape(str(message.get("snippet", "")))
    return scrub(parsed)


def _no_nul(value: str) -> str:
    return value.replace("\x00", "")


def scrub(parsed: ParsedMessage) -> ParsedMessage:
    """Drop NUL characters everywhere: mail may carry them, PostgreSQL text cannot."""
    parsed.subject = _no_nul(parsed.subject)
    parsed.text = _no_nul(parsed.text)
    parsed.html = _no_nul(parsed.html) if parsed.html is not None else None
    if parsed.sender is not None:
        parsed.sender = Address(_no_nul(parsed.sender.name), _no_nul(parsed.sender.email))
    parsed.to = [Address(_no_nul(a.name), _no_nul(a.email)) for a in parsed.to]
    parsed.cc = [Address(_no_nul(a.name), _no_nul(a.email)) for a in parsed.cc]
    parsed.message_id = _no_nul(parsed.message_id) if parsed.message_id else None
    parsed.in_reply_to = [_no_nul(m) for m in parsed.in_reply_to]
    parsed.references = [_no_nul(m) for m in parsed.references]
    parsed.attachments = [
        Attachment(_no_nul(a.filename), _no_nul(a.mime_type), a.size, a.attachment_id, a.part_id)
        for a in parsed.attachments
    ]
    for problem in parsed.problems:
        problem["detail"] = _no_nul(str(problem.get("detail", "")))
    return parsed


def text_from_raw(raw: bytes, parsed: ParsedMessage) -> None:
    """Recover a body from the raw RFC 822 bytes when the MIME structure gave nothing readable."""
    head, sep, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    text, _ = decode_bytes(body if sep else head, None)
    parsed.text = _no_nul(text.strip()[:MAX_TEXT_CHARS])
    parsed.problems = [p for p in parsed.problems if p["kind"] != "empty_body"]
    parsed.problem("raw_body", "broken MIME structure: the text is the raw message body, boundaries included")


def _internal_date(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(UTC)


def _fill(parsed: ParsedMessage, payload: Mapping[str, Any]) -> None:
    headers = _part_headers(payload)
    parsed.headers = headers
    parsed.content_type = str(payload.get("mimeType", "")).lower()
    parsed.subject = decode_header_value(headers.get("subject", ""))[:2000]
    senders = parse_addresses(headers.get("from", ""))
    if senders:
        parsed.sender = senders[0]
    elif "from" in headers:
        parsed.problem("bad_from", "the From header has no usable address")
    else:
        parsed.problem("no_from", "the message has no From header")
    parsed.to = parse_addresses(headers.get("to", ""))
    parsed.cc = parse_addresses(headers.get("cc", ""))
    parsed.date = parse_date(headers.get("date", ""))
    if parsed.date is None:
        parsed.problem("no_date", "missing or unreadable Date header; using Gmail's receive time")
    ids = message_ids(headers.get("message-id", ""))
    parsed.message_id = ids[0] if ids else None
    parsed.in_reply_to = message_ids(headers.get("in-reply-to", ""))[:5]
    parsed.references = message_ids(headers.get("references", ""))[-50:]
    parsed.automatic = automatic_reason(
        headers, parsed.content_type, parsed.sender.email if parsed.sender else ""
    )

    plain: list[str] = []
    html_parts: list[str] = []
    for count, part in enumerate(_walk(payload)):
        if count >= MAX_PARTS:
            parsed.problem("too_many_parts", f"only the first {MAX_PARTS} MIME parts were read")
            break
        _read_part(parsed, part, plain, html_parts)
    plain = [p.replace("\r\n", "\n").replace("\r", "\n") for p in plain]
    html = "\n".join(html_parts)
    text = "\n\n".join(p.strip("\n") for p in plain) if plain else html_to_text(html) if html else ""
    if not text and not html and not parsed.attachments and parsed.content_type.startswith("multipart/"):
        parsed.problem("empty_body", "no readable part (broken MIME boundaries?); the raw message is needed")
    if len(text) > MAX_TEXT_CHARS:
        parsed.problem("text_truncated", f"text cut at {MAX_TEXT_CHARS} characters")
        text = text[:MAX_TEXT_CHARS]
    parsed.text = text.replace("\r\n", "\n")
    if html:
        if len(html) > MAX_HTML_CHARS:
            parsed.problem("html_truncated", f"HTML cut at {MAX_HTML_CHARS} characters")
            html = html[:MAX_HTML_CHARS]
        parsed.html = sanitize_html(html)


def _read_part(parsed: ParsedMessage, part: Mapping[str, Any], plain: list[str], html: list[str]) -> None:
    mime_type = str(part.get("mimeType", "")).lower()
    if mime_type.startswith("multipart/"):
        return
    headers = _part_headers(part)
    content_type = headers.get("content-type", mime_type)
    disposition = headers.get("content-disposition", "")
    filename = decode_header_value(str(part.get("filename") or "")) or _filename_from(
        disposition, content_type
    )
    body = part.get("body") or {}
    disposition_kind = disposition.split(";")[0].strip().lower()
    if filename or disposition_kind == "attachment" or not (mime_type.startswith("text/") or not mime_type):
        # A file. Inline images (referenced by Content-ID from the HTML) are part of the body, not files.
        if (
            "content-id" in headers
            and disposition_kind != "attachment"
            and not filename.lower().endswith(".pdf")
        ):
            return
        parsed.attachments.append(
            Attachment(
                filename=filename or "unnamed",
                mime_type=mime_type or "application/octet-stream",
                size=int(body.get("size") or 0),
                attachment_id=body.get("attachmentId"),
                part_id=str(part.get("partId", "")),
            )
        )
        return
    if mime_type not in {"text/plain", "text/html", ""}:
        return
    data = _body_bytes(part, parsed)
    if data is None:
        return
    charset = _param(content_type, "charset")
    text, problem = decode_bytes(data, charset)
    if problem:
        extra: dict[str, Any] = {"part": str(part.get("partId", ""))}
        if "unknown charset" in problem or "does not fit" in problem:
            extra["raw_base64"] = base64.b64encode(data[:MAX_RAW_KEPT]).decode()
        parsed.problem("charset", problem, **extra)
    (html if mime_type == "text/html" else plain).append(text)


def _filename_from(disposition: str, content_type: str) -> str:
    for header, name in ((disposition, "filename"), (content_type, "name")):
        if header and name in header.lower():
            from email.message import Message

            holder = Message()
            holder["Content-Disposition"] = header
            value = holder.get_filename() if name == "filename" else _param(header, "name")
            if value:
                return decode_header_value(value)
    return ""
