"""A helpdesk for the REST API's tests: two mailboxes, a team, some tickets, and a token per person."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from server import create_app
from server.base.db import get_engine, get_session, init_db

SUPPORT, SALES = "support@example.com", "sales@example.com"


@dataclass
class Desk:
    """The app, its people (email → id), mailboxes (address → id), tickets (ids) and tokens."""

    app: Flask
    people: dict[str, int] = field(default_factory=dict)
    mailboxes: dict[str, int] = field(default_factory=dict)
    tickets: dict[str, list[int]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def client(self) -> FlaskClient:
        return self.app.test_client()

    def call(self, method: str, path: str, token: str | None = None, **options: Any) -> TestResponse:
        headers = dict(options.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        return self.client.open(path, method=method, headers=headers, **options)

    def token(
        self, email: str, scopes: list[str], *, expires_in: timedelta | None = None, by: str | None = None
    ) -> str:
        from server.base.models import Agent
        from server.services import api_tokens

        with self.app.app_context():
            db = get_session()
            owner = db.get(Agent, self.people[email])
            maker = db.get(Agent, self.people[by or email])
            assert owner is not None and maker is not None
            now = datetime.now(UTC)
            _, secret = api_tokens.create(
                db,
                owner=owner,
                name=f"{email} {' '.join(scopes)}",
                scopes=scopes,
                expires_at=now + expires_in if expires_in else None,
                by=maker,
                now=now,
            )
            db.commit()
        return secret


def build_desk(app: Flask, tickets_per_mailbox: int = 3) -> Desk:
    from server.base.models import AuthKind, Customer
    from server.services import tickets
    from server.services.accounts import AgentChange, MailboxSpec, add_agent, add_mailbox
    from server.services.api_tokens import Scope

    desk = Desk(app)
    with app.app_context():
        db = get_session()
        for address in (SUPPORT, SALES):
            box = add_mailbox(
                db, MailboxSpec(address, AuthKind.SANDBOX, "http://127.0.0.1:9/", None, address[:5])
            )
            desk.mailboxes[address] = box.id
        team = {
            "admin@example.com": ("admin", ()),
            "manager@example.com": ("manager", ()),
            "anna@example.com": ("agent", (SUPPORT,)),
            "boris@example.com": ("agent", (SALES,)),
        }
        for email, (role, boxes) in team.items():
            desk.people[email] = add_agent(
                db, email, AgentChange(name=email.split("@")[0].title(), role=role, mailboxes=boxes)
            ).id
        start = datetime.now(UTC) - timedelta(days=2)
        for address, mailbox_id in desk.mailboxes.items():
            desk.tickets[address] = []
            for n in range(tickets_per_mailbox):
                customer = Customer(
                    mailbox_id=mailbox_id, email=f"client{n}@shop.example", name=f"Client {n}"
                )
                db.add(customer)
                ticket = tickets.open_ticket(
                    db,
                    mailbox_id,
                    subject=f"Question {n} to {address}",
                    customer=customer,
                    gmail_thread_id=None,
                    created_at=start + timedelta(minutes=n),
                )
                desk.tickets[address].append(ticket.id)
        db.commit()
    everything = [s.value for s in Scope]
    desk.tokens["admin"] = desk.token("admin@example.com", everything)
    desk.tokens["manager"] = desk.token(
        "manager@example.com", ["tickets:read", "tickets:write", "reports:read", "settings:read"]
    )
    desk.tokens["anna"] = desk.token("anna@example.com", ["tickets:read", "tickets:write", "reports:read"])
    desk.tokens["boris"] = desk.token("boris@example.com", ["tickets:read", "tickets:write"])
    desk.tokens["anna_read"] = desk.token("anna@example.com", ["tickets:read"])
    return desk


@pytest.fixture
def api_app(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "API_RATE_LIMIT": "100000 per minute",
        }
    )
    with app.app_context():
        init_db()
    yield app
    get_engine(app).dispose()


@pytest.fixture
def api_desk(api_app: Flask) -> Desk:
    return build_desk(api_app)
