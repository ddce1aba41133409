"""``/healthz``: 200 when the database answers, 503 when it does not (for load balancers)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from server.db import database_is_reachable
from server.errors import error_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response | tuple[Response, int]:
    if not database_is_reachable():
        return error_response(503, "database_unavailable", "the database does not answer")
    return jsonify({"status": "ok"})
