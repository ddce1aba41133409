"""The soak's oracle (tests/soak.py runs the soak): what a finished run left — the database's rows, the
sandbox's mailbox, the driver's log — read plainly into :class:`Evidence`, and every invariant checked
against it with no Postdesk code deciding what is right (:func:`check`); :func:`report` is the page.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default as email_policy
from typing import TYPE_CHECKING, Any

from helpers import MAILBOX
from sqlalchemy import create_engine, text

if TYPE_CHECKING:
    from soak import Sent, Soak

#: Automatic replies a sender gets in an hour at most (the default auto_replies_per_sender_per_hour).
LIMIT = 3
#: The status labels of an English mailbox (Postdesk/<name>), written out here as the docs give them.
STATUS_LABELS = {
    "open": "Open",
    "pending": "Pending",
    "on_hold": "On hold",
    "solved": "Solved",
    "closed": "Solved",
}


@dataclass
class Evidence:
    """What the oracle reads: the database's rows, the sandbox's messages, the driver's record."""

    filed: list[tuple[str, int]]  # (rfc822 id, ticket id) of each inbound message row
    merged_into: dict[int, int]
    sent_ids: list[str]  # Message-ID of each message in Gmail's SENT
    sent_replying_to: list[str]  # In-Reply-To of each message in SENT
    outbox: list[tuple[str, str, str, int | None]]  # (message id, kind, state, ticket id)
    deliveries: list[tuple[str, str]]  # (id, state) of each webhook delivery
    received: list[dict[str, Any]]
    stuck_tasks: int
    sent: dict[str, Sent]
    answers: list[tuple[float, str, int]]
    windows: list[tuple[float, float]]
    reported_new: int | None
    tickets: int
    customer_of: dict[int, str]  # ticket id -> its customer's address
    hours: int  # whole hours the run lasted
    admin: list[dict[str, Any]]  # the admin's changes, with the command's exit code
    #: ticket id -> the kinds of its events, with a suppressed auto-reply's reason (counter-examples)
    story: dict[int, list[str]] = field(default_factory=dict)
    #: (to, subject, text) of each reminder email in SENT, and what the moved clock's scans raised
    reminders: list[tuple[str, str, str]] = field(default_factory=list)
    clock_failures: list[str] = field(default_factory=list)
    #: ticket id -> (status, assignee's name or None, Gmail thread id)
    states: dict[int, tuple[str, str | None, str]] = field(default_factory=dict)
    #: Gmail thread id -> the names of the labels its messages carry (Gmail shows their union)
    thread_labels: dict[str, set[str]] = field(default_factory=dict)
    #: tickets snoozed when the evidence was read (their snooze ends later)
    snoozed: set[int] = field(default_factory=set)
    #: the emails (Message-ID) whose rating link a customer clicked and Postdesk took (200); the report's count
    rated_emails: set[str] = field(default_factory=set)
    reported_ratings: int | None = None


def gather(soak: Soak) -> Evidence:
    engine = create_engine(soak.database_url)
    with engine.connect() as db:
        filed = [(r[0], r[1]) for r in db.execute(text("SELECT rfc822_message_id, ticket_id FROM messages WHERE direction = 'inbound'"))]  # fmt: skip
        merged = {r[0]: r[1] for r in db.execute(text("SELECT id, merged_into_id FROM tickets WHERE merged_into_id IS NOT NULL"))}  # fmt: skip
        outbox = [tuple(r) for r in db.execute(text("SELECT message_id, kind, state, ticket_id FROM outbox"))]
        deliveries = [tuple(r) for r in db.execute(text("SELECT id, state FROM webhook_deliveries"))]
        stuck = (
            db.execute(text("SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing'")).scalar() or 0
        )
        tickets = db.execute(text("SELECT count(*) FROM tickets")).scalar() or 0
        customer_of = {r[0]: r[1] for r in db.execute(text(
            "SELECT tickets.id, customers.email FROM tickets JOIN customers ON customers.id = tickets.customer_id"))}  # fmt: skip
        states = {r[0]: (r[1], r[2], r[3] or "") for r in db.execute(text(
            "SELECT tickets.id, tickets.status, agents.name, tickets.gmail_thread_id FROM tickets "
            "LEFT JOIN agents ON agents.id = tickets.assignee_id"))}  # fmt: skip
        snoozed = {r[0] for r in db.execute(text("SELECT id FROM tickets WHERE snoozed_until > :now"),
                                            {"now": datetime.now(UTC)})}  # fmt: skip
        story: dict[int, list[str]] = defaultdict(list)
        for ticket, kind, after in db.execute(text("SELECT ticket_id, kind, after FROM events WHERE ticket_id IS NOT NULL ORDER BY id")):  # fmt: skip
            reason = (json.loads(after) if isinstance(after, str) else after or {}).get("reason")
            story[ticket].append(f"{kind} ({reason})" if reason else kind)
    engine.dispose()
    sent_ids, replying, reminders = [], [], []
    reminder_ids = {mid for mid, kind, _state, _t in outbox if kind == "reminder"}
    user = soak.gmail.sandbox.user(MAILBOX)
    label_names = user.label_names()
    thread_labels: dict[str, set[str]] = defaultdict(set)
    for message in user.messages.values():
        thread_labels[message.thread_id] |= {label_names.get(i, i) for i in message.label_ids}
        if "SENT" in message.label_ids:
            parsed = message_from_bytes(message.raw, policy=email_policy)
            sent_ids.append(str(parsed.get("Message-ID", "")).strip())
            replying.append(str(parsed.get("In-Reply-To", "")).strip())
            if sent_ids[-1] in reminder_ids:
                body = parsed.get_body(("plain",))
                text_part = body.get_content() if body is not None else ""
                reminders.append((str(parsed.get("To", "")), str(parsed.get("Subject", "")), text_part))
    soak.start_web()  # the report, from the web as a manager reads it (the last 30 days)
    try:
        status, answer = soak.api("GET", "/reports/overview", agent="lead@example.com")
    finally:
        soak.stop()
    reported = ratings = None
    if status == 200 and isinstance(answer, dict):
        reported = int(answer["current"]["counts"].get("new", 0))
        ratings = int(answer["current"].get("csat_ratings", 0))
    rated = {line["email"] for line in soak.log.of("csat") if line.get("status") == 200 and line.get("email")}
    return Evidence(filed, merged, sent_ids, replying, outbox, deliveries, list(soak.receiver.seen), int(stuck),
                    dict(soak.sent), list(soak.answers), list(soak.windows), reported, int(tickets), customer_of,
                    int(soak.seconds // 3600), soak.log.of("admin_rule") + soak.log.of("admin_sla"), dict(story),
                    reminders, [f for line in soak.log.of("clock_forward") for f in line["failures"]],
                    states, dict(thread_labels), snoozed, rated, ratings)  # fmt: skip


def check(evidence: Evidence) -> list[tuple[str, str | None]]:
    """Each invariant with None (holds) or its first counter-example."""
    results: list[tuple[str, str | None]] = []

    def survivor(ticket: int) -> int:
        seen = set()
        while ticket in evidence.merged_into and ticket not in seen:
            seen.add(ticket)
            ticket = evidence.merged_into[ticket]
        return ticket

    filed = Counter(mid for mid, _ in evidence.filed)
    ticket_of = {mid: ticket for mid, ticket in evidence.filed}
    missing = [mid for mid in evidence.sent if filed[mid] == 0]
    twice = [mid for mid, n in filed.items() if n > 1 and mid in evidence.sent]
    results.append(("every customer message filed exactly once",
                    f"not filed: {missing[0]}" if missing else f"filed {filed[twice[0]]} times: {twice[0]}" if twice else None))  # fmt: skip
    wrong = None
    for mid, sent in evidence.sent.items():
        if (
            sent.kind == "reply"
            and mid in ticket_of
            and sent.root in ticket_of
            and survivor(ticket_of[mid]) != survivor(ticket_of[sent.root])
        ):
            wrong = f"{mid} in ticket {ticket_of[mid]}, its thread's ticket is {ticket_of[sent.root]}"
            break
    results.append(("each reply in its thread's ticket", wrong))
    automatic = {mid for mid, s in evidence.sent.items() if s.kind in ("out_of_office", "bounce", "helpdesk")}
    kind_of = {mid: kind for mid, kind, _state, _t in evidence.outbox}
    # Postdesk's automatic mail (acknowledgements, auto-replies) never answers automatic mail; an
    # agent's reply or a notification an agent's action causes may follow one in its thread.
    answered = [
        (mid, parent)
        for mid, parent in zip(evidence.sent_ids, evidence.sent_replying_to, strict=True)
        if parent in automatic and kind_of.get(mid, "auto_reply") == "auto_reply"
    ]
    results.append(
        ("no automatic mail answered", f"{answered[0][0]} answers {answered[0][1]}" if answered else None)
    )
    in_sent = Counter(evidence.sent_ids)
    not_once = [(mid, in_sent[mid]) for mid, _kind, state, _t in evidence.outbox if in_sent[mid] != 1]
    results.append(("every Outbox email in SENT exactly once",
                    f"{not_once[0][0]} is in SENT {not_once[0][1]} times" if not_once else None))  # fmt: skip
    acks = Counter(ticket for _mid, kind, _state, ticket in evidence.outbox if kind == "auto_reply")
    twice_acked = [t for t, n in acks.items() if n > 1]
    results.append(("at most one acknowledgement per ticket",
                    f"ticket {twice_acked[0]} acknowledged {acks[twice_acked[0]]} times" if twice_acked else None))  # fmt: skip
    # The loop guard's promise: a sender gets at most LIMIT automatic replies an hour (the mailbox's
    # auto_replies_per_sender_per_hour, 3 by default); within it, every new question is acknowledged.
    acked_tickets = {survivor(t) for t in acks if t is not None}
    owed: list[int] = []
    given: Counter[str] = Counter()
    for mid, sent in sorted(evidence.sent.items(), key=lambda item: item[1].at):
        if sent.kind in ("question", "forward") and mid in ticket_of:
            if given[sent.customer] < LIMIT:
                owed.append(survivor(ticket_of[mid]))
            if survivor(ticket_of[mid]) in acked_tickets:
                given[sent.customer] += 1
    unacked = [t for t in owed if t not in acked_tickets]
    results.append(("every customer's new question acknowledged (within the per-sender limit)",
                    f"ticket {unacked[0]}: {', '.join(evidence.story.get(unacked[0], []))}" if unacked else None))  # fmt: skip
    per_customer = Counter(evidence.customer_of.get(t, "") for t in acks.elements() if t is not None)
    over = [(c, n) for c, n in per_customer.items() if n > LIMIT * (1 + evidence.hours)]
    results.append(("no sender gets more automatic replies than the limit", f"{over[0]}" if over else None))
    received = defaultdict(list)
    for seen in evidence.received:
        received[seen["delivery"]].append(seen)
    lost = [d for d, _state in evidence.deliveries if d not in received]
    unsigned = [s for s in evidence.received if not s["signed"] or s["body_id"] != s["delivery"]]
    results.append(("every webhook event delivered at least once, signed, with a stable id",
                    f"never received: {lost[0]}" if lost else f"bad: {unsigned[0]}" if unsigned else None))  # fmt: skip
    unsent = [mid for mid, _kind, state, _t in evidence.outbox if state != "sent"]
    undelivered = [d for d, state in evidence.deliveries if state != "delivered"]
    results.append(("nothing stuck (tasks, Outbox, webhooks)",
                    f"{evidence.stuck_tasks} tasks running" if evidence.stuck_tasks else
                    f"Outbox {unsent[0]} {len(unsent)} unsent" if unsent else
                    f"delivery {undelivered[0]} not delivered" if undelivered else None))  # fmt: skip
    # The report, against the oracle's count: each customer's new thread is a new ticket, less the ones
    # merged into another (a merged ticket leaves the reports).
    roots = {s.root for s in evidence.sent.values() if s.kind in ("question", "forward")}
    expected = len(roots) - len(evidence.merged_into)
    results.append(("the report's new tickets equal the oracle's",
                    None if evidence.reported_new == expected else f"report {evidence.reported_new}, oracle {expected}"))  # fmt: skip
    # One rating per ticket (a second click changes it); a ticket merged into another leaves the reports
    # with its rating, as it leaves the new tickets' count.
    ticket_of_email = {mid: t for mid, _kind, _state, t in evidence.outbox if t is not None}
    rated = {ticket_of_email.get(email) for email in evidence.rated_emails}
    expected_ratings = len(rated - set(evidence.merged_into) - {None})
    results.append(("the report's CSAT ratings equal the oracle's",
                    None if evidence.reported_ratings == expected_ratings else
                    f"report {evidence.reported_ratings}, oracle {expected_ratings}"))  # fmt: skip
    errors = [(t, what, status) for t, what, status in evidence.answers if status >= 500 or status == 0]
    outside = [e for e in errors if not any(start <= e[0] <= end for start, end in evidence.windows)]
    results.append(("no 5xx outside the restart windows", f"{outside[0]}" if outside else None))
    refused = [line for line in evidence.admin if line.get("code") != 0]
    results.append(("the admin's changes were taken mid-run", f"{refused[0]}" if refused else None))
    # A reminder is news once: two identical reminder emails (same person, subject and text — the text
    # names the ticket and its deadline) mean one deadline reminded twice.
    reminded = Counter(evidence.reminders)
    again = [key for key, n in reminded.items() if n > 1]
    results.append(("reminders at most once per deadline",
                    f"to {again[0][0]} twice: {again[0][1]}" if again else
                    f"a reminder scan failed: {evidence.clock_failures[0]}" if evidence.clock_failures else None))  # fmt: skip
    # Each thread shows its ticket's state (the survivor's, for a merged ticket): exactly one status
    # label, the right one, whose it is (Mine/<name> or Unassigned) and Snoozed while it is, unless solved.
    wrong_labels = None
    for ticket, (_status, _assignee, thread) in sorted(evidence.states.items()):
        status, assignee, _thread = evidence.states[survivor(ticket)]
        shown = {name.removeprefix("Postdesk/") for name in evidence.thread_labels.get(thread, set())
                 if name.startswith("Postdesk/")}  # fmt: skip
        statuses = shown & set(STATUS_LABELS.values())
        whose = {name for name in shown if name.startswith("Mine/") or name == "Unassigned"}
        # docs/gmail-labels.md: whose it is, while it is not solved
        solved = status in ("solved", "closed")
        expected_whose = set() if solved else {f"Mine/{assignee}"} if assignee else {"Unassigned"}
        snoozed = not solved and survivor(ticket) in evidence.snoozed
        if thread and (statuses != {STATUS_LABELS[status]} or whose != expected_whose
                       or ("Snoozed" in shown) != snoozed):  # fmt: skip
            wrong_labels = f"ticket {ticket} ({status}, {assignee or 'nobody'}) shows {sorted(shown)}"
            break
    results.append(("labels equal each ticket's state", wrong_labels))
    return results


def report(results: list[tuple[str, str | None]], soak: Soak, evidence: Evidence) -> str:
    faults = Counter(line["what"] for line in soak.log.of("fault"))
    actions = Counter(line["kind"] for line in soak.log.lines if line["kind"] not in ("fault", "deliver"))
    kinds = Counter(s.kind for s in evidence.sent.values())
    lines = [
        f"soak seed {soak.seed}: {soak.seconds:.0f} s, {len(evidence.sent)} emails delivered {dict(kinds)}, "
        f"{evidence.tickets} tickets, {len(evidence.outbox)} sent by Postdesk, "
        f"{len(evidence.received)} webhook posts received, {len(evidence.reminders)} reminders "
        f"(the clock moved {sum(line['hours'] for line in soak.log.of('clock_forward'))} h at the end)",  # fmt: skip
        f"actions {dict(actions)}",
        "waits "
        + ", ".join(
            f"quiet after {line['seconds']} s{'' if line['done'] else ' (STALLED: ' + str(line['state']) + ')'}"
            for line in soak.log.of("quiet")
        )
        + "".join(
            f"; clock moved in {line['seconds']} s" for line in soak.log.of("clock_forward")
        ),  # fmt: skip
        f"faults {dict(faults)}",
    ]
    lines += [f"  {'✓' if problem is None else '✗'} {name}" + ("" if problem is None else f": {problem}")
              for name, problem in results]  # fmt: skip
    lines.append(f"replay: make soak SEED={soak.seed}")
    return "\n".join(lines)
