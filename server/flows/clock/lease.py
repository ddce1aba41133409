"""A database lease: exactly one worker runs the scheduled jobs; another takes over when it dies.

Taking and renewing the lease is one compare-and-set UPDATE (or the first INSERT), so two processes
can never both hold it, on SQLite or PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import CursorResult, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.base.models import WorkerLease

WORKER_LEASE = "worker"


def acquire(
    session: Session, holder: str, *, now: datetime, ttl: timedelta, name: str = WORKER_LEASE
) -> bool:
    """Take or renew the lease for ``holder``; False while somebody else holds an unexpired one."""
    result = session.execute(
        update(WorkerLease)
        .where(WorkerLease.name == name, or_(WorkerLease.holder == holder, WorkerLease.expires_at <= now))
        .values(holder=holder, expires_at=now + ttl)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)  # an UPDATE's result has a row count
    if result.rowcount:
        session.commit()
        return True
    session.rollback()
    if session.get(WorkerLease, name) is not None:
        return False
    session.add(WorkerLease(name=name, holder=holder, expires_at=now + ttl, acquired_at=now))
    try:
        session.commit()
    except IntegrityError:  # another process inserted it first
        session.rollback()
        return False
    return True


def release(session: Session, holder: str, *, now: datetime, name: str = WORKER_LEASE) -> None:
    """Give the lease up at once (a graceful shutdown), if ``holder`` has it."""
    session.execute(
        update(WorkerLease)
        .where(WorkerLease.name == name, WorkerLease.holder == holder)
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    session.commit()
