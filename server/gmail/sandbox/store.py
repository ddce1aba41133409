"""The sandbox's mailboxes: messages, threads, labels and history, held in memory (optionally a file).

This module is Gmail's behaviour without HTTP: ids, history ordering and expiry, threading, labels,
search and the JSON resources. :mod:`server.gmail.sandbox.api` puts HTTP around it.
"""

from __future__ import annotations

import base64
import email.policy
import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from email.utils import formatdate, getaddresses, make_msgid
from functools import cached_property
from pathlib import Path
from typing import Any

from server.gmail.sandbox import payload
from server.gmail.sandbox.errors import GmailError, invalid, not_found
from server.gmail.sandbox.search import Searchable, compile_query

SYSTEM_LABELS = (
    "INBOX", "SENT", "DRAFT", "TRASH", "SPAM", "UNREAD", "STARRED", "IMPORTANT", "CHAT",
    "CATEGORY_PERSONAL", "CATEGORY_SOCIAL", "CATEGORY_PROMOTIONS", "CATEGORY_UPDATES", "CATEGORY_FORUMS",
)  # fmt: skip
HISTORY_TYPES = ("messageAdded", "messageDeleted", "labelAdded", "labelRemoved")
#: The colours Gmail lets a label have (the API reference of ``LabelColor``): text and background alike.
LABEL_COLORS = frozenset(
    " ".join(
        (
            "#000000 #434343 #666666 #999999 #cccccc #efefef #f3f3f3 #ffffff #fb4c2f #ffad47 #fad165 #16a766",
            "#43d692 #4a86e8 #a479e2 #f691b3 #f6c5be #ffe6c7 #fef1d1 #b9e4d0 #c6f3de #c9daf8 #e4d7f5 #fcdee8",
            "#efa093 #ffd6a2 #fce8b3 #89d3b2 #a0eac9 #a4c2f4 #d0bcf1 #fbc8d9 #e66550 #ffbc6b #fcda83 #44b984",
            "#68dfa9 #6d9eeb #b694e8 #f7a7c0 #cc3a21 #eaa041 #f2c960 #149e60 #3dc789 #3c78d8 #8e63ce #e07798",
            "#ac2b16 #cf8933 #d5ae49 #0b804b #2a9c68 #285bac #653e9b #b65775 #822111 #a46a21 #aa8831 #076239",
            "#1a764d #1c4587 #41236d #83334c",
        )
    ).split()
)
#: messages.batchModify takes at most this many ids (Gmail's reference).
MAX_BATCH_MODIFY = 1000
#: The longest label name this sandbox takes (its own guard: Google documents no number).
MAX_LABEL_NAME = 225
FIRST_HISTORY_ID = 10_000
FIRST_MESSAGE_ID = 0x190A_0000_0000_0000
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 100
WATCH_SECONDS = 7 * 86_400
_REPLY_PREFIX = re.compile(
    r"^\s*((re|fwd?|aw|sv|tr|отв|ответ|пересл|fw)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _label_color(value: Any) -> dict[str, str]:
    """A label's colour as Gmail accepts it: both colours, each one of :data:`LABEL_COLORS`."""
    if not isinstance(value, dict):
        raise invalid("Invalid color")
    text, background = value.get("textColor"), value.get("backgroundColor")
    if not isinstance(text, str) or not isinstance(background, str):
        raise invalid("Invalid color: textColor and backgroundColor are both required")
    if text.lower() not in LABEL_COLORS or background.lower() not in LABEL_COLORS:
        raise invalid(f"Label color {text}/{background} is not on the allowed color palette")
    return {"textColor": text.lower(), "backgroundColor": background.lower()}


def subject_key(subject: str) -> str:
    """A subject as Gmail compares it for threading: reply/forward prefixes off, case and spaces folded."""
    return " ".join(_REPLY_PREFIX.sub("", subject or "").lower().split())


def _message_ids(value: str | None) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value or "")


def _decoded_header(message: Message, name: str) -> str:
    """A header's text as RFC 5322 and RFC 2047 read it: unfolded, adjacent encoded words joined, the
    whitespace between an encoded word and plain text kept (``Re: =?utf-8?b?…?=`` CRLF `` (10006)``
    is ``Re: … (10006)``), as Gmail compares subjects. The modern policy's parser does exactly this;
    a value it cannot read is kept as it is, unfolded."""
    value = message.get(name)
    if value is None:
        return ""
    raw = str(value)
    try:
        return str(email.policy.default.header_fetch_parse(name, raw))
    except (LookupError, UnicodeError, ValueError, TypeError, IndexError, AttributeError):
        return re.sub(r"\r?\n[ \t]*", " ", raw)


_GMAIL_ID = re.compile(r"^[0-9a-f]{1,32}$")  # what a Gmail message id looks like


@dataclass
class StoredMessage:
    id: str
    thread_id: str
    raw: bytes
    label_ids: list[str]
    internal_date: int  # epoch milliseconds
    history_id: int

    @cached_property
    def parsed(self) -> Message:
        return payload.parse_raw(self.raw)

    @cached_property
    def rfc822_id(self) -> str:
        ids = _message_ids(str(self.parsed.get("Message-ID", "")))
        return ids[0] if ids else ""

    @cached_property
    def references(self) -> list[str]:
        refs = _message_ids(str(self.parsed.get("References", "")))
        return refs + [r for r in _message_ids(str(self.parsed.get("In-Reply-To", ""))) if r not in refs]

    @cached_property
    def subject(self) -> str:
        return _decoded_header(self.parsed, "Subject")

    def searchable(self, label_names: dict[str, str]) -> Searchable:
        return Searchable(
            rfc822_id=self.rfc822_id,
            internal_date_ms=self.internal_date,
            label_ids=frozenset(self.label_ids),
            label_names=frozenset(label_names.get(x, x) for x in self.label_ids),
            sender=_decoded_header(self.parsed, "From"),
            recipients=" ".join(_decoded_header(self.parsed, h) for h in ("To", "Cc", "Delivered-To")),
            subject=self.subject,
            text=payload.plain_text(self.parsed),
            has_attachment=payload.has_attachment(self.parsed),
        )


@dataclass
class HistoryRecord:
    id: int
    kind: str
    message_id: str
    thread_id: str
    changed_labels: list[str]
    labels_after: list[str]

    def as_json(self) -> dict[str, Any]:
        message = {"id": self.message_id, "threadId": self.thread_id}
        record: dict[str, Any] = {"id": str(self.id), "messages": [message]}
        if self.kind == "messageAdded":
            record["messagesAdded"] = [{"message": {**message, "labelIds": self.labels_after}}]
        elif self.kind == "messageDeleted":
            record["messagesDeleted"] = [{"message": message}]
        else:
            key = "labelsAdded" if self.kind == "labelAdded" else "labelsRemoved"
            record[key] = [
                {"message": {**message, "labelIds": self.labels_after}, "labelIds": self.changed_labels}
            ]
        return record


@dataclass
class UserMailbox:
    email: str
    history_id: int = FIRST_HISTORY_ID
    history_floor: int = FIRST_HISTORY_ID  # history.list below this answers 404
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, StoredMessage] = field(default_factory=dict)
    history: list[HistoryRecord] = field(default_factory=list)
    by_rfc822: dict[str, list[str]] = field(default_factory=dict)
    next_label: int = 1
    watch_expiration: int | None = None

    def __post_init__(self) -> None:
        for name in SYSTEM_LABELS:
            self.labels.setdefault(name, {"id": name, "name": name, "type": "system"})

    def label_names(self) -> dict[str, str]:
        return {label_id: label["name"] for label_id, label in self.labels.items()}

    def record(self, kind: str, message: StoredMessage, changed: list[str] | None = None) -> None:
        self.history_id += 1
        message.history_id = self.history_id
        self.history.append(
            HistoryRecord(
                self.history_id, kind, message.id, message.thread_id, changed or [], list(message.label_ids)
            )
        )


def _page(items: list[Any], page_token: str | None, max_results: int) -> tuple[list[Any], str | None]:
    start = 0
    if page_token:
        try:
            start = int(base64.urlsafe_b64decode(page_token.encode() + b"==").decode())
        except ValueError as exc:
            raise invalid("Invalid pageToken") from exc
        if start < 0 or start > len(items):
            raise invalid("Invalid pageToken")
    end = start + max_results
    token = base64.urlsafe_b64encode(str(end).encode()).decode().rstrip("=") if end < len(items) else None
    return items[start:end], token


def page_size(value: str | None) -> int:
    if value is None or value == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(value)
    except ValueError as exc:
        raise invalid(f"Invalid value for maxResults: {value}") from exc
    if size < 1:
        raise invalid(f"Invalid value for maxResults: {value}")
    return min(size, MAX_PAGE_SIZE)


class Sandbox:
    """All mailboxes of one sandbox server. Thread-safe: every public method takes the lock."""

    def __init__(self, state_file: str | os.PathLike[str] | None = None) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, UserMailbox] = {}
        self.default_user: str | None = None
        self.next_message_id = FIRST_MESSAGE_ID
        self.state_file = Path(state_file) if state_file else None
        #: Called with (address, historyId) after each change of a mailbox with a watch (push).
        self.pusher: Callable[[str, int], None] | None = None
        self._pushed: dict[str, int] = {}
        if self.state_file and self.state_file.exists():
            self._load(self.state_file)

    # --- users -------------------------------------------------------------------------------------
    def user(self, user_id: str) -> UserMailbox:
        """``me`` is the default (first) mailbox; any other valid address is created on first use."""
        with self.lock:
            if user_id == "me":
                if self.default_user is None:
                    raise GmailError(400, "failedPrecondition", "Mail service not enabled")
                return self.users[self.default_user]
            address = user_id.strip().lower()
            if not _EMAIL.match(address):
                raise invalid(f"Invalid user id value: {user_id}")
            if address not in self.users:
                self.users[address] = UserMailbox(address)
                self.default_user = self.default_user or address
            return self.users[address]

    def _new_id(self) -> str:
        self.next_message_id += 1
        return f"{self.next_message_id:016x}"

    def _message(self, user: UserMailbox, message_id: str) -> StoredMessage:
        message = user.messages.get(message_id)
        if message is None:
            raise not_found()
        return message

    def _check_labels(self, user: UserMailbox, label_ids: list[str]) -> None:
        for label_id in label_ids:
            if label_id not in user.labels:
                raise invalid(f"Invalid label: {label_id}")

    def _thread_of(self, user: UserMailbox, refs: list[str], subject: str) -> str | None:
        key = subject_key(subject)
        for ref in reversed(refs):  # the most recent reference first
            for message_id in user.by_rfc822.get(ref, []):
                other = user.messages.get(message_id)
                if other is not None and subject_key(other.subject) == key:
                    return other.thread_id
        return None

    def _store(
        self,
        user: UserMailbox,
        raw: bytes,
        labels: list[str],
        internal_date: int,
        thread: str | None,
        *,
        new_thread: bool = False,
    ) -> StoredMessage:
        message_id = self._new_id()
        message = StoredMessage(message_id, "", raw, [], internal_date, user.history_id)
        if new_thread:
            message.thread_id = message_id
        else:
            message.thread_id = (
                thread or self._thread_of(user, message.references, message.subject) or message_id
            )
        message.label_ids = list(dict.fromkeys(labels))
        user.messages[message_id] = message
        if message.rfc822_id:
            user.by_rfc822.setdefault(message.rfc822_id, []).append(message_id)
        user.record("messageAdded", message)
        self._save()
        return message

    # --- delivery and sending ---------------------------------------------------------------------
    def deliver(
        self,
        address: str,
        raw: bytes,
        *,
        label_ids: list[str] | None = None,
        internal_date: int | None = None,
        date_from_header: bool = False,
    ) -> StoredMessage:
        """Put a received message into a mailbox (INBOX + UNREAD, or SENT when it is from the owner)."""
        with self.lock:
            user = self.user(address)
            parsed = payload.parse_raw(raw)
            if internal_date is None and date_from_header:
                internal_date = _header_date_ms(parsed)
            if label_ids is None:
                senders = [a.lower() for _, a in getaddresses([str(parsed.get("From", ""))])]
                label_ids = ["SENT"] if user.email in senders else ["INBOX", "UNREAD", "CATEGORY_PERSONAL"]
            self._check_labels(user, label_ids)
            return self._store(user, raw, label_ids, internal_date or _now_ms(), None)

    def send(self, user_id: str, raw: bytes, thread_id: str | None) -> StoredMessage:
        """``messages.send``: Gmail adds Message-ID/Date/From when missing and threads by its rule."""
        with self.lock:
            user = self.user(user_id)
            parsed = payload.parse_raw(raw)
            if not parsed.get("To") and not parsed.get("Cc") and not parsed.get("Bcc"):
                raise invalid("Recipient address required")
            extra = b""
            if not parsed.get("Message-ID"):
                extra += f"Message-ID: {make_msgid(domain='mail.gmail.com')}\r\n".encode()
            if not parsed.get("Date"):
                extra += f"Date: {formatdate(localtime=False)}\r\n".encode()
            if not parsed.get("From"):
                extra += f"From: {user.email}\r\n".encode()
            raw = extra + raw
            thread: str | None = None
            new_thread = False
            if thread_id:
                members = [m for m in user.messages.values() if m.thread_id == thread_id]
                if not members:
                    raise not_found()
                probe = StoredMessage("", "", raw, [], 0, 0)
                # Gmail's rule: the thread is kept only if References/In-Reply-To name a message of it
                # and the subject matches; otherwise the message starts a thread of its own.
                member_ids = {m.rfc822_id for m in members}
                subjects = {subject_key(m.subject) for m in members}
                if any(r in member_ids for r in probe.references) and subject_key(probe.subject) in subjects:
                    thread = thread_id
                else:
                    new_thread = True
            sent = self._store(user, raw, ["SENT"], _now_ms(), thread, new_thread=new_thread)
            # Mail between two sandbox mailboxes arrives, as it would between two Gmail users: the
            # sender's copy keeps Bcc, the delivered copies do not (Gmail strips it when it sends).
            recipients = getaddresses([str(parsed.get(h, "")) for h in ("To", "Cc", "Bcc")])
            delivered = payload.without_header(raw, "Bcc")
            for address in dict.fromkeys(a.strip().lower() for _name, a in recipients):
                if address in self.users and address != user.email:
                    self.deliver(address, delivered)
            return sent

    # --- reading ------------------------------------------------------------------------------------
    def message_json(
        self, user: UserMailbox, message: StoredMessage, fmt: str, headers: list[str]
    ) -> dict[str, Any]:
        result: dict[str, Any] = {
            "id": message.id,
            "threadId": message.thread_id,
            "labelIds": list(message.label_ids),
            "snippet": payload.snippet(message.parsed),
            "sizeEstimate": len(message.raw),
            "historyId": str(message.history_id),
            "internalDate": str(message.internal_date),
        }
        if fmt == "full":
            result["payload"] = payload.build_payload(message.id, message.parsed)
        elif fmt == "metadata":
            wanted = {h.lower() for h in headers}
            full = payload.build_payload(message.id, message.parsed)
            all_headers = full["headers"]
            assert isinstance(all_headers, list)
            result["payload"] = {
                "partId": "",
                "mimeType": full["mimeType"],
                "filename": "",
                "headers": [h for h in all_headers if not wanted or h["name"].lower() in wanted],
            }
        elif fmt == "raw":
            result["raw"] = payload.b64url(message.raw)
        elif fmt != "minimal":
            raise invalid(f"Invalid value for format: {fmt}")
        return result

    def get_message(self, user_id: str, message_id: str, fmt: str, headers: list[str]) -> dict[str, Any]:
        with self.lock:
            user = self.user(user_id)
            return self.message_json(user, self._message(user, message_id), fmt, headers)

    def get_thread(self, user_id: str, thread_id: str, fmt: str, headers: list[str]) -> dict[str, Any]:
        with self.lock:
            user = self.user(user_id)
            members = sorted(
                (m for m in user.messages.values() if m.thread_id == thread_id),
                key=lambda m: (m.internal_date, m.id),
            )
            if not members:
                raise not_found()
            return {
                "id": thread_id,
                "historyId": str(max(m.history_id for m in members)),
                "messages": [self.message_json(user, m, fmt, headers) for m in members],
            }

    def list_messages(
        self,
        user_id: str,
        *,
        query: str = "",
        label_ids: list[str] | None = None,
        include_spam_trash: bool = False,
        page_token: str | None = None,
        max_results: int = DEFAULT_PAGE_SIZE,
    ) -> dict[str, Any]:
        with self.lock:
            user = self.user(user_id)
            predicate, names_hidden = compile_query(query, _now_ms())
            names = user.label_names()
            wanted = set(label_ids or [])
            matches = []
            for message in user.messages.values():
                labels = set(message.label_ids)
                if not include_spam_trash and not names_hidden and labels & {"SPAM", "TRASH"}:
                    continue
                if not wanted <= labels:
                    continue
                if query and not predicate(message.searchable(names)):
                    continue
                matches.append(message)
            matches.sort(key=lambda m: (m.internal_date, m.id), reverse=True)
            page, token = _page(matches, page_token, max_results)
            result: dict[str, Any] = {"resultSizeEstimate": len(matches)}
            if page:
                result["messages"] = [{"id": m.id, "threadId": m.thread_id} for m in page]
            if token:
                result["nextPageToken"] = token
            return result

    def attachment(self, user_id: str, message_id: str, attachment_id: str) -> dict[str, Any]:
        with self.lock:
            user = self.user(user_id)
            message = self._message(user, message_id)
            ref = payload.parse_attachment_id(attachment_id)
            part = payload.find_part(message.parsed, ref[1]) if ref and ref[0] == message_id else None
            if part is None:
                raise invalid("Invalid attachment token")
            data = payload.part_data(part)
            return {"attachmentId": attachment_id, "size": len(data), "data": payload.b64url(data)}

    def history(
        self,
        user_id: str,
        start_history_id: str | None,
        *,
        history_types: list[str],
        label_id: str | None,
        page_token: str | None,
        max_results: int,
    ) -> dict[str, Any]:
        with self.lock:
            user = self.user(user_id)
            if not start_history_id:
                raise invalid("Missing required parameter: startHistoryId")
            try:
                start = int(start_history_id)
            except ValueError as exc:
                raise invalid(f"Invalid value for startHistoryId: {start_history_id}") from exc
            if start < user.history_floor:
                raise not_found()
            for kind in history_types:
                if kind not in HISTORY_TYPES:
                    raise invalid(f"Invalid value for historyTypes: {kind}")
            records = [
                r
                for r in user.history
                if r.id > start
                and (not history_types or r.kind in history_types)
                and (label_id is None or label_id in r.labels_after or label_id in r.changed_labels)
            ]
            page, token = _page(records, page_token, max_results)
            result: dict[str, Any] = {"historyId": str(user.history_id)}
            if page:
                result["history"] = [r.as_json() for r in page]
            if token:
                result["nextPageToken"] = token
            return result

    def profile(self, user_id: str) -> dict[str, Any]:
        with self.lock:
            user = self.user(user_id)
            return {
                "emailAddress": user.email,
                "messagesTotal": len(user.messages),
                "threadsTotal": len({m.thread_id for m in user.messages.values()}),
                "historyId": str(user.history_id),
            }

    # --- changing -----------------------------------------------------------------------------------
    def modify(self, user_id: str, message_id: str, add: list[str], remove: list[str]) -> dict[str, Any]:
        with self.lock:
            user = self.user(user_id)
            message = self._message(user, message_id)
            self._check_labels(user, add + remove)
            self._relabel(user, message, add, remove)
            self._save()
            return {"id": message.id, "threadId": message.thread_id, "labelIds": list(message.label_ids)}

    def _relabel(self, user: UserMailbox, message: StoredMessage, add: list[str], remove: list[str]) -> None:
        """Add and remove labels on one message; each change is a history record (as in Gmail)."""
        added = [x for x in dict.fromkeys(add) if x not in message.label_ids and x not in remove]
        removed = [x for x in dict.fromkeys(remove) if x in message.label_ids]
        if added:
            message.label_ids.extend(added)
            user.record("labelAdded", message, added)
        if removed:
            message.label_ids = [x for x in message.label_ids if x not in removed]
            user.record("labelRemoved", message, removed)

    def modify_thread(
        self, user_id: str, thread_id: str, add: list[str], remove: list[str]
    ) -> dict[str, Any]:
        """threads.modify: the same change on every message of the thread; the thread comes back."""
        with self.lock:
            user = self.user(user_id)
            members = sorted(
                (m for m in user.messages.values() if m.thread_id == thread_id), key=lambda m: m.id
            )
            if not members:
                raise not_found()
            self._check_labels(user, add + remove)
            for message in members:
                self._relabel(user, message, add, remove)
            self._save()
            return {
                "id": thread_id,
                "historyId": str(max(m.history_id for m in members)),
                "messages": [
                    {"id": m.id, "threadId": m.thread_id, "labelIds": list(m.label_ids)} for m in members
                ],
            }

    def batch_modify(self, user_id: str, ids: list[str], add: list[str], remove: list[str]) -> None:
        """messages.batchModify: up to 1,000 ids, changed one by one (each change a history record).
        An id that does not exist is skipped (clients report Gmail ignoring one); one that is no
        Gmail id at all is refused, as Gmail refuses it on messages.get ("Invalid id value")."""
        if not ids:
            raise invalid("No message ids given")
        if any(not _GMAIL_ID.match(str(i)) for i in ids):
            raise invalid("Invalid id value")
        if len(ids) > MAX_BATCH_MODIFY:
            raise invalid(f"Too many ids: at most {MAX_BATCH_MODIFY} per request")
        with self.lock:
            user = self.user(user_id)
            self._check_labels(user, add + remove)
            for message_id in dict.fromkeys(ids):
                message = user.messages.get(message_id)
                if message is not None:
                    self._relabel(user, message, add, remove)
            self._save()

    def trash(self, user_id: str, message_id: str, *, untrash: bool = False) -> dict[str, Any]:
        if untrash:
            return self.modify(user_id, message_id, [], ["TRASH"])
        return self.modify(user_id, message_id, ["TRASH"], [])

    def delete(self, user_id: str, message_id: str) -> None:
        with self.lock:
            user = self.user(user_id)
            message = self._message(user, message_id)
            del user.messages[message_id]
            if message.rfc822_id:
                user.by_rfc822[message.rfc822_id] = [
                    x for x in user.by_rfc822[message.rfc822_id] if x != message_id
                ]
            user.record("messageDeleted", message)
            self._save()

    def list_labels(self, user_id: str) -> dict[str, Any]:
        with self.lock:
            return {"labels": [dict(label) for label in self.user(user_id).labels.values()]}

    def get_label(self, user_id: str, label_id: str) -> dict[str, Any]:
        with self.lock:
            label = self.user(user_id).labels.get(label_id)
            if label is None:
                raise not_found()
            return dict(label)

    def create_label(self, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            user = self.user(user_id)
            name = self._label_name(user, body.get("name"), None)
            label_id = f"Label_{user.next_label}"
            user.next_label += 1
            label = {
                "id": label_id,
                "name": name,
                "type": "user",
                "messageListVisibility": body.get("messageListVisibility", "show"),
                "labelListVisibility": body.get("labelListVisibility", "labelShow"),
            }
            if body.get("color") is not None:
                label["color"] = _label_color(body["color"])
            user.labels[label_id] = label
            self._save()
            return dict(label)

    def _label_name(self, user: UserMailbox, name: Any, label_id: str | None) -> str:
        """A new or changed label's name, checked as Gmail does: not empty, not too long, no two alike
        (case folded), and not a system label's. Nested labels are names with ``/``."""
        text = name.strip() if isinstance(name, str) else ""
        if not text or len(text) > MAX_LABEL_NAME or any(not part.strip() for part in text.split("/")):
            raise invalid("Invalid label name")
        taken = {str(label["name"]).lower() for key, label in user.labels.items() if key != label_id}
        if text.lower() in taken or text.upper() in SYSTEM_LABELS:
            raise GmailError(409, "duplicate", "Label name exists or conflicts")
        return text

    def _user_label(self, user: UserMailbox, label_id: str, verb: str) -> dict[str, Any]:
        """A label the user may change: 404 for an unknown id, 400 for a system label."""
        label = user.labels.get(label_id)
        if label is None:
            raise not_found()
        if label["type"] == "system":
            raise invalid(f"Invalid label: system labels cannot be {verb}")
        return label

    def update_label(
        self, user_id: str, label_id: str, body: dict[str, Any], *, patch: bool
    ) -> dict[str, Any]:
        """labels.update / labels.patch: rename, recolour; system labels cannot be changed."""
        with self.lock:
            user = self.user(user_id)
            label = self._user_label(user, label_id, "changed")
            if "name" in body or not patch:
                label["name"] = self._label_name(user, body.get("name"), label_id)
            for key in ("messageListVisibility", "labelListVisibility"):
                if key in body:
                    label[key] = body[key]
            if "color" in body:
                if body["color"] is None:
                    label.pop("color", None)
                else:
                    label["color"] = _label_color(body["color"])
            self._save()
            return dict(label)

    def delete_label(self, user_id: str, label_id: str) -> None:
        """labels.delete: the label goes, and comes off every message (without history records)."""
        with self.lock:
            user = self.user(user_id)
            self._user_label(user, label_id, "deleted")
            del user.labels[label_id]
            for message in user.messages.values():
                if label_id in message.label_ids:
                    message.label_ids = [x for x in message.label_ids if x != label_id]
            self._save()

    def watch(self, user_id: str) -> dict[str, Any]:
        with self.lock:
            user = self.user(user_id)
            user.watch_expiration = _now_ms() + WATCH_SECONDS * 1000
            return {"historyId": str(user.history_id), "expiration": str(user.watch_expiration)}

    def stop(self, user_id: str) -> None:
        with self.lock:
            self.user(user_id).watch_expiration = None

    def expire_history(self, address: str) -> int:
        """Drop all history: the next ``history.list`` from an older id answers 404."""
        with self.lock:
            user = self.user(address)
            user.history.clear()
            user.history_floor = user.history_id
            self._save()
            return user.history_id

    # --- persistence -------------------------------------------------------------------------------
    def _push(self) -> None:
        """Tell the push target about each watched mailbox that changed since it was last told."""
        if self.pusher is None:
            return
        now = _now_ms()
        for address, user in self.users.items():
            if (
                user.watch_expiration
                and user.watch_expiration > now
                and user.history_id > self._pushed.get(address, 0)
            ):
                self._pushed[address] = user.history_id
                self.pusher(address, user.history_id)

    def _save(self) -> None:
        self._push()  # every change ends here
        if self.state_file is None:
            return
        state = {
            "next_message_id": self.next_message_id,
            "default_user": self.default_user,
            "users": {
                address: {
                    "history_id": u.history_id,
                    "history_floor": u.history_floor,
                    "next_label": u.next_label,
                    "labels": [label for label in u.labels.values() if label["type"] == "user"],
                    "messages": [
                        {
                            "id": m.id,
                            "thread_id": m.thread_id,
                            "raw": base64.b64encode(m.raw).decode(),
                            "label_ids": m.label_ids,
                            "internal_date": m.internal_date,
                            "history_id": m.history_id,
                        }
                        for m in u.messages.values()
                    ],
                    "history": [vars(r) for r in u.history],
                }
                for address, u in self.users.items()
            },
        }
        tmp = self.state_file.with_suffix(self.state_file.suffix + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_file)

    def _load(self, path: Path) -> None:
        try:
            self._restore(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SandboxStateError(
                f"{path} is not a sandbox state file ({type(exc).__name__}: {exc})"
            ) from exc

    def _restore(self, state: dict[str, Any]) -> None:
        self.next_message_id = state["next_message_id"]
        self.default_user = state["default_user"]
        for address, data in state["users"].items():
            user = UserMailbox(
                address, data["history_id"], data["history_floor"], next_label=data["next_label"]
            )
            for label in data["labels"]:
                user.labels[label["id"]] = label
            for m in data["messages"]:
                message = StoredMessage(
                    m["id"],
                    m["thread_id"],
                    base64.b64decode(m["raw"]),
                    m["label_ids"],
                    m["internal_date"],
                    m["history_id"],
                )
                user.messages[message.id] = message
                if message.rfc822_id:
                    user.by_rfc822.setdefault(message.rfc822_id, []).append(message.id)
            user.history = [HistoryRecord(**r) for r in data["history"]]
            self.users[address] = user

    def save(self) -> None:
        with self.lock:
            self._save()


class SandboxStateError(ValueError):
    """The ``--state`` file cannot be read back."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _header_date_ms(message: Message) -> int | None:
    from email.utils import parsedate_to_datetime

    try:
        value = parsedate_to_datetime(str(message.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        return None
    if value.tzinfo is None:
        return None
    return int(value.timestamp() * 1000)
