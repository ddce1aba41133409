"""The Gmail API client Postdesk uses: credentials, retries with backoff, batching and a quota meter.

One :class:`GmailClient` per mailbox and per thread (httplib2 connections are not thread-safe).
Every call goes through :meth:`GmailClient.call`, which retries 429, 5xx, rate-limit 403s and
timeouts with exponential backoff and full jitter, honours ``Retry-After``, and meters quota units.
"""

from __future__ import annotations

import base64
import email.utils
import json
import logging
import random
import socket
import ssl
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import google_auth_httplib2
import httplib2
from google.auth.credentials import Credentials
from google.auth.exceptions import RefreshError
from googleapiclient import _auth
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError, MediaUploadSizeError
from googleapiclient.http import BatchHttpRequest, HttpRequest, MediaInMemoryUpload

from server.gmail.credentials import mailbox_credentials, refused
from server.gmail.errors import GmailApiError, GmailUnavailable, HistoryExpired
from server.gmail.quota import MAX_JSON_REQUEST_BYTES, units_for

log = logging.getLogger(__name__)

GOOGLE_BATCH_URI = "https://gmail.googleapis.com/batch/gmail/v1"
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
#: Calls not repeated after a broken connection, whose first attempt may have taken effect (a
#: resumable upload is: it asks its session what happened).
UNSAFE_TO_REPEAT = frozenset({"messages.send"})
#: Bytes per request of a resumable upload (Google asks for multiples of 256 KiB).
UPLOAD_CHUNK = 4 * 1024 * 1024
#: The longest Retry-After we honour; a larger one is treated as this many seconds.
MAX_RETRY_AFTER = 300.0
_TRANSPORT_ERRORS = (
    TimeoutError,
    socket.timeout,
    ConnectionError,
    ssl.SSLError,
    httplib2.HttpLib2Error,
    OSError,
)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base: float = 0.5
    cap: float = 32.0

    def delay(self, attempt: int, retry_after: float | None, rng: Callable[[], float]) -> float:
        """Full-jitter exponential backoff for ``attempt`` (1-based), never shorter than Retry-After."""
        jittered = rng() * min(self.cap, self.base * 2 ** (attempt - 1))
        return float(max(jittered, min(retry_after or 0.0, MAX_RETRY_AFTER)))


@dataclass
class QuotaMeter:
    """Quota units this client spent, by Gmail method (as Gmail's usage-limits table prices them)."""

    by_method: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    retries: int = 0

    def spend(self, method: str, count: int = 1) -> None:
        self.by_method[method] += units_for(method) * count
        self.calls[method] += count

    @property
    def units_total(self) -> int:
        return sum(self.by_method.values())


@dataclass
class BatchResult:
    messages: dict[str, dict[str, Any]]
    #: Ids Gmail answered 404 for (deleted since they were listed).
    missing: list[str]


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN guard


def _error_reason(error: HttpError) -> tuple[str, str]:
    try:
        body = json.loads(error.content.decode("utf-8", "replace"))
        details = body["error"]
        reasons = details.get("errors") or [{}]
        return str(reasons[0].get("reason", "")), str(details.get("message", ""))
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return "", str(error.reason or "")


def is_retryable(status: int, reason: str) -> bool:
    return status in RETRYABLE_STATUSES or (status == 403 and reason in RATE_LIMIT_REASONS)


class PlainBatch(BatchHttpRequest):  # type: ignore[misc]
    """google-api-python-client's batch request, each part written as plain text.

    The library writes every part through the email package's generator, which folds and
    re-encodes each header: a tenth of a synced message's own time went there. A part is an HTTP
    request line and a few short ASCII headers, so they are written as they are (byte for byte
    what the generator writes for them; ``tests/test_gmail_client.py`` compares the two)."""

    def _serialize_request(self, request: HttpRequest) -> str:
        parsed = urllib.parse.urlparse(request.uri)
        target = urllib.parse.urlunparse(("", "", parsed.path, parsed.params, parsed.query, ""))
        headers = dict(request.headers)
        if request.http is not None:
            credentials = _auth.get_credentials_from_http(request.http)
            if credentials is not None:
                _auth.apply_credentials(credentials, headers)
        if not all(str(value).isascii() for value in headers.values()):
            return str(super()._serialize_request(request))  # the generator encodes what is not ASCII
        content_type = headers.pop("content-type", "application/json")
        lines = [f"{request.method} {target} HTTP/1.1", f"Content-Type: {content_type}", "MIME-Version: 1.0"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        lines.append(f"Host: {parsed.netloc}")
        if request.body is not None:
            lines.append(f"content-length: {len(request.body)}")
        return "\n".join(lines) + "\n\n" + (request.body or "")


class GmailClient:
    """Gmail API calls for one mailbox, with retries, batching and quota metering."""

    def __init__(
        self,
        address: str,
        credentials: Credentials,
        api_endpoint: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        batch_size: int = 50,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.address = address
        self.api_endpoint = api_endpoint
        self.retry = retry or RetryPolicy()
        self.batch_size = max(1, min(batch_size, 100))
        self.sleep = sleep
        self.rng = rng
        self.meter = QuotaMeter()
        transport = httplib2.Http(timeout=timeout)
        # A resumable upload's "308 Resume Incomplete" is not a redirect (the client library's own
        # build_http() says the same).
        transport.redirect_codes = transport.redirect_codes - {308}
        http = google_auth_httplib2.AuthorizedHttp(credentials, http=transport)
        options = {"api_endpoint": api_endpoint} if api_endpoint else None
        self.service = build(
            "gmail", "v1", http=http, client_options=options, static_discovery=True, cache_discovery=False
        )
        self._users: Any = None
        self._messages: Any = None
        # new_batch_http_request() would post to Google whatever the endpoint: build the URI ourselves.
        self.batch_uri = f"{api_endpoint.rstrip('/')}/batch/gmail/v1" if api_endpoint else GOOGLE_BATCH_URI

    def close(self) -> None:
        """Close the HTTP connections (one client per job; close it when the job ends)."""
        self.service.close()

    def __enter__(self) -> GmailClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def users(self) -> Any:
        # Building a discovery Resource is costly (it creates every method); build each one once.
        if self._users is None:
            self._users = self.service.users()
        return self._users

    @property
    def messages(self) -> Any:
        if self._messages is None:
            self._messages = self.users.messages()
        return self._messages

    # --- the one way to call Gmail -----------------------------------------------------------------
    def call(self, method: str, request: HttpRequest) -> dict[str, Any]:
        """Execute ``request`` (Gmail method ``method``), retrying what is worth retrying.

        Every Gmail method Postdesk calls answers a JSON object (an empty one for ``stop``)."""
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                result = request.execute(num_retries=0)
            except HttpError as error:
                status = int(error.resp.status)
                reason, message = _error_reason(error)
                if not is_retryable(status, reason):
                    self.meter.spend(method)
                    raise GmailApiError(method, status, reason, message) from error
                retry_after = parse_retry_after(error.resp.get("retry-after"))
                problem = f"HTTP {status} {reason}"
            except RefreshError as error:
                # Google refused the mailbox's credentials (a revoked refresh token, delegation taken
                # back): asking again will not help, the admin must connect the mailbox again.
                raise refused(method, error) from error
            except _TRANSPORT_ERRORS as error:
                if method in UNSAFE_TO_REPEAT and request.resumable is None:
                    # Gmail may have sent it before the connection broke: the caller finds out
                    # (the Outbox looks the message up by its Message-ID) instead of sending twice.
                    raise GmailUnavailable(f"{method}: outcome unknown ({type(error).__name__})") from error
                retry_after = None
                problem = type(error).__name__
            else:
                self.meter.spend(method)
                return result if isinstance(result, dict) else {}
            if attempt == self.retry.max_attempts:
                raise GmailUnavailable(f"{method}: gave up after {attempt} attempts ({problem})")
            delay = self.retry.delay(attempt, retry_after, self.rng)
            self.meter.retries += 1
            log.info(
                "gmail_retry method=%s attempt=%d problem=%r delay=%.2f", method, attempt, problem, delay
            )
            self.sleep(delay)
        raise AssertionError("unreachable")

    # --- Gmail methods -----------------------------------------------------------------------------
    def profile(self) -> dict[str, Any]:
        return self.call("getProfile", self.users.getProfile(userId=self.address))

    def watch(self, topic: str, label_ids: Sequence[str] = ()) -> dict[str, Any]:
        """users.watch: Gmail publishes this mailbox's changes to ``topic`` (for 7 days)."""
        body: dict[str, Any] = {"topicName": topic} | ({"labelIds": list(label_ids)} if label_ids else {})
        return self.call("watch", self.users.watch(userId=self.address, body=body))

    def stop(self) -> None:
        """users.stop: no more push notifications for this mailbox."""
        self.call("stop", self.users.stop(userId=self.address))

    def labels(self) -> list[dict[str, Any]]:
        labels = self.call("labels.list", self.users.labels().list(userId=self.address)).get("labels", [])
        return [label for label in labels if isinstance(label, dict)]

    def create_label(self, name: str, color: dict[str, str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name} | ({"color": color} if color else {})
        request = self.users.labels().create(userId=self.address, body=body)
        return self.call("labels.create", request)

    def patch_label(self, label_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Rename or recolour a label (only the fields given)."""
        request = self.users.labels().patch(userId=self.address, id=label_id, body=body)
        return self.call("labels.patch", request)

    def list_messages(
        self,
        query: str = "",
        *,
        label_ids: Sequence[str] = (),
        page_token: str | None = None,
        max_results: int = 500,
    ) -> dict[str, Any]:
        request = self.messages.list(
            userId=self.address,
            q=query or None,
            labelIds=list(label_ids) or None,
            pageToken=page_token,
            maxResults=max_results,
        )
        return self.call("messages.list", request)

    def iter_message_ids(self, query: str = "", *, label_ids: Sequence[str] = ()) -> Iterable[str]:
        """Every message id matching ``query``, page by page (newest first, as Gmail lists them)."""
        token: str | None = None
        while True:
            page = self.list_messages(query, label_ids=label_ids, page_token=token)
            for item in page.get("messages", []):
                yield item["id"]
            token = page.get("nextPageToken")
            if not token:
                return

    def history(
        self, start_history_id: int, *, page_token: str | None = None, history_types: Sequence[str] = ()
    ) -> dict[str, Any]:
        """One page of ``history.list``; a 404 (checkpoint too old) raises :class:`HistoryExpired`."""
        request = self.users.history().list(
            userId=self.address,
            startHistoryId=str(start_history_id),
            pageToken=page_token,
            historyTypes=list(history_types) or None,
            maxResults=500,
        )
        try:
            return self.call("history.list", request)
        except GmailApiError as error:
            if error.status == 404:
                raise HistoryExpired(
                    f"{self.address}: history from {start_history_id} is no longer available"
                ) from error
            raise

    def get_message(self, message_id: str, fmt: str = "full") -> dict[str, Any]:
        return self.call("messages.get", self.messages.get(userId=self.address, id=message_id, format=fmt))

    def get_thread(self, thread_id: str, fmt: str = "full") -> dict[str, Any]:
        return self.call(
            "threads.get", self.users.threads().get(userId=self.address, id=thread_id, format=fmt)
        )

    def get_messages(self, message_ids: Iterable[str], fmt: str = "full") -> BatchResult:
        """Fetch many messages with batch requests of at most ``batch_size``; retry the failed ones."""
        pending = list(dict.fromkeys(message_ids))
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for attempt in range(1, self.retry.max_attempts + 1):
            retry: list[str] = []
            retry_after: float | None = None
            for start in range(0, len(pending), self.batch_size):
                chunk = pending[start : start + self.batch_size]
                failed, wait = self._batch_get(chunk, fmt, found, missing)
                retry.extend(failed)
                if wait is not None:
                    retry_after = max(retry_after or 0.0, wait)
            if not retry:
                return BatchResult(found, missing)
            if attempt == self.retry.max_attempts:
                raise GmailUnavailable(
                    f"messages.get: {len(retry)} messages still failing after {attempt} attempts"
                )
            self.meter.retries += 1
            self.sleep(self.retry.delay(attempt, retry_after, self.rng))
            pending = retry
        raise AssertionError("unreachable")

    def _batch_get(
        self, ids: list[str], fmt: str, found: dict[str, dict[str, Any]], missing: list[str]
    ) -> tuple[list[str], float | None]:
        failed: list[str] = []
        waits: list[float] = []

        def collect(request_id: str, response: Any, error: HttpError | None) -> None:
            if error is None:
                self.meter.spend("messages.get")
                found[request_id] = response
                return
            status = int(error.resp.status)
            reason, message = _error_reason(error)
            if status == 404:
                self.meter.spend("messages.get")
                missing.append(request_id)
            elif is_retryable(status, reason):
                failed.append(request_id)
                wait = parse_retry_after(error.resp.get("retry-after"))
                if wait is not None:
                    waits.append(wait)
            else:
                raise GmailApiError("messages.get", status, reason, message) from error

        batch = PlainBatch(callback=collect, batch_uri=self.batch_uri)
        for message_id in ids:
            batch.add(
                self.messages.get(userId=self.address, id=message_id, format=fmt),
                request_id=message_id,
            )
        try:
            batch.execute()
        except HttpError as error:  # the batch request itself failed: retry all of it if that helps
            status = int(error.resp.status)
            reason, message = _error_reason(error)
            if not is_retryable(status, reason):
                raise GmailApiError("batch", status, reason, message) from error
            wait = parse_retry_after(error.resp.get("retry-after"))
            return [i for i in ids if i not in found and i not in missing], wait
        except RefreshError as error:
            raise refused("batch", error) from error
        except _TRANSPORT_ERRORS:
            return [i for i in ids if i not in found and i not in missing], None
        return failed, max(waits) if waits else None

    def send(self, raw: bytes, thread_id: str | None = None) -> dict[str, Any]:
        """Send ``raw`` (RFC 822 bytes): as JSON when it fits Gmail's request limit, else uploaded.

        The upload is resumable: a retry continues the same session, and when the answer to its last
        request was lost, asking the session for its state returns the sent message instead of
        sending it twice."""
        metadata: dict[str, Any] = {"threadId": thread_id} if thread_id else {}
        body = {"raw": base64.urlsafe_b64encode(raw).decode("ascii"), **metadata}
        if len(json.dumps(body)) <= MAX_JSON_REQUEST_BYTES:
            return self.call("messages.send", self.messages.send(userId=self.address, body=body))
        media = MediaInMemoryUpload(raw, mimetype="message/rfc822", chunksize=UPLOAD_CHUNK, resumable=True)
        try:
            request = self.messages.send(userId=self.address, body=metadata, media_body=media)
        except MediaUploadSizeError as exc:
            raise GmailApiError(
                "messages.send",
                413,
                "uploadTooLarge",
                f"the message is {len(raw)} bytes, above Gmail's limit",
            ) from exc
        request.uri = self._upload_uri(request.uri)
        return self.call("messages.send", request)

    def _upload_uri(self, uri: str) -> str:
        """The client library moves an upload URI to a custom endpoint's host but keeps ``https``;
        point it at the configured endpoint exactly (the sandbox serves plain HTTP on loopback)."""
        if not self.api_endpoint:
            return uri
        endpoint = urllib.parse.urlsplit(self.api_endpoint)
        parts = urllib.parse.urlsplit(uri)
        return urllib.parse.urlunsplit(parts._replace(scheme=endpoint.scheme, netloc=endpoint.netloc))

    def modify(self, message_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> dict[str, Any]:
        body = {"addLabelIds": list(add), "removeLabelIds": list(remove)}
        return self.call(
            "messages.modify", self.messages.modify(userId=self.address, id=message_id, body=body)
        )

    def modify_thread(
        self, thread_id: str, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> dict[str, Any]:
        """The same label change on every message of a thread (10 units)."""
        body = {"addLabelIds": list(add), "removeLabelIds": list(remove)}
        request = self.users.threads().modify(userId=self.address, id=thread_id, body=body)
        return self.call("threads.modify", request)

    def batch_modify(
        self, message_ids: Sequence[str], add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> None:
        """One label change on up to 1,000 messages (50 units)."""
        body = {"ids": list(message_ids), "addLabelIds": list(add), "removeLabelIds": list(remove)}
        self.call("messages.batchModify", self.messages.batchModify(userId=self.address, body=body))

    def attachment(self, message_id: str, attachment_id: str) -> dict[str, Any]:
        request = self.messages.attachments().get(userId=self.address, messageId=message_id, id=attachment_id)
        return self.call("messages.attachments.get", request)

    def find_by_rfc822_id(self, rfc822_id: str) -> list[str]:
        """Gmail ids of messages with this Message-ID (how a send of unknown outcome is confirmed)."""
        page = self.list_messages(f"rfc822msgid:{rfc822_id.strip('<>')}", max_results=10)
        return [m["id"] for m in page.get("messages", [])]


def client_for_mailbox(mailbox: Any, config: dict[str, Any] | None = None, **overrides: Any) -> GmailClient:
    """A client for a stored :class:`~server.base.models.Mailbox`, with the app's retry settings."""
    from flask import current_app

    settings = config if config is not None else current_app.config
    options: dict[str, Any] = {
        "retry": RetryPolicy(
            settings["GMAIL_MAX_ATTEMPTS"], settings["GMAIL_BACKOFF_BASE"], settings["GMAIL_BACKOFF_CAP"]
        ),
        "timeout": settings["GMAIL_HTTP_TIMEOUT"],
        "batch_size": settings["GMAIL_BATCH_SIZE"],
    }
    options.update(overrides)
    return GmailClient(mailbox.address, mailbox_credentials(mailbox), mailbox.api_endpoint, **options)
