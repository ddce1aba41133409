"""``/metrics`` in Prometheus' text format (prometheus-client): what an operator watches.

Read from the database at each scrape, so every web process answers the same: per mailbox the sync
lag (seconds since the last good sync), the last success, whether it is in error, whether it is
paused, Gmail quota units spent today, and the work waiting for it (Outbox mail, label requests, a
sync a push asked for) with the age of the oldest Outbox mail; with a task queue, the tasks waiting,
running and failed per task, the oldest waiting task's wait, and the workers alive. HTTP latency by
route is this process's own histogram (with several gunicorn workers, scrape each or set
prometheus-client's multiprocess directory).

Who may read it: with ``METRICS_TOKEN`` set, a request with ``Authorization: Bearer <token>``;
without it, only this machine (loopback, and not through a proxy that says whom it forwards), so
nothing leaks by default.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from server.base.db import get_session
from server.base.models import GmailUsage, Mailbox, Outbox, OutboxState, Ticket
from server.faces.web.local import is_loopback
from server.flows.tasks import queue_figures

bp = Blueprint("metrics", __name__)
WAITING = (OutboxState.PENDING.value, OutboxState.SENDING.value)


class DatabaseCollector(Collector):
    """The figures kept in the database, read when Prometheus scrapes."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        db = get_session()
        now = datetime.now(UTC)
        lag = GaugeMetricFamily(
            "postdesk_sync_lag_seconds", "Seconds since the mailbox's last good sync", labels=["mailbox"]
        )
        last = GaugeMetricFamily(
            "postdesk_sync_last_success_timestamp_seconds", "When the mailbox last synced", labels=["mailbox"]
        )
        failing = GaugeMetricFamily(
            "postdesk_sync_failing", "1 while the mailbox's last sync failed", labels=["mailbox"]
        )
        paused = GaugeMetricFamily(
            "postdesk_mailbox_paused", "1 while an admin has paused the mailbox", labels=["mailbox"]
        )
        quota = GaugeMetricFamily(
            "postdesk_gmail_quota_units_today", "Gmail quota units spent today (UTC)", labels=["mailbox"]
        )
        outbox = GaugeMetricFamily(
            "postdesk_outbox_waiting", "Outbox mail not yet confirmed sent", labels=["mailbox"]
        )
        oldest = GaugeMetricFamily(
            "postdesk_outbox_oldest_age_seconds", "Age of the oldest waiting Outbox mail", labels=["mailbox"]
        )
        labels = GaugeMetricFamily(
            "postdesk_label_requests_waiting", "Tickets whose Gmail labels wait to be put", labels=["mailbox"]
        )
        pushed = GaugeMetricFamily(
            "postdesk_push_sync_waiting",
            "1 while a push asked for a sync not yet started",
            labels=["mailbox"],
        )
        usage = dict(
            db.execute(
                select(GmailUsage.mailbox_id, GmailUsage.units).where(GmailUsage.day == now.date())
            ).all()
        )
        waiting = {row[0]: (row[1], row[2]) for row in db.execute(
            select(Outbox.mailbox_id, func.count(), func.min(Outbox.created_at)).where(Outbox.state.in_(WAITING))
            .group_by(Outbox.mailbox_id))}  # fmt: skip
        wanted = dict(db.execute(select(Ticket.mailbox_id, func.count()).where(Ticket.labels_wanted_at.is_not(None))
                                 .group_by(Ticket.mailbox_id)).all())  # fmt: skip
        for box in db.scalars(select(Mailbox).order_by(Mailbox.address)):
            name = [box.address]
            if box.last_sync_at is not None:
                lag.add_metric(name, max(0.0, (now - box.last_sync_at).total_seconds()))
                last.add_metric(name, box.last_sync_at.timestamp())
            failing.add_metric(name, 1.0 if box.sync_state == "error" else 0.0)
            paused.add_metric(name, 1.0 if box.paused else 0.0)
            quota.add_metric(name, float(usage.get(box.id, 0)))
            count, first = waiting.get(box.id, (0, None))
            outbox.add_metric(name, float(count))
            oldest.add_metric(name, max(0.0, (now - first).total_seconds()) if first is not None else 0.0)
            labels.add_metric(name, float(wanted.get(box.id, 0)))
            pushed.add_metric(name, 1.0 if box.sync_wanted_at is not None else 0.0)
        db.rollback()
        yield from (lag, last, failing, paused, quota, outbox, oldest, labels, pushed)
        if current_app.config["TASKS"] == "procrastinate":
            yield from _queue(db)


def _queue(db: Session) -> Iterator[GaugeMetricFamily]:
    """The task queue (``TASKS=procrastinate``): depth and latency per task, and the workers alive."""
    figures = queue_figures(db, stalled_seconds=float(current_app.config["TASK_STALLED_SECONDS"]))
    db.rollback()
    depth = GaugeMetricFamily("postdesk_tasks", "Tasks in the queue by state", labels=["task", "state"])
    wait = GaugeMetricFamily(
        "postdesk_tasks_oldest_wait_seconds", "How long the oldest waiting task has waited", labels=["task"]
    )
    for task, status, count, waited in figures["jobs"]:
        depth.add_metric([task, {"todo": "waiting", "doing": "running"}.get(status, status)], float(count))
        if status == "todo":
            wait.add_metric([task], waited)
    workers = GaugeMetricFamily("postdesk_task_workers", "Workers that sent a heartbeat lately")
    workers.add_metric([], float(figures["workers"]))
    yield from (depth, wait, workers)


def _allowed() -> bool:
    token = str(current_app.config.get("METRICS_TOKEN") or "")
    if not token:  # this machine itself, not a request a proxy on this machine passed on
        return is_loopback(request.remote_addr or "") and "X-Forwarded-For" not in request.headers
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), token.encode())


@bp.get("/metrics")
def metrics() -> Response:
    if not _allowed():
        return Response("forbidden\n", status=403, mimetype="text/plain")
    registry: CollectorRegistry = current_app.extensions["postdesk_metrics"]
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def init_app(app: Flask) -> None:
    """The registry (this app's own: tests build many apps), the HTTP histogram and the route."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector())
    latency = Histogram("postdesk_http_request_seconds", "HTTP request latency by route", ["route", "method"],
                        registry=registry)  # fmt: skip
    app.extensions["postdesk_metrics"] = registry

    @app.before_request
    def started() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def observed(response: Response) -> Response:
        began = g.get("metrics_started")
        if began is not None:
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            latency.labels(route, request.method).observe(time.perf_counter() - began)
        return response

    app.register_blueprint(bp)
