"""@mentions in notes and following a ticket: who a mention names (never guessed), the one email each
mentioned person gets in their language, their Mentions list, and followers told what the assignee is."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime

import pytest
from addon_fixtures import addon, desk, keys  # noqa: F401  (fixtures)
from api_support import SUPPORT, api_app, api_desk  # noqa: F401  (fixtures)
from helpers import MAILBOX, make_email, postdesk_command, run_postdesk
from sqlalchemy import select

from server.base.models import Agent, Note, NoteMention, Outbox, Ticket, TicketFollower
from server.services import following, mentions, tickets
from server.services.accounts import ensure_agent
from server.services.mentions import MentionProblem


@pytest.fixture
def team(session, mailbox):
    """Anna (the fixture's), Anna Smith, Борис Петров (Russian), Chen outside the mailbox."""
    people = {
        "anna": session.scalar(select(Agent).where(Agent.email == "anna@example.com")),
        "annas": ensure_agent(session, "anna.smith@example.com", "Anna Smith", mailbox=mailbox),
        "boris": ensure_agent(session, "boris@example.com", "Борис Петров", mailbox=mailbox),
        "chen": ensure_agent(session, "chen@example.com", "Chen Wei"),
    }
    people["boris"].locale = "ru"
    customer_ticket = tickets.open_ticket(session, mailbox.id, subject="Printer jams", customer=None,
                                          gmail_thread_id="t-1", created_at=datetime.now(UTC))  # fmt: skip
    session.commit()
    people["ticket"] = customer_ticket
    return people


@pytest.mark.parametrize(
    ("text", "who"),
    [
        ("@Борис please look", ["boris"]),
        ("спасибо, @борис петров!", ["boris"]),
        ("@Anna Smith and @boris", ["annas", "boris"]),
        ("@ANNA.SMITH knows", ["annas"]),
        ("ask @anna.smith@example.com", ["annas"]),
        ("write to bob@customer.test about it", []),  # an address in the text is no mention
        ("no mention at all", []),
    ],
)
def test_who_a_mention_names(session, mailbox, team, text, who):
    found = mentions.find(session, mailbox, text)
    assert found.problems == []
    assert [a.id for a in found.agents] == [team[w].id for w in who]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("@Anna look", "@Anna could be Anna, Anna Smith: write more of the name"),
        ("@zed look", "@zed: nobody of the team by that name or address"),
        ("@Chen please", "@Chen: Chen Wei cannot see support@example.com"),
    ],
)
def test_an_unknown_ambiguous_or_unseeing_mention_is_shown_back_and_nothing_is_saved(
    session, team, text, problem
):
    with pytest.raises(MentionProblem) as refused:
        mentions.add_note(session, team["ticket"], text, writer=team["anna"], at=datetime.now(UTC))
    assert refused.value.problems == [problem]
    session.rollback()
    assert session.scalar(select(Note.id)) is None and session.scalar(select(Outbox.id)) is None


def test_a_note_mentions_at_most_twenty_people(session, mailbox, team):
    for n in range(21):
        ensure_agent(session, f"person{n}@example.com", f"Person{n} Example", mailbox=mailbox)
    session.commit()
    text = " ".join(f"@Person{n}" for n in range(21))
    found = mentions.find(session, mailbox, text)
    assert found.problems == ["a note mentions at most 20 people (21 here)"]
    assert mentions.find(session, mailbox, " ".join(f"@Person{n}" for n in range(20))).problems == []


def test_a_mention_mails_the_person_once_in_their_language_and_they_follow(session, mailbox, team):
    ticket = team["ticket"]
    note = mentions.add_note(session, ticket, "@Борис and @Anna Smith, see this. @Anna Smith again.",
                             writer=team["annas"], at=datetime.now(UTC))  # fmt: skip
    session.commit()
    assert note.mentions == [team["boris"].id, team["annas"].id]
    mail = session.scalars(select(Outbox).order_by(Outbox.id)).all()
    assert [m.to for m in mail] == ["boris@example.com"]  # the writer mentioned herself: no mail
    assert mail[0].subject == "[#1] Anna Smith упоминает вас: Printer jams"
    assert "@Борис and @Anna Smith" in mail[0].body_text and (mail[0].headers or {}).get("internal") is True
    assert {f.agent_id for f in session.scalars(select(TicketFollower))} == {team["boris"].id}
    # Their Mentions list holds it until they open the ticket.
    assert [n.id for n, _t in mentions.unseen(session, team["boris"], [mailbox.id])] == [note.id]
    from server.base.db import upsert
    from server.base.models import TicketView

    upsert(session, TicketView.__table__, {"ticket_id": ticket.id, "agent_id": team["boris"].id},
           {"viewed_at": datetime.now(UTC)})  # fmt: skip
    session.commit()
    assert mentions.unseen(session, team["boris"], [mailbox.id]) == []
    # Mention mail off by choice: the mention is kept, no mail.
    team["boris"].notifications = {"mentions": False}
    mentions.add_note(session, ticket, "@Борис once more", writer=team["anna"], at=datetime.now(UTC))
    session.commit()
    assert session.scalar(select(Outbox.id).where(Outbox.subject.contains("once more"))) is None
    assert (
        len(session.scalars(select(NoteMention).where(NoteMention.agent_id == team["boris"].id)).all()) == 2
    )


def test_followers_are_told_what_the_assignee_is_told(session, mailbox, team):
    ticket = team["ticket"]
    tickets.assign(session, ticket, team["anna"].id, at=datetime.now(UTC))
    following.follow(session, ticket, team["boris"], at=datetime.now(UTC))
    following.follow(session, ticket, team["boris"], at=datetime.now(UTC))  # twice is once
    session.commit()
    assert following.watchers(session, ticket) == ["anna@example.com", "boris@example.com"]
    team["boris"].notifications = {"following": False}
    assert following.watchers(session, ticket) == ["anna@example.com"]
    following.unfollow(session, ticket, team["boris"])
    assert following.followers(session, ticket) == []


def test_the_card_writes_mentions_lists_them_and_follows(addon, session, desk):  # noqa: F811
    ticket = session.scalar(select(Ticket).where(Ticket.subject == "Cannot log in"))
    note = {"note": {"stringInputs": {"value": ["@Bob can you call her?"]}}}
    answer = addon.act("add_note", form=note, ticket=ticket.id).get_json()["renderActions"]["action"]
    assert answer["notification"]["text"] == "Done"
    bad = addon.act("add_note", form={"note": {"stringInputs": {"value": ["@Zed?"]}}}, ticket=ticket.id)
    assert "@Zed: nobody of the team" in bad.get_json()["renderActions"]["action"]["notification"]["text"]
    home = addon.post("/addon/v1/homepage", "bob@example.com").get_data(as_text=True)
    assert "Mentions (1)" in home and "@Bob can you call her?" in home
    card = addon.message("<alice-1@customer.test>", "bob@example.com").get_data(as_text=True)
    assert "Bob" in card and "Stop following" in card and "@ </b>" in card  # follows; the note is marked
    assert "Mentions" not in addon.post("/addon/v1/homepage", "bob@example.com").get_data(as_text=True)
    stop = addon.act("unfollow", "bob@example.com", ticket=ticket.id).get_json()["renderActions"]["action"]
    assert stop["notification"]["text"] == f"You no longer follow #{ticket.number}"
    again = addon.act("follow", "bob@example.com", ticket=ticket.id).get_json()["renderActions"]["action"]
    assert again["notification"]["text"] == f"You follow #{ticket.number}"


def test_the_api_mentions_and_follows(api_desk):  # noqa: F811
    api = api_desk
    ticket = api.tickets[SUPPORT][0]
    refused = api.call("POST", f"/api/v1/tickets/{ticket}/notes", "anna", json={"body": "@nobody here"})
    assert refused.status_code == 400 and "@nobody" in refused.json["detail"]
    boris = api.call("POST", f"/api/v1/tickets/{ticket}/notes", "anna", json={"body": "@boris look"})
    assert boris.status_code == 400 and "cannot see" in boris.json["detail"]  # Boris works in sales@
    made = api.call("POST", f"/api/v1/tickets/{ticket}/notes", "anna", json={"body": "@admin look"})
    assert made.status_code == 400  # the admin is no member of support@ either
    followed = api.call("POST", f"/api/v1/tickets/{ticket}/follow", "anna", json={})
    assert followed.status_code == 200 and followed.json["following"] is True
    assert [f["email"] for f in followed.json["followers"]] == ["anna@example.com"]
    stopped = api.call("POST", f"/api/v1/tickets/{ticket}/unfollow", "anna", json={})
    assert stopped.json == {"following": False, "followers": []}
    assert api.call("POST", f"/api/v1/tickets/{ticket}/follow", "anna_read", json={}).status_code == 403


@pytest.mark.slow
def test_a_mention_is_mailed_once_whatever_kills_the_sender(tmp_path, gmail):
    # Its own SQLite file: the Outbox's exactly-once under kill -9 is proven on both databases by
    # tests/test_outbox_crash.py; this one shows mention mail rides on it (one pass is enough).
    database_url = f"sqlite:///{tmp_path / 'postdesk.sqlite3'}"
    env = {**os.environ, "POSTDESK_DATABASE_URL": database_url, "POSTDESK_INSTANCE_PATH": str(tmp_path / "i"),
           "POSTDESK_OUTBOX_CLAIM_SECONDS": "0"}  # fmt: skip
    assert run_postdesk(["init-db"], env).returncode == 0
    assert (
        run_postdesk(
            ["mailbox", "add", MAILBOX, "--sandbox", gmail.url, "--no-default-rules"], env
        ).returncode
        == 0
    )
    assert run_postdesk(["agent", "add", "anna@example.com", "--mailbox", MAILBOX], env).returncode == 0
    assert (
        run_postdesk(
            ["agent", "add", "bob@example.com", "--mailbox", MAILBOX, "--locale", "ru"], env
        ).returncode
        == 0
    )
    assert run_postdesk(["sync", "--once"], env).returncode == 0
    gmail.sandbox.deliver(MAILBOX, make_email("Printer jams", "Help", sender="carol@shop.example"))
    assert run_postdesk(["sync", "--once", "--no-send"], env).returncode == 0
    from sqlalchemy import create_engine

    from server import create_app
    from server.base.db import get_engine, get_session

    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "INSTANCE_PATH": str(tmp_path / "i")})
    with app.app_context():
        db = get_session()
        ticket = db.scalar(select(Ticket))
        anna = db.scalar(select(Agent).where(Agent.email == "anna@example.com"))
        for n in range(8):
            mentions.add_note(db, ticket, f"@bob look {n}", writer=anna, at=datetime.now(UTC))
        db.commit()
    get_engine(app).dispose()
    from server.gmail.sandbox.faults import FaultPlan

    gmail.gate.set_plan(FaultPlan(latency_ms=120))  # Gmail's own pace: the kills land while it sends
    seen = []
    for delay in (1.4, 1.9, 2.4):  # the sender killed at moments of its work, then run again
        process = subprocess.Popen([postdesk_command(), "sync", "--once"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        seen.append(sum(1 for m in gmail.sandbox.user(MAILBOX).messages.values() if "SENT" in m.label_ids))
    print("sent after each kill", seen)
    gmail.gate.set_plan(FaultPlan())
    assert run_postdesk(["sync", "--once"], env).returncode == 0
    sent = [m for m in gmail.sandbox.user(MAILBOX).messages.values() if "SENT" in m.label_ids]
    told = [
        m
        for m in sent
        if "упоминает вас".encode() in m.raw or b"bob@example.com" in m.raw.split(b"\r\n\r\n")[0]
    ]
    subjects = sorted(m.subject for m in told)
    assert len(subjects) == 8 and len(set(m.parsed.get("Message-ID") for m in told)) == 8, subjects
    engine = create_engine(database_url)
    with engine.connect() as connection:
        from sqlalchemy import text

        states = connection.execute(text("SELECT state, count(*) FROM outbox GROUP BY state")).all()
    engine.dispose()
    assert dict(states) == {"sent": 8}
