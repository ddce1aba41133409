"""What the ratio benches share: a file database with support@ and Anna, and the printed verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

from server import create_app
from server.base.db import init_db
from server.base.models import Agent, AuthKind, Mailbox
from server.services.accounts import MailboxSpec, add_mailbox, ensure_agent


def bench_app(path: Path, **config: Any) -> Flask:
    """An app on a new SQLite file at ``path`` (its folder is the instance folder)."""
    app = create_app({"DATABASE_URL": f"sqlite:///{path}", "INSTANCE_PATH": str(path.parent), **config})
    with app.app_context():
        init_db(app)
    return app


def support_mailbox(session: Session) -> tuple[Mailbox, Agent]:
    """support@example.com (a sandbox nobody listens on: benches never call Gmail) and Anna in it."""
    box = add_mailbox(
        session,
        MailboxSpec("support@example.com", AuthKind.SANDBOX, "http://127.0.0.1:9/", None, "Support"),
    )
    return box, ensure_agent(session, "anna@example.com", "Anna", mailbox=box)


def verdict(figures: dict[str, Any], summary: str, ratio: float, target: float, failure: str) -> int:
    """Print the figures as JSON and the one-line summary; exit code 1 when the ratio misses its target."""
    print(json.dumps(figures, indent=2))
    print(summary)
    if ratio > target:
        print(f"FAIL: {failure}")
        return 1
    return 0
