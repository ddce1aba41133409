"""APScheduler wiring and the worker loop: jobs by text reference, run only while holding the lease."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from flask import Flask
from sqlalchemy.exc import DBAPIError

from server.base.db import get_session
from server.flows.clock.lease import acquire, release

log = logging.getLogger(__name__)

#: How long a lease lasts without renewal, and how often the worker renews it (or tries to take it).
LEASE_SECONDS = 60
RENEW_SECONDS = 15


def build_scheduler(
    poll_seconds: float,
    clock_seconds: float = 60,
    push_seconds: float = 2,
    recover_seconds: float | None = None,
) -> BackgroundScheduler:
    """The clock's jobs; ``recover_seconds`` (a task queue's) puts dead workers' tasks back that often."""
    scheduler = BackgroundScheduler(timezone="UTC")
    common = {"replace_existing": True, "coalesce": True, "max_instances": 1, "misfire_grace_time": 60}
    if recover_seconds is not None:
        scheduler.add_job(
            "server.flows.clock.jobs:recover_stalled",
            "interval",
            seconds=recover_seconds,
            id="recover_stalled",
            **common,
        )
        scheduler.add_job(
            "server.flows.clock.jobs:prune_tasks", "interval", seconds=3600, id="prune_tasks", **common
        )
    scheduler.add_job(
        "server.flows.clock.jobs:poll_mailboxes",
        "interval",
        seconds=poll_seconds,
        id="poll_mailboxes",
        **common,
    )
    for job in ("send_reminders", "run_time_rules", "send_weekly_reports", "deliver_webhooks"):
        scheduler.add_job(
            f"server.flows.clock.jobs:{job}", "interval", seconds=clock_seconds, id=job, **common
        )
    scheduler.add_job(
        "server.flows.clock.jobs:sync_pushed", "interval", seconds=push_seconds, id="sync_pushed", **common
    )
    scheduler.add_job(
        "server.flows.clock.jobs:keep_watches", "interval", seconds=3600, id="keep_watches", **common
    )
    scheduler.add_job(  # solved tickets findable by meaning within a minute
        "server.flows.clock.jobs:encode_knowledge", "interval", seconds=60, id="encode_knowledge", **common
    )
    scheduler.add_job(
        "server.flows.clock.jobs:finish_retiming", "interval", seconds=60, id="finish_retiming", **common
    )
    scheduler.add_job(
        "server.flows.clock.jobs:prune_webhooks", "interval", seconds=3600, id="prune_webhooks", **common
    )
    scheduler.add_job(
        "server.flows.clock.jobs:forget_expired_sessions",
        "interval",
        seconds=3600,
        id="forget_expired_sessions",
        **common,
    )
    return scheduler


def run_worker(app: Flask, *, stop: threading.Event | None = None, holder: str | None = None) -> None:
    """Run the clock while holding the lease (wait while another worker holds it) until SIGTERM/SIGINT;
    with a task queue (``TASKS=procrastinate``), run queued tasks meanwhile, lease or not."""
    from server.flows.clock.jobs import use_app
    from server.flows.tasks import backend, check_backend, run_task_worker

    check_backend(app)
    use_app(app)
    stop = stop or threading.Event()
    holder = holder or f"{socket.gethostname()}:{os.getpid()}"
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    queued = backend(app) == "procrastinate"
    tasks: threading.Thread | None = None
    if queued:
        tasks = threading.Thread(
            target=run_task_worker, args=(app, stop), kwargs={"name": holder}, name="tasks", daemon=True
        )
        tasks.start()
        print(f"worker {holder}: running queued tasks", flush=True)  # noqa: T201 - the command's own output
    lease_seconds = app.config.get("WORKER_LEASE_SECONDS", LEASE_SECONDS)
    renew_seconds = app.config.get("WORKER_RENEW_SECONDS", RENEW_SECONDS)
    scheduler: BackgroundScheduler | None = None
    announced_waiting = False
    unreachable = False
    try:
        while not stop.is_set():
            try:
                with app.app_context():
                    held = acquire(
                        get_session(), holder, now=datetime.now(UTC), ttl=timedelta(seconds=lease_seconds)
                    )
            except DBAPIError as exc:
                # The database is away (restarted, failed over, unreachable): the lease cannot be
                # renewed, so this worker may no longer hold it — its jobs stop until it holds it again.
                if not unreachable:
                    log.warning("worker_lease unreachable holder=%s problem=%r", holder, str(exc.orig)[:200])
                unreachable, held = True, False
            else:
                if unreachable:
                    log.info("worker_lease reachable again holder=%s", holder)
                unreachable = False
            if held and scheduler is None:
                log.info("worker_lease acquired holder=%s", holder)
                print(f"worker {holder}: running the jobs", flush=True)  # noqa: T201 - the command's own output
                scheduler = build_scheduler(
                    app.config["POLL_SECONDS"],
                    app.config["CLOCK_SECONDS"],
                    app.config["PUSH_CHECK_SECONDS"],
                    app.config["TASK_RECOVER_SECONDS"] if queued else None,
                )
                scheduler.start()
                for job in scheduler.get_jobs():
                    job.modify(next_run_time=datetime.now(UTC))  # run once right away
            elif not held and scheduler is not None:
                log.warning("worker_lease lost holder=%s", holder)
                scheduler.shutdown(wait=True)
                scheduler = None
            elif not held and not announced_waiting:
                print(f"worker {holder}: another worker holds the lease; waiting", flush=True)  # noqa: T201
                announced_waiting = True
            stop.wait(renew_seconds)
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=True)  # the running job finishes; nothing is left half-done
        try:
            with app.app_context():
                release(get_session(), holder, now=datetime.now(UTC))
        except DBAPIError as exc:  # the lease runs out by itself; stopping must not wait for the database
            log.warning("worker_lease not released holder=%s problem=%r", holder, str(exc.orig)[:200])
        if tasks is not None:
            stop.set()
            tasks.join()  # the task under way finishes first
        print(f"worker {holder}: stopped", flush=True)  # noqa: T201
