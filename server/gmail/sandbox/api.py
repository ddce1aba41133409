"""HTTP around the sandbox store: Gmail API v1 routes, the batch endpoint and the control API."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from email import policy
from email.parser import BytesParser
from typing import Any

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from server.gmail.sandbox import payload
from server.gmail.sandbox.errors import GmailError, invalid
from server.gmail.sandbox.faults import FaultPlan, Gate, InjectedFault
from server.gmail.sandbox.push import PushSender
from server.gmail.sandbox.store import Sandbox, StoredMessage, page_size
from server.gmail.sandbox.uploads import Upload, Uploads

#: Gmail refuses a plain (non-upload) request body above a few MB with 413; uploads go to /upload.
MAX_SIMPLE_BODY = 5 * 1024 * 1024
#: messages.send's documented maxSize for the /upload path.
MAX_UPLOAD_BODY = 36_700_160
#: The largest message the control API delivers (the common 25 MB mail limit).
MAX_DELIVERY_BODY = 25 * 1024 * 1024
#: Nothing larger is even read.
MAX_CONTENT_LENGTH = 40 * 1024 * 1024
#: Gmail: "You're limited to 100 calls in a single batch request."
MAX_BATCH_CALLS = 100

#: The per-minute limits the control API may change (both default to Gmail's).
QUOTA_LIMIT_KEYS = ("user_units_per_minute", "project_units_per_minute")

API = "/gmail/v1/users/<user>"
_GMAIL_METHODS: dict[str, str] = {}  # Flask endpoint -> Gmail method name (for faults and quota)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _error(error: GmailError, retry_after: float | None = None) -> Response:
    response = _json(error.body(), error.code)
    if retry_after is not None:
        response.headers["Retry-After"] = str(
            int(retry_after) if float(retry_after).is_integer() else retry_after
        )
    return response


def _body_json(limit: int = MAX_SIMPLE_BODY) -> dict[str, Any]:
    data = request.get_data(cache=True)
    if len(data) > limit:
        raise GmailError(413, "uploadTooLarge", "Request Entity Too Large")
    if not data.strip():
        return {}
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GmailError(400, "parseError", f"Invalid JSON payload received. {exc}") from exc
    if not isinstance(body, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    return body


def _string_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key, [])
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise invalid(f"Invalid value for {key}: expected a list of strings")
    return value


def _thread_id(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise invalid("Invalid threadId")
    return value or None


def _sent_json(message: StoredMessage) -> dict[str, Any]:
    return {"id": message.id, "threadId": message.thread_id, "labelIds": list(message.label_ids)}


def _format_args() -> tuple[str, list[str]]:
    return request.args.get("format", "full"), request.args.getlist("metadataHeaders")


def create_sandbox_app(sandbox: Sandbox | None = None, gate: Gate | None = None) -> Flask:
    """The sandbox as a WSGI app; ``app.config["SANDBOX"]`` and ``["GATE"]`` hold its state."""
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_CONTENT_LENGTH
    app.json.sort_keys = False  # type: ignore[attr-defined]
    box = sandbox if sandbox is not None else Sandbox()
    gatekeeper = gate if gate is not None else Gate()
    app.config["SANDBOX"] = box
    app.config["GATE"] = gatekeeper
    pusher = PushSender()
    box.pusher = pusher
    app.config["PUSH"] = pusher

    def api(rule: str, method: str, methods: list[str]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(view: Callable[..., Any]) -> Callable[..., Any]:
            endpoint = f"api_{method.replace('.', '_')}_{view.__name__}"
            _GMAIL_METHODS[endpoint] = method
            app.add_url_rule(rule, endpoint, view, methods=methods)
            return view

        return register

    @app.before_request
    def admit() -> Response | None:
        method = _GMAIL_METHODS.get(request.endpoint or "")
        if method is None:
            return None
        user_id = (request.view_args or {}).get("user", "")
        try:
            user = box.user(user_id).email
            gatekeeper.admit(method, user)
        except InjectedFault as fault:
            return _error(fault.error, fault.retry_after)
        except GmailError as error:
            return _error(error)
        g.gmail_method = method
        return None

    @app.errorhandler(GmailError)
    def gmail_error(error: GmailError) -> Response:
        return _error(error)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = exc.code or 500
        reasons = {404: "notFound", 405: "badRequest", 413: "uploadTooLarge"}
        message = "Request Entity Too Large" if code == 413 else (exc.description or "error")
        return _error(GmailError(code, reasons.get(code, "badRequest"), message))

    # --- Gmail API ----------------------------------------------------------------------------------
    @api(f"{API}/profile", "getProfile", ["GET"])
    def get_profile(user: str) -> Response:
        return _json(box.profile(user))

    @api(f"{API}/watch", "watch", ["POST"])
    def watch(user: str) -> Response:
        body = _body_json()
        if not isinstance(body.get("topicName"), str):
            raise invalid("Invalid topicName")
        return _json(box.watch(user))

    @api(f"{API}/stop", "stop", ["POST"])
    def stop(user: str) -> Response:
        box.stop(user)
        return Response(status=204)

    @api(f"{API}/labels", "labels.list", ["GET"])
    def labels_list(user: str) -> Response:
        return _json(box.list_labels(user))

    @api(f"{API}/labels", "labels.create", ["POST"])
    def labels_create(user: str) -> Response:
        return _json(box.create_label(user, _body_json()))

    @api(f"{API}/labels/<label_id>", "labels.get", ["GET"])
    def labels_get(user: str, label_id: str) -> Response:
        return _json(box.get_label(user, label_id))

    @api(f"{API}/labels/<label_id>", "labels.update", ["PUT"])
    def labels_update(user: str, label_id: str) -> Response:
        return _json(box.update_label(user, label_id, _body_json(), patch=False))

    @api(f"{API}/labels/<label_id>", "labels.patch", ["PATCH"])
    def labels_patch(user: str, label_id: str) -> Response:
        return _json(box.update_label(user, label_id, _body_json(), patch=True))

    @api(f"{API}/labels/<label_id>", "labels.delete", ["DELETE"])
    def labels_delete(user: str, label_id: str) -> Response:
        box.delete_label(user, label_id)
        return Response(status=204)

    @api(f"{API}/messages/batchModify", "messages.batchModify", ["POST"])
    def messages_batch_modify(user: str) -> Response:
        body = _body_json()
        box.batch_modify(user, _string_list(body, "ids"), _string_list(body, "addLabelIds"),
                         _string_list(body, "removeLabelIds"))  # fmt: skip
        return Response(status=204)

    @api(f"{API}/threads/<thread_id>/modify", "threads.modify", ["POST"])
    def threads_modify(user: str, thread_id: str) -> Response:
        body = _body_json()
        return _json(box.modify_thread(user, thread_id, _string_list(body, "addLabelIds"),
                                       _string_list(body, "removeLabelIds")))  # fmt: skip

    @api(f"{API}/messages", "messages.list", ["GET"])
    def messages_list(user: str) -> Response:
        flag = request.args.get("includeSpamTrash", "false").lower()
        return _json(
            box.list_messages(
                user,
                query=request.args.get("q", ""),
                label_ids=request.args.getlist("labelIds"),
                include_spam_trash=flag == "true",
                page_token=request.args.get("pageToken"),
                max_results=page_size(request.args.get("maxResults")),
            )
        )

    @api(f"{API}/messages/<message_id>", "messages.get", ["GET"])
    def messages_get(user: str, message_id: str) -> Response:
        fmt, headers = _format_args()
        return _json(box.get_message(user, message_id, fmt, headers))

    def _send(user: str, raw: bytes, thread_id: Any) -> Response:
        return _json(_sent_json(box.send(user, raw, _thread_id(thread_id))))

    @api(f"{API}/messages/send", "messages.send", ["POST"])
    def messages_send(user: str) -> Response:
        body = _body_json()
        raw = body.get("raw")
        if not isinstance(raw, str) or not raw:
            raise GmailError(
                400,
                "invalidArgument",
                "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
            )
        try:
            data = payload.b64url_decode(raw)
        except ValueError as exc:
            raise invalid("Invalid value at 'message.raw' (TYPE_BYTES), Base64 decoding failed") from exc
        return _send(user, data, body.get("threadId"))

    uploads = Uploads(MAX_UPLOAD_BODY)
    app.config["UPLOADS"] = uploads

    @api(f"/upload{API}/messages/send", "messages.send", ["POST"])
    def messages_send_upload(user: str) -> Response:
        upload_type = request.args.get("uploadType", "media")
        if upload_type not in ("media", "multipart", "resumable"):
            raise invalid(f"uploadType {upload_type} is not supported by the sandbox")
        with gatekeeper.lock:
            gatekeeper.meter.uploads[upload_type] += 1
        if upload_type == "resumable":
            metadata = _body_json()
            upload_id = uploads.start(
                box.user(user).email, metadata, request.headers.get("X-Upload-Content-Length")
            )
            response = Response(status=200)
            response.headers["Location"] = f"{request.base_url}?uploadType=resumable&upload_id={upload_id}"
            return response
        data = request.get_data(cache=True)
        if len(data) > MAX_UPLOAD_BODY:
            raise GmailError(413, "uploadTooLarge", "Request Entity Too Large")
        if upload_type == "media":
            return _send(user, data, None)
        parts = _related_parts(request.headers.get("Content-Type", ""), data)
        if len(parts) != 2:
            raise invalid("multipart upload needs a metadata part and a media part")
        try:
            metadata = json.loads(parts[0] or b"{}")
        except ValueError as exc:
            raise GmailError(400, "parseError", "Invalid JSON payload received.") from exc
        media = parts[1]
        return _send(user, media, metadata.get("threadId") if isinstance(metadata, dict) else None)

    @app.put(f"/upload{API}/messages/send")
    def messages_send_resumable(user: str) -> Response:
        """The bytes of a resumable upload (metered once, by the request that opened the session)."""
        address = box.user(user).email
        try:
            gatekeeper.admit("messages.send", address, metered=False)
        except InjectedFault as fault:
            return _error(fault.error, fault.retry_after)

        def finish(upload: Upload, media: bytes) -> dict[str, Any]:
            return _sent_json(box.send(upload.user, media, _thread_id(upload.metadata.get("threadId"))))

        progress = uploads.put(
            request.args.get("upload_id", ""),
            address,
            request.headers.get("Content-Range"),
            request.get_data(),
            finish,
        )
        if progress.result is not None:
            return _json(progress.result)
        response = Response(status=308)
        if progress.received:
            response.headers["Range"] = f"bytes=0-{progress.received - 1}"
        return response

    @api(f"{API}/messages/<message_id>/modify", "messages.modify", ["POST"])
    def messages_modify(user: str, message_id: str) -> Response:
        body = _body_json()
        return _json(
            box.modify(
                user, message_id, _string_list(body, "addLabelIds"), _string_list(body, "removeLabelIds")
            )
        )

    @api(f"{API}/messages/<message_id>/trash", "messages.trash", ["POST"])
    def messages_trash(user: str, message_id: str) -> Response:
        return _json(box.trash(user, message_id))

    @api(f"{API}/messages/<message_id>/untrash", "messages.untrash", ["POST"])
    def messages_untrash(user: str, message_id: str) -> Response:
        return _json(box.trash(user, message_id, untrash=True))

    @api(f"{API}/messages/<message_id>", "messages.delete", ["DELETE"])
    def messages_delete(user: str, message_id: str) -> Response:
        box.delete(user, message_id)
        return Response(status=204)

    @api(f"{API}/messages/<message_id>/attachments/<attachment_id>", "messages.attachments.get", ["GET"])
    def attachments_get(user: str, message_id: str, attachment_id: str) -> Response:
        return _json(box.attachment(user, message_id, attachment_id))

    @api(f"{API}/threads/<thread_id>", "threads.get", ["GET"])
    def threads_get(user: str, thread_id: str) -> Response:
        fmt, headers = _format_args()
        return _json(box.get_thread(user, thread_id, fmt, headers))

    @api(f"{API}/history", "history.list", ["GET"])
    def history_list(user: str) -> Response:
        return _json(
            box.history(
                user,
                request.args.get("startHistoryId"),
                history_types=request.args.getlist("historyTypes"),
                label_id=request.args.get("labelId"),
                page_token=request.args.get("pageToken"),
                max_results=page_size(request.args.get("maxResults")),
            )
        )

    # --- batch --------------------------------------------------------------------------------------
    @app.post("/batch/gmail/v1")
    @app.post("/batch")
    def batch() -> Response:
        content_type = request.headers.get("Content-Type", "")
        if not content_type.lower().startswith("multipart/mixed") or "boundary=" not in content_type:
            raise invalid("a batch request must be multipart/mixed with a boundary")
        envelope = BytesParser(policy=policy.compat32).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + request.get_data()
        )
        parts = envelope.get_payload()
        if not envelope.is_multipart() or not isinstance(parts, list) or not parts:
            raise invalid("the batch request has no parts")
        if len(parts) > MAX_BATCH_CALLS:
            raise invalid(f"Too many requests in batch (at most {MAX_BATCH_CALLS})")
        with gatekeeper.lock:
            gatekeeper.meter.batch_sizes.append(len(parts))
        client = app.test_client()
        boundary = f"batch_{uuid.uuid4().hex}"
        chunks: list[bytes] = []
        for index, part in enumerate(parts):
            content_id = str(part.get("Content-ID") or f"<item{index}>").strip()
            inner = part.get_payload(decode=True)
            if not isinstance(inner, bytes):
                inner = str(part.get_payload()).encode()
            status_line, headers, body = _inner_response(client, inner)
            response_id = f"<response-{content_id.strip('<>')}>"
            head = "\r\n".join(f"{k}: {v}" for k, v in headers)
            chunks.append(
                f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: {response_id}\r\n\r\n"
                f"{status_line}\r\n{head}\r\n\r\n".encode()
                + body
                + b"\r\n"
            )
        chunks.append(f"--{boundary}--\r\n".encode())
        return Response(b"".join(chunks), mimetype=f"multipart/mixed; boundary={boundary}")

    # --- control API --------------------------------------------------------------------------------
    @app.post("/sandbox/users/<address>/messages")
    def control_deliver(address: str) -> Response:
        raw = request.get_data()
        if len(raw) > MAX_DELIVERY_BODY:
            raise GmailError(413, "uploadTooLarge", "Request Entity Too Large")
        if not raw.strip():
            raise invalid("the request body must be a raw RFC 822 message")
        labels = request.args.getlist("labelIds") or None
        by_header = request.args.get("internalDateSource") == "dateHeader"
        message = box.deliver(address, raw, label_ids=labels, date_from_header=by_header)
        return _json({"id": message.id, "threadId": message.thread_id, "historyId": str(message.history_id)})

    @app.post("/sandbox/users/<address>/expire-history")
    def control_expire(address: str) -> Response:
        return _json({"historyId": str(box.expire_history(address))})

    @app.post("/sandbox/push")
    def control_push() -> Response:
        try:
            return _json(pusher.configure(_body_json()))
        except ValueError as exc:
            raise invalid(str(exc)) from exc

    @app.get("/sandbox/push/certs")
    def control_push_certs() -> Response:
        return _json(pusher.certs)

    @app.get("/sandbox/push/sent")
    def control_push_sent() -> Response:
        with pusher.lock:
            return _json({"sent": list(pusher.sent)})

    @app.get("/sandbox/faults")
    def control_faults() -> Response:
        return _json(gatekeeper.plan.as_json())

    @app.post("/sandbox/faults")
    def control_set_faults() -> Response:
        plan = FaultPlan.from_json(_body_json())
        gatekeeper.set_plan(plan)
        return _json(plan.as_json())

    @app.delete("/sandbox/faults")
    def control_clear_faults() -> Response:
        gatekeeper.set_plan(FaultPlan())
        return Response(status=204)

    @app.get("/sandbox/quota")
    def control_quota() -> Response:
        return _json(gatekeeper.meter.as_json())

    @app.post("/sandbox/quota")
    def control_set_quota() -> Response:
        body = _body_json()
        enforce = body.get("enforce")
        if enforce is not None and not isinstance(enforce, bool):
            raise invalid("enforce must be true or false")
        limits = {key: body[key] for key in QUOTA_LIMIT_KEYS if key in body}
        for key, value in limits.items():  # lowered as an admin can lower them in the Cloud console
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise invalid(f"{key} must be a positive integer")
        if body.get("reset", False):
            gatekeeper.reset_meter(enforce)
        elif enforce is not None:
            gatekeeper.meter.enforce = enforce
        with gatekeeper.lock:
            for key, value in limits.items():
                setattr(gatekeeper.meter, key, value)
        return _json(gatekeeper.meter.as_json())

    @app.delete("/sandbox/quota")
    def control_reset_quota() -> Response:
        gatekeeper.reset_meter()
        return Response(status=204)

    @app.get("/")
    def index() -> Response:
        return _json(
            {"sandbox": "gmail v1", "users": sorted(box.users), "api": "/gmail/v1/users/{userId}/..."}
        )

    return app


def _related_parts(content_type: str, data: bytes) -> list[bytes]:
    """The bodies of a multipart/related upload, byte for byte (the message must not be re-serialised)."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not content_type.lower().startswith("multipart/related") or match is None:
        raise invalid("a multipart upload must be multipart/related with a boundary")
    delimiter = b"--" + match[1].encode("latin-1")
    bodies = []
    for chunk in data.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        _head, sep, body = chunk.partition(b"\r\n\r\n")
        if not sep:
            _head, sep, body = chunk.partition(b"\n\n")
        bodies.append(body[:-2] if body.endswith(b"\r\n") else body.rstrip(b"\n"))
    return bodies


_REQUEST_LINE = re.compile(rb"^(GET|POST|PUT|PATCH|DELETE)\s+(\S+)(?:\s+HTTP/\d\.\d)?\s*$")


def _inner_response(client: Any, inner: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """Run one request of a batch through the app; answer 400 for a part that is not HTTP."""
    text = inner.replace(b"\r\n", b"\n").lstrip(b"\n")
    head, _, body = text.partition(b"\n\n")
    lines = head.split(b"\n")
    match = _REQUEST_LINE.match(lines[0]) if lines else None
    if match is None:
        error = invalid("a batch part must be an HTTP request ('GET /gmail/v1/... HTTP/1.1')")
        return (
            "HTTP/1.1 400 Bad Request",
            [("Content-Type", "application/json")],
            json.dumps(error.body()).encode(),
        )
    method, target = match[1].decode(), match[2].decode("latin-1")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            headers[name.strip()] = value.strip()
    headers.pop("Content-Length", None)
    response = client.open(target, method=method, headers=headers, data=body or None)
    status_line = f"HTTP/1.1 {response.status}"
    out_headers = [("Content-Type", response.headers.get("Content-Type", "application/json"))]
    if "Retry-After" in response.headers:
        out_headers.append(("Retry-After", response.headers["Retry-After"]))
    return status_line, out_headers, response.get_data()
