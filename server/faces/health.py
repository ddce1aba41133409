"""``/healthz``: 200 when the database answers, 503 when not (for load balancers);
``/healthz?role=worker``: also 503 when no worker holds the jobs' lease (none running, or one stuck).
With a task queue (``TASKS=procrastinate``) both also fail while the queue cannot be read."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, current_app, jsonify, request

from server.base.db import database_is_reachable, get_session
from server.base.models import WorkerLease
from server.faces.errors import error_response
from server.flows.clock.lease import WORKER_LEASE
from server.flows.tasks import queue_is_reachable

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response | tuple[Response, int]:
    if not database_is_reachable():
        return error_response(503, "database_unavailable", "the database does not answer")
    if current_app.config["TASKS"] == "procrastinate" and not queue_is_reachable(get_session()):
        return error_response(503, "tasks_unavailable", "the task queue does not answer")
    role = request.args.get("role", "web")
    if role not in ("web", "worker"):
        return error_response(400, "bad_role", "role: web or worker")
    if role == "worker":
        lease = get_session().get(WorkerLease, WORKER_LEASE)
        now = datetime.now(UTC)
        if lease is None or lease.expires_at <= now:
            return error_response(
                503, "no_worker", "no worker holds the lease: the scheduled jobs are not running"
            )
        return jsonify({"status": "ok", "role": "worker", "holder": lease.holder,
                        "lease_expires_in_seconds": round((lease.expires_at - now).total_seconds())})  # fmt: skip
    return jsonify({"status": "ok"})
