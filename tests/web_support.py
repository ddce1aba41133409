"""What the settings-page tests share: an app signed in through the stand-in Google, and people."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from oidc_issuer import StandInGoogle
from sqlalchemy import select

from server import create_app
from server.base.db import get_engine, get_session, init_db
from server.base.models import Rule


@pytest.fixture
def google() -> Iterator[StandInGoogle]:
    issuer = StandInGoogle()
    yield issuer
    issuer.close()


@pytest.fixture
def web(database_url: str, tmp_path: Path, google: StandInGoogle) -> Iterator[Flask]:
    """The app with sign-in pointed at the stand-in Google (plain HTTP cookies, as in a test client)."""
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "COOKIE_SECURE": False,
            "SIGN_IN_RATE_LIMIT": "1000 per minute",
            **google.config(),
        }
    )
    with app.app_context():
        init_db()
    yield app
    get_engine(app).dispose()


@pytest.fixture
def team(web: Flask) -> dict[str, Any]:
    """An admin, a manager, an agent and an agent who is admin of the one mailbox they share."""
    from server.base.models import AuthKind
    from server.services.accounts import AgentChange, MailboxSpec, add_agent, add_mailbox

    with web.app_context():
        db = get_session()
        box = add_mailbox(
            db, MailboxSpec("support@example.com", AuthKind.SANDBOX, "http://127.0.0.1:9/", None, "Support")
        )
        people = {
            role: add_agent(
                db,
                f"{role}@example.com",
                AgentChange(name=role.title(), role=role, mailboxes=("support@example.com",)),
            ).id
            for role in ("admin", "manager", "agent")
        }
        people["boxadmin"] = add_agent(
            db, "boxadmin@example.com", AgentChange(name="Box Admin", mailboxes=("support@example.com",),
                                                    admin_of=("support@example.com",))
        ).id  # fmt: skip
        people["mailbox"] = box.id
        from server.services import rule_sets

        rule = "rules:\n  - name: Tag every ticket\n    trigger: ticket_created\n    actions: [{add_tag: seen}]\n"
        rule_sets.save(db, box, rule_sets.parse(db, box, rule))
        people["rule"] = db.scalar(select(Rule.id).where(Rule.mailbox_id == box.id))
        from datetime import UTC, datetime

        from server.base.crypto import encrypt_json
        from server.base.models import Agent, Webhook
        from server.services import api_tokens

        admin = db.get(Agent, people["admin"])
        token, _secret = api_tokens.create(
            db, owner=admin, name="Admin's script", scopes=["tickets:read"], expires_at=None, by=admin,
            now=datetime.now(UTC),
        )  # fmt: skip
        # Saved as if allowed then: the connection's own check refuses it when tested (no network needed).
        hook = Webhook(mailbox_id=box.id, url="https://127.0.0.1:9/hook", events=["ticket.created"],
                       secret_encrypted=encrypt_json({"secret": "whsec_test"}), enabled=True)  # fmt: skip
        db.add(hook)
        db.commit()
        people["token"], people["webhook"] = token.id, hook.id
    return people


def sign_in(client: FlaskClient, google: StandInGoogle, email: str, next_path: str | None = None) -> Any:
    """The whole redirect dance: Postdesk → the stand-in's consent → Postdesk's callback."""
    google.person = {"email": email, "name": email.split("@")[0].title()}
    start = client.get("/auth/sign-in", query_string={"next": next_path} if next_path else None)
    assert start.status_code == 302, start.data
    consent = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    assert consent.status_code == 302
    back = urllib.parse.urlsplit(consent.headers["Location"])
    return client.get(f"{back.path}?{back.query}")


def csrf_token(client: FlaskClient, path: str = "/settings/profile") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match[1]
