"""Sync as a team sees it: every customer thread becomes one ticket, replies land where they belong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from helpers import MAILBOX, http, make_email
from sqlalchemy import func, select

from server.base.models import Event, Message, Ticket, TicketStatus
from server.gmail.sandbox.seed import seed_demo_mailbox
from server.services import tickets


def ticket_of(session, gmail_id: str) -> Ticket | None:
    message = session.scalar(select(Message).where(Message.gmail_id == gmail_id))
    return session.get(Ticket, message.ticket_id) if message and message.ticket_id else None


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_the_demo_mailbox_becomes_tickets_once_and_an_idle_poll_costs_two_units(session, gmail, sync):
    seed_demo_mailbox(gmail.sandbox)

    first = sync()
    tickets_after_first = count(session, Ticket)
    second = sync()

    assert first.mode == "full" and first.messages_filed == 49
    assert tickets_after_first == 33  # 34 threads; the "[#12]" reminder joins ticket #12
    assert second.mode == "incremental" and second.messages_filed == 0 and second.units == 2
    assert count(session, Ticket) == 33 and count(session, Message) == 49
    assert first.units <= 5.5 * 49
    numbers = session.scalars(select(Ticket.number).order_by(Ticket.number)).all()
    assert numbers == list(range(1, 34))


def test_a_new_customer_thread_opens_a_ticket_with_an_event(session, deliver, sync):
    sync()
    delivered = deliver(make_email("Printer is on fire", "Help!", sender="Bob <bob@example.org>"))
    result = sync()

    ticket = ticket_of(session, delivered["id"])
    events = session.scalars(select(Event).where(Event.ticket_id == ticket.id)).all()
    assert result.mode == "incremental" and result.tickets_opened == 1
    assert (ticket.number, ticket.subject, ticket.status) == (1, "Printer is on fire", "open")
    assert ticket.customer.email == "bob@example.org" and ticket.customer.name == "Bob"
    assert [e.kind for e in events] == ["ticket_created"] and events[0].actor_kind == "system"


def test_a_reply_in_the_thread_joins_the_ticket(session, deliver, sync):
    first = deliver(make_email("Refund", message_id="<r1@example.org>"))
    sync()
    reply = deliver(make_email("Re: Refund", "Any news?", in_reply_to="<r1@example.org>"))
    sync()
    assert reply["threadId"] == first["threadId"]
    assert ticket_of(session, reply["id"]).id == ticket_of(session, first["id"]).id
    assert count(session, Ticket) == 1


def test_a_reply_with_a_changed_subject_lands_on_the_ticket_by_its_references(session, deliver, sync):
    first = deliver(make_email("Invoice 4411", message_id="<inv@example.org>"))
    sync()
    forward = deliver(
        make_email(
            "Fwd: the invoice we talked about",
            "See below",
            sender="boss@example.org",
            in_reply_to="<inv@example.org>",
        )
    )
    sync()
    assert forward["threadId"] != first["threadId"]  # Gmail starts a new thread: the subject changed
    assert ticket_of(session, forward["id"]).id == ticket_of(session, first["id"]).id


def test_a_ticket_token_from_another_address_lands_on_that_ticket(session, deliver, sync):
    first = deliver(make_email("VPN down"))
    other = deliver(make_email("Unrelated"))
    sync()
    number = ticket_of(session, first["id"]).number
    colleague = deliver(make_email(f"Re: [#{number}] VPN down", "Same here", sender="colleague@example.net"))
    sync()
    assert ticket_of(session, colleague["id"]).number == number
    assert ticket_of(session, other["id"]).number != number


def test_agent_replies_are_outbound_and_the_first_sets_first_responded_at(session, deliver, sync):
    question = deliver(make_email("Question", message_id="<q@example.org>"))
    sync()
    answer = deliver(
        make_email(
            "Re: Question", "Answer", sender=MAILBOX, to="alice@example.org", in_reply_to="<q@example.org>"
        )
    )
    colleague = deliver(
        make_email(
            "Re: Question",
            "More",
            sender="Anna <anna@example.com>",
            to="alice@example.org",
            in_reply_to="<q@example.org>",
        )
    )
    sync()

    ticket = ticket_of(session, question["id"])
    answer_row = session.scalar(select(Message).where(Message.gmail_id == answer["id"]))
    colleague_row = session.scalar(select(Message).where(Message.gmail_id == colleague["id"]))
    kinds = session.scalars(select(Event.kind).where(Event.ticket_id == ticket.id)).all()
    assert (answer_row.direction, colleague_row.direction) == ("outbound", "outbound")
    assert ticket.first_responded_at == answer_row.sent_at
    assert kinds.count("first_response") == 1


def test_a_customer_reply_reopens_a_solved_ticket_but_an_auto_reply_does_not(session, deliver, sync):
    first = deliver(make_email("Broken", message_id="<b1@example.org>"))
    sync()
    ticket = ticket_of(session, first["id"])
    tickets.set_status(session, ticket, TicketStatus.SOLVED, at=datetime.now(UTC) - timedelta(minutes=1))
    session.commit()

    deliver(
        make_email(
            "Re: Broken", "I am away", in_reply_to="<b1@example.org>", extra="Auto-Submitted: auto-replied"
        )
    )
    sync()
    session.refresh(ticket)
    status_after_auto_reply = ticket.status
    deliver(make_email("Re: Broken", "Still broken!", in_reply_to="<b1@example.org>"))
    sync()
    session.refresh(ticket)

    changes = session.scalars(
        select(Event).where(Event.ticket_id == ticket.id, Event.kind == "status_changed")
    ).all()
    assert status_after_auto_reply == "solved"
    assert ticket.status == "open" and ticket.solved_at is None
    assert [(e.before["status"], e.after["status"]) for e in changes] == [
        ("open", "solved"),
        ("solved", "open"),
    ]
    assert changes[-1].after["reason"] == "customer replied"


def test_an_agents_own_thread_is_not_a_ticket_until_the_customer_answers(session, deliver, sync):
    ours = deliver(
        make_email(
            "Your renewal", "Time to renew", sender=MAILBOX, to="carol@example.org", message_id="<own@x>"
        )
    )
    sync()
    unfiled = session.scalar(select(Message).where(Message.gmail_id == ours["id"]))
    tickets_before, ticket_before = count(session, Ticket), unfiled.ticket_id
    answer = deliver(
        make_email("Re: Your renewal", "How much?", sender="carol@example.org", in_reply_to="<own@x>")
    )
    sync()

    ticket = ticket_of(session, answer["id"])
    session.refresh(unfiled)
    assert (tickets_before, ticket_before) == (0, None)
    assert unfiled.ticket_id == ticket.id and ticket.customer.email == "carol@example.org"
    assert ticket.first_responded_at is None  # our message came before the customer's


def test_labels_trash_and_deletion_are_reflected_and_nothing_is_lost(session, deliver, sync, gmail):
    kept = deliver(make_email("Keep me"))
    trashed = deliver(make_email("Trash me"))
    deleted = deliver(make_email("Delete me"))
    sync()
    api = f"{gmail.url}gmail/v1/users/{MAILBOX}/messages"
    http("POST", f"{api}/{kept['id']}/modify", {"removeLabelIds": ["UNREAD"], "addLabelIds": ["STARRED"]})
    http("POST", f"{api}/{trashed['id']}/trash")
    http("DELETE", f"{api}/{deleted['id']}")
    result = sync()

    rows = {m.gmail_id: m for m in session.scalars(select(Message))}
    assert result.labels_changed == 2 and result.deleted == 1
    assert "UNREAD" not in rows[kept["id"]].labels and "STARRED" in rows[kept["id"]].labels
    assert rows[trashed["id"]].trashed and not rows[kept["id"]].trashed
    assert rows[deleted["id"]].gmail_deleted and rows[deleted["id"]].ticket_id is not None
    assert count(session, Message) == 3


def test_an_expired_checkpoint_falls_back_to_a_full_sync_without_duplicates(session, deliver, sync, gmail):
    deliver(make_email("one"))
    sync()
    deliver(make_email("two"))
    http("POST", f"{gmail.url}sandbox/users/{MAILBOX}/expire-history")
    deliver(make_email("three"))
    result = sync()
    assert result.mode == "full" and result.messages_filed == 2
    assert count(session, Message) == 3 and count(session, Ticket) == 3
    assert sync().mode == "incremental"


def test_mail_that_arrived_while_the_last_sync_ran_is_still_new_after_the_checkpoint_expires(
    session, mailbox, deliver, gmail_client, gmail
):
    """A message Gmail received after the last sync read the history but before it finished is not
    filed by it; when the checkpoint then expires, the full sync hands it to the rules as new mail —
    not as old mail from before Postdesk was watching (which would go unacknowledged)."""
    from server.gmail.sync import sync_mailbox

    client = gmail_client()
    seen: list[tuple[str, str]] = []

    def on_events(_session, _mailbox, events):
        seen.extend((e.trigger.value, e.message.subject) for e in events if e.message is not None)
        return []

    def sync():
        return sync_mailbox(session, mailbox.id, client, on_events=on_events)

    sync()
    read_history = client.history
    arrived: list[str] = []

    def history_then_mail_arrives(*args, **kwargs):
        page = read_history(*args, **kwargs)
        if not arrived:
            arrived.append(deliver(make_email("Arrived mid-sync", sender="ann@example.org"))["id"])
        return page

    client.history = history_then_mail_arrives
    assert sync().messages_filed == 0  # the history it read was older than the message
    client.history = read_history
    http("POST", f"{gmail.url}sandbox/users/{MAILBOX}/expire-history")
    assert sync().mode == "full"

    assert ticket_of(session, arrived[0]) is not None
    assert seen == [("ticket_created", "Arrived mid-sync")]


def test_twenty_percent_failures_and_an_expiry_midway_still_file_everything_once(
    session, deliver, sync, gmail
):
    ids = [deliver(make_email(f"m{i}", message_id=f"<m{i}@example.org>"))["id"] for i in range(60)]
    http("POST", f"{gmail.url}sandbox/faults", {"status": [429, 500, 503], "rate": 0.2, "retry_after": 1})
    sync()
    ids += [
        deliver(make_email(f"Re: m{i}", in_reply_to=f"<m{i}@example.org>"))["id"] for i in range(0, 60, 3)
    ]
    sync()
    http("POST", f"{gmail.url}sandbox/users/{MAILBOX}/expire-history")
    ids += [deliver(make_email(f"late {i}"))["id"] for i in range(15)]
    sync()
    http("DELETE", f"{gmail.url}sandbox/faults")
    sync()

    stored = session.scalars(select(Message.gmail_id)).all()
    assert sorted(stored) == sorted(ids)
    assert count(session, Ticket) == 75
    assert sync.client.meter.retries > 0


def test_drafts_and_spam_are_not_mail_of_a_ticket(session, gmail, sync):
    gmail.sandbox.deliver(MAILBOX, make_email("draft"), label_ids=["DRAFT"])
    gmail.sandbox.deliver(MAILBOX, make_email("spam"), label_ids=["SPAM"])
    gmail.sandbox.deliver(MAILBOX, make_email("real"))
    sync()
    assert [m.subject for m in session.scalars(select(Message))] == ["real"]


def test_a_failing_gmail_marks_the_mailbox_and_raises(session, sync, mailbox, gmail):
    from server.gmail.client import RetryPolicy
    from server.gmail.errors import GmailUnavailable

    sync.client.retry = RetryPolicy(max_attempts=2, base=0, cap=0)
    http("POST", f"{gmail.url}sandbox/faults", {"status": 503, "rate": 1.0})
    with pytest.raises(GmailUnavailable):
        sync()
    session.refresh(mailbox)
    assert mailbox.sync_state == "error" and "GmailUnavailable" in mailbox.sync_error
