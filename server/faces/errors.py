"""One error shape per kind of caller: ``{"error": {"code": …, "message": …}}`` for the add-on and the
machine endpoints; RFC 9457 problem details (``application/problem+json``) for the REST API."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from server.base.db import lost_to_another_transaction

#: The REST API's address space: every error under it is a problem document.
API_PREFIX = "/api/"
PROBLEM_TYPE = "application/problem+json"


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message}}), status


def problem_response(
    status: int, title: str, detail: str = "", *, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """An RFC 9457 problem document; ``extra`` members (e.g. ``errors``) join the standard ones."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail} | extra
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def http_error(exc: HTTPException) -> Response | tuple[Response, int]:
    status = exc.code or 500
    if request.path.startswith(API_PREFIX):
        if isinstance(exc.response, Response):  # already a whole answer (e.g. a validation problem)
            return exc.response
        allowed = getattr(exc, "valid_methods", None)  # a 405 names the methods that work
        headers = {"Allow": ", ".join(allowed)} if allowed else None
        return problem_response(status, exc.name or "Error", exc.description or "", headers=headers)
    code = (exc.name or "error").lower().replace(" ", "_")
    return error_response(status, code, exc.description or exc.name or "error")


def undone_by_the_database(exc: OperationalError) -> Response | tuple[Response, int]:
    """PostgreSQL undid the request's transaction for a concurrent one's (a deadlock, a serialization
    failure): nothing was changed, and the same request will very likely pass — 503 with Retry-After,
    not a 500. Any other operational error is the server's."""
    if not lost_to_another_transaction(exc):
        raise exc
    headers = {"Retry-After": "1"}
    message = "The database was busy with a concurrent change; nothing was changed. Try again."
    if request.path.startswith(API_PREFIX):
        return problem_response(503, "Service Unavailable", message, headers=headers)
    response, status = error_response(503, "busy", message)
    response.headers.update(headers)
    return response, status


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(OperationalError, undone_by_the_database)
