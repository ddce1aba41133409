"""Merging tickets: against the Gmail sandbox with the real client (threads, labels, replies, SLA),
through the API and the command line, and undone exactly (a hypothesis test over random pairs)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from addon_fixtures import addon, desk, keys  # noqa: F401  (fixtures)
from api_support import SUPPORT, api_app, api_desk  # noqa: F401  (fixtures)
from helpers import MAILBOX, make_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from server.base.db import get_session
from server.base.models import (
    Agent,
    Customer,
    Event,
    Message,
    Note,
    Priority,
    Ticket,
    TicketTag,
    Webhook,
    WebhookDelivery,
)
from server.services import action_kinds, tickets
from server.services.figures.metrics import Period, Scope, count
from server.services.labels import apply_wanted
from server.services.mailbox_settings import LABEL_DEFAULTS
from server.services.tickets.merging import MergeError


def _labels_applied(helpdesk, box) -> Callable[[str], set[str]]:
    """Every label change asked for applied; then what a thread shows of Postdesk's labels."""
    while apply_wanted(helpdesk.session, box, helpdesk.clients[MAILBOX]).tickets:
        pass
    user = helpdesk.gmail.sandbox.user(MAILBOX)
    label_names = {label["id"]: label["name"] for label in user.labels.values()}

    def names(thread: str) -> set[str]:
        return {label_names[x] for m in user.messages.values() if m.thread_id == thread for x in m.label_ids
                if x in label_names and label_names[x].startswith("Postdesk")}  # fmt: skip

    return names


def _ticket_of(session, gmail_id: str) -> Ticket:
    return session.scalar(
        select(Ticket).join(Message, Message.ticket_id == Ticket.id).where(Message.gmail_id == gmail_id)
    )


def test_two_threads_of_one_customer_merged_then_undone(helpdesk, deliver):
    team = helpdesk
    box = team.connect(MAILBOX, agents=["anna@example.com"])
    box.settings = {**(box.settings or {}), "gmail_labels": {**LABEL_DEFAULTS, "enabled": True}}
    team.session.commit()
    session = team.session
    first = deliver(make_email("Invoice wrong", "Hello", sender="ann@shop.example",
                                                   message_id="<i1@shop.example>"))  # fmt: skip
    team.cycle()
    second = deliver(make_email("Still the invoice", "Any news?", sender="ann@shop.example",
                                                    message_id="<i2@shop.example>"))  # fmt: skip
    team.cycle()
    a, b = _ticket_of(session, first["id"]), _ticket_of(session, second["id"])
    assert a.id != b.id and a.customer_id == b.customer_id
    tickets.add_tag(session, b, "billing", at=datetime.now(UTC))
    tickets.set_priority(session, b, Priority.HIGH, at=datetime.now(UTC))
    tickets.add_note(session, b, "Customer called too", at=datetime.now(UTC))
    session.commit()
    now = datetime.now(UTC)
    before = _state(session, [a.id, b.id])

    survivor = tickets.merge(session, b, a, at=now)
    session.commit()

    assert survivor.id == a.id and b.status == "merged" and b.merged_into_id == a.id
    moved = session.scalars(select(Message.gmail_id).where(Message.ticket_id == a.id)).all()
    assert {first["id"], second["id"]} <= set(moved)
    assert {t.name for t in a.tags} >= {"billing"} and a.priority == "high"
    assert session.scalar(select(Note.ticket_id).where(Note.body == "Customer called too")) == a.id
    assert a.created_at == min(before[a.id]["created_at"], before[b.id]["created_at"])
    assert a.due_at is not None and b.due_at is None  # A's deadlines computed again; B has none
    kinds = {e.ticket_id: e.kind for e in session.scalars(select(Event).where(Event.kind == "merged"))}
    assert kinds == {a.id: "merged", b.id: "merged"}
    # Out of the queue and the reports: one ticket came in.
    from rules.model import ACTIVE_STATUSES

    active = session.scalars(
        select(Ticket.id).where(Ticket.mailbox_id == box.id, Ticket.status.in_(ACTIVE_STATUSES))
    )
    assert list(active) == [a.id]
    today = datetime.now(UTC).date()
    period = Period(today - timedelta(days=1), today, __import__("zoneinfo").ZoneInfo("UTC"))
    assert count(session, "new", Scope((box.id,)), period, datetime.now(UTC)) == 1
    # B's new mail files into A.
    again = deliver(make_email("Re: Still the invoice", "Hello?", sender="ann@shop.example",
                                                   in_reply_to="<i2@shop.example>"))  # fmt: skip
    team.cycle()
    assert _ticket_of(session, again["id"]).id == a.id
    assert session.get(Ticket, b.id).status == "merged"
    # A's reply goes into the thread of the customer's latest message (B's thread).
    anna = session.scalar(select(Agent).where(Agent.email == "anna@example.com"))
    action_kinds.reply_with_text(session, a, "Fixed, sorry!", agent=anna, now=datetime.now(UTC))
    session.commit()
    team.cycle()
    sent = [m for m in team.sent_by(MAILBOX) if b"Fixed, sorry!" in m.raw]
    assert len(sent) == 1 and sent[0].thread_id == second["threadId"]
    # Labels: both threads carry A's labels.
    names = _labels_applied(team, box)
    assert names(first["threadId"]) == names(second["threadId"]) and names(first["threadId"])
    # A merged ticket is read-only.
    ctx = action_kinds.ActionContext(session, box, b, tickets.SYSTEM, datetime.now(UTC))
    with pytest.raises(action_kinds.ActionRefused, match=f"merged into #{a.number}"):
        action_kinds.perform(ctx, action_kinds.ActionKind.ADD_TAG, "x")

    tickets.unmerge(session, b, at=datetime.now(UTC))
    session.commit()
    assert b.status == "open" and b.merged_into_id is None
    assert {again["id"], second["id"]} <= set(
        session.scalars(select(Message.gmail_id).where(Message.ticket_id == b.id))
    )
    after = _state(session, [a.id, b.id])
    for ticket_id in (a.id, b.id):
        for key in ("created_at", "priority", "tags", "notes", "first_responded_at"):
            assert after[ticket_id][key] == before[ticket_id][key], (ticket_id, key)


def _state(session, ids: list[int]) -> dict[int, dict]:
    session.flush()
    found = {}
    for ticket_id in ids:
        ticket = session.get(Ticket, ticket_id)
        session.refresh(ticket)
        found[ticket_id] = {
            "status": ticket.status,
            "created_at": ticket.created_at,
            "priority": ticket.priority,
            "first_responded_at": ticket.first_responded_at,
            "tags": sorted(t.name for t in ticket.tags),
            "notes": sorted(session.scalars(select(Note.id).where(Note.ticket_id == ticket_id))),
            "messages": sorted(session.scalars(select(Message.id).where(Message.ticket_id == ticket_id))),
            "due_at": ticket.due_at,
        }
    return found


@pytest.fixture
def six(session, mailbox):
    """Six tickets of three customers, with messages, tags, notes and priorities of their own."""
    start = datetime.now(UTC) - timedelta(hours=6)
    made = []
    for n in range(6):
        customer = Customer(mailbox_id=mailbox.id, email=f"c{n % 3}-{n}@shop.example")
        session.add(customer)
        ticket = tickets.open_ticket(session, mailbox.id, subject=f"Subject {n}", customer=customer,
                                     gmail_thread_id=f"thread-{n}", created_at=start + timedelta(minutes=n * 7))  # fmt: skip
        session.flush()
        for k in range(n % 3 + 1):
            session.add(Message(mailbox_id=mailbox.id, ticket_id=ticket.id, gmail_id=f"m{n}-{k}", gmail_thread_id=f"thread-{n}",
                                direction="inbound", from_email=customer.email, sent_at=start + timedelta(minutes=n * 7 + k)))  # fmt: skip
        if n % 2:
            tickets.add_tag(session, ticket, f"tag{n % 3}", at=start)
            tickets.add_note(session, ticket, f"note {n}", at=start)
        tickets.set_priority(session, ticket, list(Priority)[n % 4], at=start)
        made.append(ticket.id)
    session.commit()
    return made


def test_a_chain_of_merges_keeps_every_thread_labelled_as_the_last_survivor(helpdesk, deliver):
    """C merged into B, then B into A (found by the soak): C's thread must follow A's state too, not
    keep what B's was when C joined it."""
    box = helpdesk.connect(MAILBOX, agents=["anna@example.com", "boris@example.com"])
    box.settings = {**(box.settings or {}), "gmail_labels": {**LABEL_DEFAULTS, "enabled": True}}
    session = helpdesk.session
    session.commit()
    emails = []
    for n in range(3):
        emails.append(deliver(make_email(f"Question {n}", "Hello", sender="ann@shop.example",
                                         message_id=f"<chain{n}@shop.example>")))  # fmt: skip
        helpdesk.cycle()
    a, b, c = (_ticket_of(session, email["id"]) for email in emails)
    anna, boris = (
        session.scalar(select(Agent).where(Agent.email == e))
        for e in ("anna@example.com", "boris@example.com")
    )
    now = datetime.now(UTC)
    tickets.assign(session, b, anna.id, at=now)
    tickets.merge(session, c, b, at=now)
    session.commit()
    _labels_applied(helpdesk, box)
    tickets.merge(session, b, a, at=now)
    tickets.assign(session, a, boris.id, at=now)
    session.commit()
    names = _labels_applied(helpdesk, box)
    shown = [names(email["threadId"]) for email in emails]
    assert shown[0] == shown[1] == shown[2], shown
    assert any(name.endswith("Boris") for name in shown[2]) and not any(
        name.endswith("Anna") for name in shown[2]
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=4))
def test_merge_then_unmerge_in_reverse_order_restores_everything(session, six, pairs):
    before = _state(session, six)
    now = datetime.now(UTC)
    done = []
    for source_index, target_index in pairs:
        source, target = session.get(Ticket, six[source_index]), session.get(Ticket, six[target_index])
        try:
            tickets.merge(session, source, target, at=now)
        except MergeError:
            continue
        done.append(source)
        session.flush()
    for source in reversed(done):
        tickets.unmerge(session, source, at=now)
        session.flush()
    after = _state(session, six)
    session.rollback()
    for ticket_id in six:
        for key in (
            "status",
            "created_at",
            "priority",
            "first_responded_at",
            "tags",
            "notes",
            "messages",
            "due_at",
        ):
            assert after[ticket_id][key] == before[ticket_id][key], (ticket_id, key, pairs)


def test_what_cannot_be_merged_is_refused_with_the_reason(session, mailbox, six):
    a, b, c = (session.get(Ticket, i) for i in six[:3])
    with pytest.raises(MergeError, match="into itself"):
        tickets.merge(session, a, a, at=datetime.now(UTC))
    tickets.merge(session, b, a, at=datetime.now(UTC))
    with pytest.raises(MergeError, match="already merged"):
        tickets.merge(session, b, c, at=datetime.now(UTC))
    with pytest.raises(MergeError, match="into itself"):  # a loop: A into B, which lives on in A
        tickets.merge(session, a, b, at=datetime.now(UTC))
    survivor = tickets.merge(session, c, b, at=datetime.now(UTC))  # into a merged ticket: its survivor
    assert survivor.id == a.id
    with pytest.raises(MergeError, match="not merged"):
        tickets.unmerge(session, a, at=datetime.now(UTC))
    with (
        time_machine.travel(datetime.now(UTC) + timedelta(days=1, minutes=1)),
        pytest.raises(MergeError, match="more than a day"),
    ):
        tickets.unmerge(session, c, at=datetime.now(UTC))
    with pytest.raises(action_kinds.ActionRefused, match="unknown status"):
        ctx = action_kinds.ActionContext(session, mailbox, a, tickets.SYSTEM, datetime.now(UTC))
        action_kinds.perform(ctx, action_kinds.ActionKind.SET_STATUS, "merged")


def test_the_api_merges_and_unmerges_and_tells_webhooks(api_desk):  # noqa: F811
    api = api_desk
    a, b = api.tickets[SUPPORT][:2]
    with api.app.app_context():
        db = get_session()
        db.add(Webhook(mailbox_id=api.mailboxes[SUPPORT], url="https://hooks.example.net/x",
                       events=["ticket.merged", "ticket.updated"], secret_encrypted=b"x", enabled=True))  # fmt: skip
        db.commit()
    answer = api.call("POST", f"/api/v1/tickets/{b}/merge", "anna", json={"into": a})
    assert answer.status_code == 200, answer.json
    assert answer.json["id"] == a and answer.json["merged_into"] is None
    assert any(e["kind"] == "merged" for e in answer.json["events"])
    document = api.call("GET", f"/api/v1/tickets/{b}", "anna").json
    assert document["status"] == "merged" and document["merged_into"] == a
    assert api.call("PATCH", f"/api/v1/tickets/{b}", "anna", json={"priority": "high"}).status_code == 400
    assert api.call("POST", f"/api/v1/tickets/{b}/merge", "anna", json={"into": a}).status_code == 409
    other = api.tickets["sales@example.com"][0]
    assert api.call("POST", f"/api/v1/tickets/{a}/merge", "anna", json={"into": other}).status_code == 404
    assert api.call("POST", f"/api/v1/tickets/{a}/merge", "anna_read", json={"into": b}).status_code == 403
    assert api.call("POST", f"/api/v1/tickets/{a}/merge", "anna", json={"into": a, "x": 1}).status_code == 400
    with api.app.app_context():
        kinds = sorted(get_session().scalars(select(WebhookDelivery.event_type)))
    assert "ticket.merged" in kinds and "ticket.updated" in kinds
    undone = api.call("POST", f"/api/v1/tickets/{b}/unmerge", "anna", json={})
    assert undone.status_code == 200, undone.json
    assert undone.json["id"] == b and undone.json["status"] == "open" and undone.json["merged_into"] is None
    assert api.call("POST", f"/api/v1/tickets/{b}/unmerge", "anna", json={}).status_code == 409


def test_the_command_line_merges_and_unmerges(app, runner, session, mailbox, six):
    a, b = (session.get(Ticket, i) for i in six[:2])
    result = runner.invoke(
        args=["tickets", "merge", str(b.number), "--into", str(a.number), "--mailbox", MAILBOX]
    )
    assert result.exit_code == 0 and f"#{b.number} merged into #{a.number}" in result.output
    again = runner.invoke(
        args=["tickets", "merge", str(b.number), "--into", str(a.number), "--mailbox", MAILBOX]
    )
    assert again.exit_code == 2 and "already merged" in again.output
    missing = runner.invoke(args=["tickets", "merge", "999", "--into", str(a.number), "--mailbox", MAILBOX])
    assert missing.exit_code == 2 and "no ticket #999" in missing.output
    result = runner.invoke(args=["tickets", "unmerge", str(b.number), "--mailbox", MAILBOX])
    assert result.exit_code == 0, result.output
    session.expire_all()
    assert session.get(Ticket, b.id).status == "open"
    assert (
        session.scalar(select(TicketTag.name).where(TicketTag.ticket_id == a.id, TicketTag.name == "tag1"))
        is None
    )


def test_the_card_offers_the_customer_s_other_ticket_merges_and_undoes(addon, session, desk, deliver):  # noqa: F811
    deliver(make_email("Cannot log in again", "Still broken", sender="alice@customer.test",
                       message_id="<alice-2@customer.test>"))  # fmt: skip
    desk.cycle(MAILBOX)
    first = session.scalar(select(Ticket).where(Ticket.subject == "Cannot log in"))
    second = session.scalar(select(Ticket).where(Ticket.subject == "Cannot log in again"))
    card = addon.message("<alice-2@customer.test>").get_data(as_text=True)
    assert "Merge this ticket into" in card and "merge_choices" in card

    choices = addon.act("merge_choices", ticket=second.id)
    text = choices.get_data(as_text=True)
    assert f"#{first.number} Cannot log in" in text  # the customer's other open ticket
    merged = addon.act(
        "merge", ticket=second.id, form={"merge_into": {"stringInputs": {"value": [str(first.id)]}}}
    )
    answer = merged.get_json()["renderActions"]["action"]
    assert answer["notification"]["text"] == f"#{second.number} merged into #{first.number}"
    survivor_card = str(answer)
    assert f"#{first.number}" in survivor_card and f"Undo the merge of #{second.number}" in survivor_card
    session.expire_all()
    assert session.get(Ticket, second.id).status == "merged"
    # The second email's card is the survivor's now.
    assert f"#{first.number} Cannot log in" in addon.message("<alice-2@customer.test>").get_data(as_text=True)
    refused = addon.act(
        "merge", ticket=second.id, form={"merge_into": {"stringInputs": {"value": [str(first.id)]}}}
    )
    assert "already merged" in refused.get_json()["renderActions"]["action"]["notification"]["text"]
    nothing = addon.act("merge", ticket=first.id, form={})
    assert "choose the ticket" in nothing.get_json()["renderActions"]["action"]["notification"]["text"]

    undone = addon.act("unmerge", ticket=second.id).get_json()["renderActions"]["action"]
    assert undone["notification"]["text"] == f"#{second.number} is a ticket of its own again"
    session.expire_all()
    assert session.get(Ticket, second.id).status == "open"
    assert "Cannot log in again" in addon.message("<alice-2@customer.test>").get_data(as_text=True)


def test_a_merge_fires_the_ticket_merged_rules_which_can_read_who_is_mentioned(session, mailbox, six):
    import rules as rule_engine
    from server.services import mentions, regrouping
    from server.services.accounts import ensure_agent
    from server.services.defaults import replace_rules

    replace_rules(session, mailbox, rule_engine.load_rules([
        {"name": "Tag what was merged", "trigger": "ticket_merged", "actions": [{"add_tag": "was-merged"}]},
        {"name": "Anna asked for: urgent", "trigger": "ticket_merged",
         "conditions": {"field": "mentioned", "op": "contains", "value": "anna@example.com"},
         "actions": [{"set_priority": "urgent"}]},
    ]))  # fmt: skip
    boris = ensure_agent(session, "boris@example.com", "Boris", mailbox=mailbox)
    session.commit()
    a, b, c, d = (session.get(Ticket, i) for i in six[:4])
    a.priority = c.priority = b.priority = d.priority = "low"
    mentions.add_note(session, c, "@Anna can you look?", writer=boris, at=datetime.now(UTC))
    session.commit()

    regrouping.merge_tickets(session, b, a, at=datetime.now(UTC))
    regrouping.merge_tickets(session, d, c, at=datetime.now(UTC))
    session.commit()

    assert "was-merged" in {t.name for t in a.tags} and "was-merged" in {t.name for t in c.tags}
    assert a.priority == "low" and c.priority == "urgent"  # only C's notes mention Anna
    assert "was-merged" not in {
        t.name for t in b.tags
    }  # the merged one is read-only: rules act on the survivor


@pytest.mark.postgres
def test_a_merge_undone_by_a_deadlock_is_done_again_not_a_500(api_desk):  # noqa: F811
    """The soak's one 500 outside a restart: a merge locks its two tickets while a worker's transaction
    holds one of them and then wants the other; PostgreSQL undoes one of the two (a deadlock). The
    merge is done again; the caller gets its answer."""
    import threading

    from helpers import a_deadlock_the_app_loses, wait_until
    from sqlalchemy import text

    from server.base.db import get_engine

    api = api_desk
    a, b = api.tickets[SUPPORT][:2]
    answers = []
    with a_deadlock_the_app_loses(get_engine(api.app)) as (worker, app_waits):  # holds A, then wants B
        worker.execute(text("SELECT id FROM tickets WHERE id = :a FOR UPDATE"), {"a": a})
        merging = threading.Thread(
            target=lambda: answers.append(
                api.call("POST", f"/api/v1/tickets/{b}/merge", "anna", json={"into": a})
            )
        )
        merging.start()
        assert wait_until(app_waits, timeout=30)  # the merge: B held, waits on A
        worker.execute(text("SELECT id FROM tickets WHERE id = :b FOR UPDATE"), {"b": b})  # the cycle
        worker.commit()  # PostgreSQL undid the merge's transaction (it waited first), so this one got B
    merging.join(timeout=60)
    assert answers and answers[0].status_code == 200, answers and answers[0].json
    assert answers[0].json["id"] == a
