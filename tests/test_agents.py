"""The team from the command line: ``postdesk agent add|list|set`` over the one agent service."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from helpers import MAILBOX, postdesk_command
from sqlalchemy import select

from server.base.models import Agent, Event
from server.services.accounts import AccountError, AgentChange, add_agent, update_agent


def agent_cli(runner, *args: str):
    return runner.invoke(args=["agent", *args])


def test_the_first_admin_of_a_fresh_install_is_added_from_a_real_command(database_url, tmp_path):
    env = {**os.environ, "POSTDESK_DATABASE_URL": database_url, "POSTDESK_INSTANCE_PATH": str(tmp_path)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [postdesk_command(), *args], env=env, capture_output=True, text=True, timeout=60
        )

    assert run("init-db").returncode == 0
    empty = run("agent", "list")
    added = run("agent", "add", "Olga@Example.com", "--role", "admin", "--name", "Ольга", "--locale", "ru",
                "--timezone", "Europe/Moscow")  # fmt: skip
    listed = json.loads(run("agent", "list", "--json").stdout)

    assert "postdesk agent add EMAIL --role admin" in empty.stdout
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "olga@example.com added as admin"
    assert listed == [{"email": "olga@example.com", "name": "Ольга", "role": "admin", "active": True,
                       "away": False, "locale": "ru", "timezone": "Europe/Moscow", "mailboxes": [], "admin_of": []}]  # fmt: skip


def test_add_set_and_list_with_mailboxes_roles_and_state(runner, session, mailbox):
    added = agent_cli(runner, "add", "boris@example.com", "--role", "manager", "--mailbox", MAILBOX)
    changed = agent_cli(runner, "set", "boris@example.com", "--role", "agent", "--away", "--name", "Boris")
    back = agent_cli(runner, "set", "boris@example.com", "--back", "--inactive")
    listed = agent_cli(runner, "list")

    boris = session.scalar(select(Agent).where(Agent.email == "boris@example.com"))
    assert added.exit_code == 0 and "added as manager" in added.output
    assert changed.exit_code == 0 and changed.output.strip() == "boris@example.com: agent, active, away"
    assert back.output.strip() == "boris@example.com: agent, inactive"
    assert (boris.name, boris.role, boris.active, boris.away) == ("Boris", "agent", False, False)
    assert [m.address for m in boris.mailboxes] == [MAILBOX]
    assert "boris@example.com" in listed.output and "inactive" in listed.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "not-an-address"], "not an email address"),
        (["add", "anna@example.com"], "already exists"),
        (["add", "x@example.com", "--timezone", "Mars/Olympus"], "unknown time zone"),
        (["add", "x@example.com", "--mailbox", "nobody@example.com"], "no mailbox nobody@example.com"),
        (["add", "x@example.com", "--name", "a\x00b"], "printable characters"),
        (["set", "ghost@example.com", "--away"], "no agent ghost@example.com"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(runner, session, mailbox, args, message):
    before = session.scalar(select(Agent.id).order_by(Agent.id.desc()))

    result = agent_cli(runner, *args)

    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    session.expire_all()
    assert session.scalar(select(Agent.id).order_by(Agent.id.desc())) == before


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(session, mailbox):
    add_agent(session, "root@example.com", AgentChange(role="admin"))

    with pytest.raises(AccountError, match="last active admin"):
        update_agent(session, "root@example.com", AgentChange(role="manager"))
    with pytest.raises(AccountError, match="last active admin"):
        update_agent(session, "root@example.com", AgentChange(active=False))
    add_agent(session, "second@example.com", AgentChange(role="admin"))
    update_agent(session, "root@example.com", AgentChange(role="agent"))  # another admin is left
    with pytest.raises(AccountError, match="last active admin"):
        update_agent(session, "second@example.com", AgentChange(active=False))

    session.expire_all()
    roles = {
        email: role
        for email, role in session.execute(select(Agent.email, Agent.role).where(Agent.role == "admin"))
    }
    assert roles == {"second@example.com": "admin"}


def test_every_change_is_an_audit_event_with_before_and_after(session, mailbox):
    add_agent(session, "dina@example.com", AgentChange(name="Dina", role="agent"))
    update_agent(session, "dina@example.com", AgentChange(role="manager", name="Dina"))  # name unchanged
    update_agent(session, "dina@example.com", AgentChange(name="Dina"))  # nothing changed: no event

    events = session.scalars(select(Event).where(Event.kind.in_(["agent_added", "agent_changed"]))).all()
    assert [e.kind for e in events] == ["agent_added", "agent_changed"]
    assert events[0].after["role"] == "agent" and events[0].ticket_id is None
    assert events[1].before == {"role": "agent", "email": "dina@example.com"}
    assert events[1].after == {"role": "manager", "email": "dina@example.com"}
