"""Rules, templates and sending as a team and its customers live them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from helpers import MAILBOX, make_email
from sqlalchemy import select, update

from server.base.models import Event, Message, Outbox, Ticket

AGENTS = ("anna@example.com", "boris@example.com", "chen@example.com")


@pytest.fixture
def desk(helpdesk):
    helpdesk.connect(MAILBOX, AGENTS)
    return helpdesk


def events(session, kind):
    return session.scalars(select(Event).where(Event.kind == kind)).all()


def test_a_new_customer_gets_exactly_one_acknowledgement_in_the_same_thread(desk, deliver, session):
    original = deliver(
        make_email(
            "Printer is jammed",
            "Paper everywhere.",
            sender="Bob Stone <bob@example.org>",
            message_id="<jam@x>",
        )
    )

    first = desk.cycle()
    second = desk.cycle()
    deliver(
        make_email("Re: Printer is jammed", "Still jammed", sender="bob@example.org", in_reply_to="<jam@x>")
    )
    third = desk.cycle()

    sent = desk.sent_by(MAILBOX)
    ticket = session.scalar(select(Ticket))
    assert first.delivery.sent == 1 and second.delivery.sent == 0 and third.delivery.sent == 0
    assert len(sent) == 1
    ack = sent[0]
    assert ack.thread_id == original["threadId"]
    assert ack.parsed["Auto-Submitted"] == "auto-replied" and ack.parsed["In-Reply-To"] == "<jam@x>"
    assert ack.subject == "Re: Printer is jammed"  # Gmail keeps the thread only on a matching subject
    body = ack.parsed.get_payload(decode=True).decode()
    assert f"Your request is ticket #{ticket.number}." in body and "Hello Bob Stone" in body
    assert ticket.first_response_due_at is not None and "We will answer by" in body
    assert ticket.first_responded_at is None  # an acknowledgement is not an answer
    on_ticket = session.scalars(
        select(Message).where(Message.ticket_id == ticket.id).order_by(Message.sent_at)
    ).all()
    assert [(m.direction, m.is_auto) for m in on_ticket] == [
        ("inbound", False),
        ("outbound", True),
        ("inbound", False),
    ]


def test_a_russian_customer_is_answered_in_russian(desk, deliver, session):
    deliver(make_email("Не работает вход", "Здравствуйте, не могу войти.", sender="Ольга <olga@yandex.ru>"))
    desk.cycle()
    body = desk.sent_by(MAILBOX)[0].parsed.get_payload(decode=True).decode()
    assert "Номер вашей заявки — #1." in body and "Мы ответим до" in body


@pytest.mark.parametrize(
    "subject", ["URGENT: site down", "Срочно! не работает оплата", "Outage in EU region", "Please help ASAP"]
)
def test_urgent_mail_is_urgent_priority(desk, deliver, session, subject):
    deliver(make_email(subject, "Details inside"))
    desk.cycle()
    ticket = session.scalar(select(Ticket))
    assert ticket.priority == "urgent" and "urgent" in [t.name for t in ticket.tags]


def test_an_ordinary_question_stays_normal_priority(desk, deliver, session):
    deliver(make_email("Question about invoices", "Where do I find them?"))
    desk.cycle()
    assert session.scalar(select(Ticket.priority)) == "normal"


def test_five_new_tickets_are_spread_round_robin(desk, deliver, session):
    for i in range(5):
        deliver(make_email(f"Question {i}", sender=f"c{i}@example.org"))
        desk.cycle()  # separate syncs: the turn is kept between runs
    assignees = [t.assignee.email for t in session.scalars(select(Ticket).order_by(Ticket.number))]
    assert assignees == [AGENTS[0], AGENTS[1], AGENTS[2], AGENTS[0], AGENTS[1]]


def test_round_robin_skips_away_and_inactive_agents(desk, deliver, session):
    from server.base.models import Agent

    session.scalar(select(Agent).where(Agent.email == AGENTS[1])).away = True
    session.scalar(select(Agent).where(Agent.email == AGENTS[2])).active = False
    session.commit()
    for i in range(3):
        deliver(make_email(f"Q{i}", sender=f"c{i}@example.org"))
    desk.cycle()
    assert {t.assignee.email for t in session.scalars(select(Ticket))} == {AGENTS[0]}


def test_the_faq_rule_answers_and_solves(desk, deliver, session):
    deliver(make_email("Forgot my password", "I forgot the password, how do I reset it?"))
    desk.cycle()
    ticket = session.scalar(select(Ticket))
    sent = desk.sent_by(MAILBOX)
    assert ticket.status == "solved" and ticket.assignee is None  # stop_processing: no other rule ran
    assert len(sent) == 1 and "Forgot password?" in sent[0].parsed.get_payload(decode=True).decode()


AUTOMATIC_MAIL = {
    "auto-submitted": "Auto-Submitted: auto-replied",
    "auto-generated": "Auto-Submitted: auto-generated",
    "precedence bulk": "Precedence: bulk",
    "precedence list": "Precedence: list",
    "precedence junk": "Precedence: junk",
    "precedence auto_reply": "Precedence: auto_reply",
    "list-id": "List-Id: Product news <news.example.org>",
    "list-unsubscribe": "List-Unsubscribe: <mailto:leave@example.org>",
    "x-autoreply": "X-Autoreply: yes",
    "x-autorespond": "X-Autorespond: Out of office",
    "x-auto-response-suppress oof": "X-Auto-Response-Suppress: OOF",
    "x-auto-response-suppress all": "X-Auto-Response-Suppress: All",
    "empty return-path": "Return-Path: <>",
}


@pytest.mark.parametrize("kind", sorted(AUTOMATIC_MAIL))
def test_no_auto_reply_to_automatic_mail(desk, deliver, session, kind):
    deliver(
        make_email(
            "Re: your request",
            "I am out of the office",
            sender="robert@example.org",
            extra=AUTOMATIC_MAIL[kind],
        )
    )
    desk.cycle()
    suppressed = events(session, "auto_reply_suppressed")
    assert desk.sent_by(MAILBOX) == [] and session.scalars(select(Outbox)).all() == []
    assert len(suppressed) == 1 and suppressed[0].after["reason"]


@pytest.mark.parametrize(
    "sender",
    [
        "mailer-daemon@googlemail.com",
        "postmaster@example.org",
        "noreply@shop.example",
        "no-reply@x.example",
        "do-not-reply@bank.example",
    ],
)
def test_no_auto_reply_to_automatic_senders(desk, deliver, session, sender):
    deliver(make_email("Your order", "Automated message", sender=sender))
    desk.cycle()
    assert desk.sent_by(MAILBOX) == []
    assert "automatic sender" in events(session, "auto_reply_suppressed")[0].after["reason"]


def test_no_auto_reply_to_a_delivery_report(desk, session):
    report = (
        b"From: Mail Delivery System <mailer@relay.example.net>\r\nTo: support@example.com\r\nSubject: Undelivered Mail\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Status: 5.1.1\r\n--b--\r\n"
    )
    desk.gmail.sandbox.deliver(MAILBOX, report)
    desk.cycle()
    assert desk.sent_by(MAILBOX) == []
    assert events(session, "auto_reply_suppressed")[0].after["reason"] == "delivery report"


def test_no_auto_reply_to_the_mailbox_itself_or_a_team_member(desk, deliver, session):
    deliver(make_email("Note to self", sender=MAILBOX))
    deliver(make_email("From a colleague", sender=AGENTS[1]))
    desk.cycle()
    assert desk.sent_by(MAILBOX)[2:] == [] and session.scalars(select(Outbox)).all() == []


def test_one_sender_gets_at_most_three_auto_replies_an_hour(desk, deliver, session):
    for i in range(5):
        deliver(make_email(f"Separate question {i}", sender="chatty@example.org"))
    desk.cycle()
    reasons = [e.after["reason"] for e in events(session, "auto_reply_suppressed")]
    assert len(desk.sent_by(MAILBOX)) == 3
    assert len(reasons) == 2 and all("limit 3" in r for r in reasons)


def test_two_postdesk_mailboxes_answering_each_other_exchange_at_most_one_message_each(helpdesk, session):
    a, b = "support@alpha.example", "help@beta.example"
    helpdesk.connect(a, ["agent@alpha.example"])
    helpdesk.connect(b, ["agent@beta.example"])
    # Beta's team writes to Alpha from the shared mailbox; both acknowledge everything new.
    helpdesk.clients[b].send(make_email("Partnership", "Hello Alpha", sender=b, to=a))
    sent_before = {a: len(helpdesk.sent_by(a)), b: len(helpdesk.sent_by(b))}
    for _ in range(4):
        helpdesk.cycle(a)
        helpdesk.cycle(b)
    assert len(helpdesk.sent_by(a)) - sent_before[a] == 1  # Alpha acknowledges Beta's new thread once
    assert len(helpdesk.sent_by(b)) - sent_before[b] == 0  # Beta sees Auto-Submitted and stays quiet
    beta_events = [
        e.after["reason"] for e in session.scalars(select(Event).where(Event.kind == "auto_reply_suppressed"))
    ]
    assert beta_events == ["Auto-Submitted: auto-replied"]


def test_a_naive_helpdesk_answering_our_acknowledgement_does_not_start_a_loop(desk, deliver, session):
    deliver(
        make_email("Order 7", "Where is it?", sender="orders@naive-desk.example", message_id="<o7@naive>")
    )
    desk.cycle()
    ack = desk.sent_by(MAILBOX)[0]
    for round_ in range(3):  # their system acknowledges our acknowledgement, without any automatic headers
        deliver(
            make_email(
                f"Re: {ack.subject}",
                f"Ticket received ({round_})",
                sender="orders@naive-desk.example",
                in_reply_to=ack.rfc822_id,
            )
        )
        desk.cycle()
    assert len(desk.sent_by(MAILBOX)) == 1


def test_a_broken_template_is_an_event_not_a_half_sent_mail(desk, deliver, session):
    from server.base.models import Template

    for template in session.scalars(select(Template).where(Template.name == "Acknowledgement")):
        template.body_text = "Hello {{ customer.name }}\nYour ticket is {{ ticket.numbr }}"
    session.commit()
    deliver(make_email("Hello"))
    desk.cycle()
    failed = events(session, "auto_reply_failed")
    assert desk.sent_by(MAILBOX) == [] and session.scalars(select(Outbox)).all() == []
    assert "line 2" in failed[0].after["reason"] and "numbr" in failed[0].after["reason"]


def test_rule_changes_are_events_naming_the_rule(desk, deliver, session):
    from server.base.models import Rule

    deliver(make_email("URGENT: down"))
    desk.cycle()
    rule_names = {r.id: r.name for r in session.scalars(select(Rule))}
    changes = {
        e.kind: rule_names.get(e.actor_rule_id)
        for e in session.scalars(select(Event).where(Event.actor_kind == "rule"))
    }
    assert changes["priority_changed"] == "High urgency makes a ticket urgent"
    assert changes["assigned"] == "Spread new tickets round-robin"
    assert changes["auto_reply_queued"] == "Acknowledge every new ticket"


def test_sync_no_send_holds_the_mail_and_outbox_list_shows_it(desk, deliver, runner, session):
    deliver(make_email("Hold it", sender="dora@example.org"))
    result = runner.invoke(args=["sync", "--once", "--no-send"])
    pending = json.loads(runner.invoke(args=["outbox", "list", "--json"]).output)
    sent_run = runner.invoke(args=["sync", "--once"])
    session.expire_all()
    after = json.loads(runner.invoke(args=["outbox", "list", "--json"]).output)

    assert result.exit_code == 0 and "emails sent" not in result.output
    assert [(r["kind"], r["to"], r["state"], r["ticket"]) for r in pending] == [
        ("auto_reply", "dora@example.org", "pending", 1)
    ]
    assert "1 emails sent" in sent_run.output
    assert after[0]["state"] == "sent" and after[0]["gmail_id"]


def test_gmail_label_and_least_open_actions(desk, deliver, session, tmp_path, runner):
    from server.base.models import Agent

    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(
        "rules:\n  - name: Label and balance\n    trigger: ticket_created\n    actions:\n"
        "      - gmail_label: Postdesk/New\n      - assign: least_open\n",
        encoding="utf-8",
    )
    assert runner.invoke(args=["rules", "import", str(rules_file), "--mailbox", MAILBOX]).exit_code == 0
    busy = session.scalar(select(Agent).where(Agent.email == AGENTS[0]))
    delivered = [deliver(make_email(f"Q{i}", sender=f"c{i}@example.org")) for i in range(4)]
    desk.cycle()

    user = desk.gmail.sandbox.user(MAILBOX)
    label_id = next(i for i, label in user.labels.items() if label["name"] == "Postdesk/New")
    assert all(label_id in user.messages[d["id"]].label_ids for d in delivered)
    counts = {}
    for ticket in session.scalars(select(Ticket)):
        counts[ticket.assignee.email] = counts.get(ticket.assignee.email, 0) + 1
    assert sorted(counts.values()) == [1, 1, 2] and busy.email in counts


def test_a_claimed_email_is_left_to_its_sender_then_confirmed_not_resent(desk, deliver, session):
    import time_machine

    from server.gmail.send import _claim, build_mime, deliver_due

    deliver(make_email("Lease", sender="erin@example.org"))
    desk.cycle(send=False)
    row = session.scalar(select(Outbox))
    client = desk.clients[MAILBOX]
    with time_machine.travel(row.next_attempt_at, tick=False) as clock:
        now = datetime.now(UTC)
        assert _claim(session, row, "pending", now + timedelta(seconds=120))  # sender A claims...
        client.send(build_mime(row, desk.mailboxes[MAILBOX], now), row.headers.get("gmail_thread_id"))
        # ...and dies before marking it sent. Sender B, a minute later, leaves it alone:
        clock.shift(60)
        during = deliver_due(session, row.mailbox_id, client)
        clock.shift(120)
        after = deliver_due(session, row.mailbox_id, client)  # the lease ran out: B checks Gmail first
    session.refresh(row)
    assert (during.sent, during.confirmed) == (0, 0)
    assert (after.sent, after.confirmed) == (0, 1) and row.state == "sent"
    assert len(desk.sent_by(MAILBOX)) == 1


def test_a_reply_bigger_than_a_json_request_is_sent_once_in_the_customers_thread(desk, deliver, session):
    # Failed before: Gmail's 413 on the JSON body marked the reply failed and it was never sent.
    from server.base.models import OutboxKind
    from server.gmail.send import enqueue, reply_subject, thread_headers

    original = deliver(make_email("Invoice copies", sender="dina@example.org", message_id="<inv@x>"))
    desk.cycle()
    ticket = session.scalar(select(Ticket))
    enqueue(
        session,
        mailbox=ticket.mailbox,
        kind=OutboxKind.REPLY,
        key="big-reply",
        to=["dina@example.org"],
        subject=reply_subject(ticket.subject),
        text="Все счета за год:\n" + "Счёт № 0001 — оплачен.\n" * 200_000,
        ticket=ticket,
        headers=thread_headers(session, ticket),
    )
    session.commit()

    delivery = desk.cycle().delivery
    again = desk.cycle().delivery

    row = session.scalar(select(Outbox).where(Outbox.idempotency_key == "big-reply"))
    big = [m for m in desk.sent_by(MAILBOX) if m.rfc822_id == row.message_id]
    assert (delivery.sent, delivery.failed, again.sent) == (1, 0, 0) and row.state == "sent"
    assert len(big) == 1 and len(big[0].raw) > 5 * 1024 * 1024
    assert big[0].thread_id == original["threadId"]


def test_the_customer_hears_once_per_solve_in_the_same_thread(desk, deliver, session):
    from server.base.models import TicketStatus
    from server.gmail.send import deliver_due
    from server.services import tickets
    from server.services.automation import run_time_rules

    original = deliver(
        make_email("Broken export", "CSV export fails", sender="Fay <fay@example.org>", message_id="<exp@x>")
    )
    desk.cycle()  # acknowledgement
    box, client = desk.mailboxes[MAILBOX], desk.clients[MAILBOX]
    ticket = session.scalar(select(Ticket))

    def solve_and_watch() -> list[int]:
        tickets.set_status(session, ticket, TicketStatus.SOLVED, at=datetime.now(UTC))
        session.commit()
        fired = [run_time_rules(session, box, now=datetime.now(UTC)) for _ in range(2)]
        deliver_due(session, box.id, client)
        return fired

    first = solve_and_watch()
    deliver(make_email("Re: Broken export", "Still failing", sender="fay@example.org", in_reply_to="<exp@x>"))
    desk.cycle()  # the reply reopens the ticket
    session.refresh(ticket)
    reopened_status = ticket.status
    run_time_rules(session, box, now=datetime.now(UTC))  # the condition no longer holds
    second = solve_and_watch()

    solved_mails = [
        m for m in desk.sent_by(MAILBOX) if "as solved" in m.parsed.get_payload(decode=True).decode()
    ]
    assert first == [1, 0] and second == [1, 0] and reopened_status == "open"
    assert len(solved_mails) == 2
    assert all(m.thread_id == original["threadId"] and m.subject == "Re: Broken export" for m in solved_mails)
    assert solved_mails[0].parsed["Auto-Submitted"] == "auto-generated"


def test_the_solved_notice_answers_the_customer_not_their_out_of_office_reply(desk, deliver, session):
    """The customer's auto-reply to our acknowledgement is the thread's latest message; the notice of
    the solve answers the customer's own message (their mail shows it under what they wrote), and
    a thread with nothing but automatic mail still gets its headers."""
    from server.base.models import TicketStatus
    from server.gmail.send import deliver_due, thread_headers
    from server.services import tickets
    from server.services.automation import run_time_rules

    deliver(make_email("Broken import", "XLSX import fails", sender="gus@example.org", message_id="<imp@x>"))
    desk.cycle()  # acknowledgement
    deliver(
        make_email(
            "Re: Broken import",
            "I am away until Monday.",
            sender="gus@example.org",
            message_id="<ooo@x>",
            in_reply_to="<imp@x>",
            extra="Auto-Submitted: auto-replied",
        )
    )
    desk.cycle()
    ticket = session.scalar(select(Ticket))
    auto = session.scalar(select(Message).where(Message.rfc822_message_id == "<ooo@x>"))
    assert auto.is_auto and auto.ticket_id == ticket.id  # filed on the ticket, latest of the thread
    assert thread_headers(session, ticket)["in_reply_to"] == "<imp@x>"

    box, client = desk.mailboxes[MAILBOX], desk.clients[MAILBOX]
    tickets.set_status(session, ticket, TicketStatus.SOLVED, at=datetime.now(UTC))
    session.commit()
    run_time_rules(session, box, now=datetime.now(UTC))
    deliver_due(session, box.id, client)
    notice = [m for m in desk.sent_by(MAILBOX) if "as solved" in m.parsed.get_payload(decode=True).decode()]
    assert len(notice) == 1 and notice[0].parsed["In-Reply-To"] == "<imp@x>"

    session.execute(update(Message).where(Message.ticket_id == ticket.id).values(is_auto=True))
    assert thread_headers(session, ticket)["in_reply_to"] == "<ooo@x>"  # nothing else: the latest


def test_each_customer_message_keeps_its_urgency_and_tone_and_a_negation_is_not_urgent(
    desk, deliver, session
):
    deliver(make_email("Not urgent", "Just a question, no rush: can I export to CSV?", message_id="<calm@x>"))
    deliver(
        make_email(
            "Site down!!", "Our shop is down, we are losing sales. Fix it now!", sender="eve@shop.example"
        )
    )
    desk.cycle()
    calm = session.scalar(select(Ticket).where(Ticket.subject == "Not urgent"))
    loud = session.scalar(select(Ticket).where(Ticket.subject == "Site down!!"))
    assert (calm.priority, loud.priority) == ("normal", "urgent")
    rows = {m.subject: m for m in session.scalars(select(Message).where(Message.direction == "inbound"))}
    assert (rows["Not urgent"].urgency, rows["Site down!!"].urgency) == ("low", "high")
    assert rows["Site down!!"].tone == "negative"
    kinds = {r["kind"] for r in rows["Site down!!"].signals["reasons"]}
    assert {"urgent", "negative"} <= kinds
    # The customer writes again before anyone answered: the second message counts it.
    deliver(make_email("Re: Not urgent", "Any news?", in_reply_to="<calm@x>"))
    desk.cycle()
    again = session.scalar(
        select(Message).where(Message.subject == "Re: Not urgent", Message.direction == "inbound")
    )
    assert again.ticket_id == calm.id
    assert again.urgency == "high" and again.signals["reasons"][-1]["kind"] == "follow_up"


def test_a_time_rule_reads_the_latest_message_s_tone(desk, deliver, session):
    from server.base.models import Mailbox
    from server.services import rule_sets
    from server.services.automation import run_time_rules

    box = session.scalar(select(Mailbox))
    text = (
        "rules:\n  - name: Angry customers to the lead\n    trigger: time\n"
        "    conditions: {field: tone, op: equals, value: negative}\n    actions: [{add_tag: recovery}]\n"
    )
    rule_sets.save(session, box, rule_sets.parse(session, box, text))
    session.commit()
    deliver(make_email("Refund", "This is unacceptable, I am furious."))
    deliver(make_email("Hello", "Where is the invoice?"))
    desk.cycle()
    run_time_rules(session, box, now=datetime.now(UTC))
    session.commit()
    tagged = {
        t.subject for t in session.scalars(select(Ticket)) if "recovery" in [tag.name for tag in t.tags]
    }
    assert tagged == {"Refund"}
    # A dry run of the same rule answers the same, without writing.
    report = rule_sets.dry_run(session, box, rule_sets.parse(session, box, text), last=10)
    matched = {line.subject for line in report.lines if line.matched}
    assert matched == {"Refund"}


def test_a_mailbox_s_own_words_decide_with_the_shipped_ones(desk, deliver, session):
    from server.base.models import Mailbox
    from server.services.mailbox_settings import save

    box = session.scalar(select(Mailbox))
    save(
        session, box, {**(box.settings or {}), "signal_words": {"en": {"urgent": ["pager alarm"]}}}, batch=100
    )
    session.commit()
    deliver(make_email("Night shift", "The pager alarm went off twice"))
    desk.cycle()
    assert session.scalar(select(Ticket).where(Ticket.subject == "Night shift")).priority == "urgent"


def test_mail_filed_without_rules_is_read_by_the_knowledge_command(helpdesk, deliver, session, runner):
    deliver(
        make_email("Outage", "Everything is down, this is unacceptable!")
    )  # before the mailbox is connected
    helpdesk.connect(MAILBOX, AGENTS)  # the first sync files old mail and runs no rules on it
    row = session.scalar(select(Message).where(Message.subject == "Outage"))
    assert row.urgency is None
    answer = runner.invoke(args=["knowledge", "read", "--mailbox", MAILBOX])
    assert answer.exit_code == 0 and "read 1 messages" in answer.output
    session.expire_all()
    row = session.scalar(select(Message).where(Message.subject == "Outage"))
    assert (row.urgency, row.tone) == ("high", "negative")
    assert runner.invoke(args=["knowledge", "read"]).output.strip() == "read 0 messages"
    assert runner.invoke(args=["knowledge", "read", "--mailbox", "nobody@example.com"]).exit_code == 2
