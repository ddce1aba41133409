"""The worker's work as tasks, run by one of two backends that ``TASKS`` chooses.

``inline`` (the default; the embedded SQLite setup): the clock (APScheduler, under the worker lease)
runs each piece of work itself, in the process that holds the lease. One worker works; others wait.

``procrastinate`` (PostgreSQL): the clock only *enqueues*; every ``postdesk worker`` process runs the
queued tasks (procrastinate, a PostgreSQL-backed task queue: the queue lives in the database Postdesk
already has, so there is no broker to run). Per-mailbox work carries the lock ``mailbox-<id>``, so
one mailbox is worked on by one worker at a time, and a queueing lock, so a mailbox has at most one
such task waiting (a mailbox polled every minute while a slow sync runs does not pile up tasks, and
the queue is first in, first out, so no mailbox starves). A worker that dies (SIGKILL, a lost
machine) stops sending heartbeats; the clock puts its unfinished task back in the queue after
``TASK_STALLED_SECONDS`` (see :func:`recover_stalled`), and the lock goes with it.

Why procrastinate (docs/architecture.md): PostgreSQL is already there; its locks are exactly "one
mailbox, one worker"; workers record heartbeats, so stalled jobs can be found; it is typed and kept
up. The work itself lives in :mod:`server.flows.clock.jobs`, which registers it here; a task is one call into it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import procrastinate
from flask import Flask
from procrastinate import sql
from procrastinate.exceptions import AlreadyEnqueued, UniqueViolation
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

BACKENDS = ("inline", "procrastinate")
_opening = threading.Lock()  # one enqueuing pool per app, however many threads ask first


#: The work itself, filled in by :mod:`server.flows.clock.jobs` (which owns it) when it is imported: per mailbox
#: (each task under the mailbox's lock), and across mailboxes (at most one waiting, one running).
MAILBOX_KINDS = ("sync", "send", "time_rules")
MAILBOX_WORK: dict[str, Callable[[int], None]] = {}
GLOBAL_WORK: dict[str, Callable[[], None]] = {}


def _sync(mailbox_id: int) -> None:
    MAILBOX_WORK["sync"](mailbox_id)


def _send(mailbox_id: int) -> None:
    MAILBOX_WORK["send"](mailbox_id)


def _time_rules(mailbox_id: int) -> None:
    MAILBOX_WORK["time_rules"](mailbox_id)


def _global(name: str) -> None:
    GLOBAL_WORK[name]()


def _procrastinate(connector: Any) -> procrastinate.App:
    """A procrastinate app that knows Postdesk's tasks (``postdesk.<kind>``), on ``connector``."""
    tasks = procrastinate.App(connector=connector)
    tasks.task(name="postdesk.sync")(_sync)
    tasks.task(name="postdesk.send")(_send)
    tasks.task(name="postdesk.time_rules")(_time_rules)
    tasks.task(name="postdesk.global")(_global)
    return tasks


def backend(app: Flask) -> str:
    return str(app.config["TASKS"])


def check_backend(app: Flask) -> None:
    """A clear error at start-up for a backend that cannot run here."""
    chosen = backend(app)
    if chosen not in BACKENDS:
        raise ValueError(f"POSTDESK_TASKS: {chosen!r} is not one of {', '.join(BACKENDS)}")
    if chosen == "procrastinate" and make_url(app.config["DATABASE_URL"]).get_backend_name() != "postgresql":
        raise ValueError(
            "POSTDESK_TASKS=procrastinate needs PostgreSQL (POSTDESK_DATABASE_URL=postgresql://…)"
        )


def conninfo(app: Flask) -> str:
    """libpq's form of the database URL (procrastinate speaks psycopg directly)."""
    url = make_url(app.config["DATABASE_URL"]).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def queue_app(app: Flask) -> procrastinate.App:
    """This process's procrastinate app for enqueuing (a small synchronous pool), opened on first use."""
    state = app.extensions.setdefault("postdesk_tasks", {})
    with _opening:
        if "queue" not in state:
            connector = procrastinate.SyncPsycopgConnector(conninfo=conninfo(app), min_size=1, max_size=4)
            state["queue"] = _procrastinate(connector)
            state["queue"].open()
    opened: procrastinate.App = state["queue"]
    return opened


def enqueue(app: Flask, kind: str, *, mailbox_id: int | None = None, name: str | None = None) -> bool:
    """Have this work done: now in this thread (inline), or by a worker (queued). False when the
    same work is already waiting in the queue (it will read the latest state anyway)."""
    if backend(app) == "inline":
        if kind == "global":
            _global(str(name))
        else:
            assert mailbox_id is not None
            MAILBOX_WORK[kind](mailbox_id)
        return True
    queue = queue_app(app)
    if kind == "global":
        assert name is not None
        configured = queue.configure_task(
            "postdesk.global", allow_unknown=False, lock=f"global-{name}", queueing_lock=f"global-{name}"
        )
        arguments: dict[str, Any] = {"name": name}
    else:
        assert kind in MAILBOX_KINDS and mailbox_id is not None
        configured = queue.configure_task(
            f"postdesk.{kind}",
            allow_unknown=False,
            lock=f"mailbox-{mailbox_id}",
            queueing_lock=f"{kind}-{mailbox_id}",
        )
        arguments = {"mailbox_id": mailbox_id}
    try:
        configured.defer(**arguments)
    except AlreadyEnqueued:
        return False
    return True


def recover_stalled(app: Flask) -> int:
    """Put back in the queue the tasks of workers that stopped sending heartbeats (killed, or their
    machine lost): their mailbox locks go with them, so another worker takes the mailbox over."""
    if backend(app) != "procrastinate":
        return 0
    queue = queue_app(app)
    connector = queue.connector.get_sync_connector()
    rows = connector.execute_query_all(
        query=sql.queries["select_stalled_jobs_by_heartbeat"],
        queue=None,
        task_name=None,
        seconds_since_heartbeat=float(app.config["TASK_STALLED_SECONDS"]),
    )
    for row in rows:
        try:
            queue.job_manager.retry_job_by_id(row["id"], retry_at=datetime.now(UTC))
        except UniqueViolation:  # the same work already waits in the queue (queued meanwhile): it will do
            connector.execute_query(query=sql.queries["finish_job"], job_id=row["id"], status="failed",
                                    delete_job=True)  # fmt: skip
        log.warning("task_recovered id=%s task=%s lock=%s", row["id"], row["task_name"], row["lock"])
    return len(rows)


def prune_finished(app: Flask, *, days: float = 7) -> None:
    """Forget failed and aborted tasks finished more than ``days`` ago (successful ones are deleted
    as they end), so the queue's table does not grow forever; their errors are in the logs."""
    if backend(app) != "procrastinate":
        return
    queue_app(app).connector.get_sync_connector().execute_query(
        query=sql.queries["delete_old_jobs"],
        nb_hours=int(days * 24),
        queue=None,
        statuses=["succeeded", "failed", "aborted", "cancelled"],
    )


#: How long a task worker that stopped by itself waits before it starts again: doubling from the first
#: to the last, back to the first after a run that lasted longer than the last.
RESTART_SECONDS = (1.0, 30.0)


def run_task_worker(app: Flask, stop: threading.Event, *, name: str) -> None:
    """Run queued tasks until ``stop`` is set; a task under way finishes first.

    procrastinate's worker stops by itself when one of its side tasks fails — the heartbeat or the
    LISTEN connection, when PostgreSQL restarts or fails over. The process would go on holding the
    clock's lease and queueing tasks that nothing runs; instead the worker starts again (with a new
    connection pool) until ``stop`` is set."""
    from procrastinate.worker import Worker

    async def run_once() -> None:
        connector = procrastinate.PsycopgConnector(conninfo=conninfo(app), min_size=1, max_size=3)
        runner = _procrastinate(connector)
        async with runner.open_async():
            worker = Worker(
                runner,
                name=name,
                concurrency=int(app.config["WORKER_CONCURRENCY"]),
                install_signal_handlers=False,
                delete_jobs="successful",
                update_heartbeat_interval=float(app.config["TASK_HEARTBEAT_SECONDS"]),
                stalled_worker_timeout=float(app.config["TASK_STALLED_SECONDS"]),
                fetch_job_polling_interval=float(app.config["TASK_POLL_SECONDS"]),
            )
            running = asyncio.create_task(worker.run())  # type: ignore[no-untyped-call]
            while not stop.is_set() and not running.done():
                await asyncio.sleep(0.2)
            if not running.done():
                worker.stop()  # type: ignore[no-untyped-call]
            await running

    async def work() -> None:
        first, last = RESTART_SECONDS
        wait = first
        while not stop.is_set():
            began = asyncio.get_running_loop().time()
            try:
                await run_once()
            except Exception as exc:  # the database went away under it, or would not let it start
                problem = f"{type(exc).__name__}: {str(exc)[:200]}"
            else:
                problem = "it stopped by itself (a side task failed)"
            if stop.is_set():
                break
            if asyncio.get_running_loop().time() - began > last:
                wait = first
            log.warning("task_worker_stopped name=%s problem=%r restart_in=%.0f", name, problem, wait)
            await asyncio.to_thread(stop.wait, wait)
            wait = min(wait * 2, last)

    asyncio.run(work())


def queue_figures(session: Session, *, stalled_seconds: float) -> dict[str, Any]:
    """The queue as /metrics shows it: per task, tasks waiting, running and failed, and how long the
    oldest waiting one has waited (the queue's latency now); and the workers alive."""
    rows = session.execute(
        text(
            "SELECT j.task_name, j.status::text, count(*),"
            " max(extract(epoch FROM now() - e.at)) FILTER (WHERE j.status = 'todo')"
            " FROM procrastinate_jobs j LEFT JOIN procrastinate_events e"
            " ON e.job_id = j.id AND e.type = 'deferred'"
            " WHERE j.status IN ('todo', 'doing', 'failed') GROUP BY j.task_name, j.status"
        )
    ).all()
    alive = session.execute(
        text(
            "SELECT count(*) FROM procrastinate_workers"
            " WHERE last_heartbeat >= now() - make_interval(secs => :seconds)"
        ),
        {"seconds": stalled_seconds},
    ).scalar_one()
    return {"jobs": [(task, status, int(count), float(wait or 0.0)) for task, status, count, wait in rows],
            "workers": int(alive)}  # fmt: skip


def queue_is_reachable(session: Session) -> bool:
    """The task queue answers (its tables exist and can be read)."""
    try:
        session.execute(text("SELECT 1 FROM procrastinate_jobs LIMIT 1")).all()
    except SQLAlchemyError:
        session.rollback()
        return False
    return True
