"""Customer satisfaction: signed one-click links in the "solved" mail, one rating per ticket, the
customer's comment, a rule on a bad rating, the add-on card; forged, altered and expired links (and
1,000 clicks on one link) change nothing but the one rating."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from helpers import MAILBOX, make_email
from sqlalchemy import func, select

from server.base.models import CsatRating, Event, Outbox, Ticket, TicketStatus
from server.services import tickets
from server.services.automation import run_time_rules

LINK = re.compile(r"(Good|Okay|Bad|Хорошо|Нормально|Плохо): http://helpdesk\.test(/csat/\S+)")


@pytest.fixture
def solved(app, helpdesk, deliver, session):
    """support@ with its default rules: Alice's ticket, solved, and the "solved" mail with its links."""
    app.config.update(PUBLIC_URL="http://helpdesk.test", CSAT_RATE_LIMIT="10000 per minute")
    box = helpdesk.connect(MAILBOX, agents=["anna@example.com"])
    deliver(make_email("Printer jammed", "Paper everywhere", sender="alice@customer.test"))
    helpdesk.cycle()
    ticket = session.scalar(select(Ticket))
    tickets.set_status(session, ticket, TicketStatus.SOLVED, at=datetime.now(UTC))
    session.commit()
    run_time_rules(session, box, now=datetime.now(UTC))
    session.commit()
    mail = session.scalar(select(Outbox.body_text).where(Outbox.body_text.like("%as solved%")))
    return ticket, dict(LINK.findall(mail))


def _count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def test_the_solved_mail_carries_signed_links_and_one_click_rates_the_ticket(client, session, solved):
    ticket, links = solved

    assert set(links) == {"Good", "Okay", "Bad"}
    good = client.get(links["Good"])
    changed = client.get(links["Bad"])  # a later click within the window changes it
    comment = client.post(links["Bad"], data={"comment": "The printer broke again after an hour."})

    assert good.status_code == changed.status_code == comment.status_code == 200
    assert "Thank you for your rating" in good.get_data(as_text=True)
    assert "Your comment reached the team" in comment.get_data(as_text=True)
    session.expire_all()
    rating = session.get(CsatRating, ticket.id)
    assert (rating.value, rating.score, rating.changes) == ("bad", 1, 1)
    assert rating.comment == "The printer broke again after an hour."
    events = session.scalars(select(Event).where(Event.kind == "csat_rated").order_by(Event.id)).all()
    assert [e.after["value"] for e in events] == ["good", "bad", "bad"] and events[-1].ticket_id == ticket.id


def test_forged_altered_and_expired_links_store_nothing(app, client, session, solved):
    import time_machine

    ticket, links = solved
    token = links["Good"].rsplit("/", 1)[1]
    altered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    from itsdangerous import URLSafeTimedSerializer

    forged = URLSafeTimedSerializer("not-our-secret", salt="postdesk-csat-v1").dumps(
        {"t": ticket.id, "v": "good"}
    )
    other_ticket = URLSafeTimedSerializer(app.config["SECRET_KEY"], salt="another-salt").dumps(
        {"t": ticket.id, "v": "good"}
    )

    answers = [client.get(f"/csat/{t}") for t in (altered, forged, other_ticket, "x", "." * 600)]
    with time_machine.travel(datetime.now(UTC).timestamp() + 15 * 86_400):
        expired = client.get(links["Good"])

    assert [a.status_code for a in answers] == [400] * 5
    assert "not a rating link we sent" in answers[0].get_data(as_text=True)
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    assert _count(session, CsatRating) == 0
    assert session.scalars(select(Event).where(Event.kind == "csat_rated")).all() == []


def test_a_thousand_clicks_on_one_link_change_nothing_but_the_one_rating(client, session, solved):
    ticket, links = solved
    events_before = _count(session, Event)

    statuses = {client.get(links["Okay"]).status_code for _ in range(1000)}

    assert statuses == {200}
    assert _count(session, CsatRating) == 1 and session.get(CsatRating, ticket.id).value == "okay"
    assert _count(session, Event) == events_before + 1  # one csat_rated event, not a thousand


def test_the_rating_pages_are_rate_limited(app, client, solved):
    _ticket, links = solved
    app.config["CSAT_RATE_LIMIT"] = "5 per minute"

    statuses = [client.get(links["Good"]).status_code for _ in range(7)]

    assert statuses == [200] * 5 + [429] * 2


def test_a_bad_rating_can_fire_a_rule_that_tells_the_lead(client, session, solved, helpdesk):
    from server.services import rule_sets

    ticket, links = solved
    box = helpdesk.mailboxes[MAILBOX]
    rules = (
        rule_sets.export_yaml(session, box)
        + """- name: Service recovery
  trigger: csat_rated
  conditions: {field: csat_score, op: lt, value: 3}
  actions:
    - notify: {to: [admins], template: Ticket solved}
    - add_tag: unhappy
"""
    )
    rule_sets.save(session, box, rule_sets.parse(session, box, rules))

    client.get(links["Good"])
    client.get(links["Bad"])

    session.expire_all()
    ticket = session.get(Ticket, ticket.id)
    assert "unhappy" in [t.name for t in ticket.tags]
    notes = session.scalars(select(Outbox).where(Outbox.to == "anna@example.com")).all()
    assert len(notes) == 1  # the good rating fired nothing, the bad one once


def test_the_rating_shows_on_the_add_on_card(addon, session, desk, app, client):
    from server.services.csat import rate

    ticket = session.scalar(select(Ticket).where(Ticket.subject == "Cannot log in"))
    rate(session, ticket, "bad", at=datetime.now(UTC), comment="Too slow")
    session.commit()

    text = json.dumps(addon.act("open_ticket", ticket=ticket.id).get_json(), ensure_ascii=False)

    assert "Customer's rating" in text and "Bad" in text and "Too slow" in text


def test_the_optional_nps_question_is_asked_only_when_the_mailbox_wants_it(client, session, solved):
    ticket, links = solved
    off = client.get(links["Good"]).get_data(as_text=True)
    refused = client.post(links["Good"], data={"nps": "9"})  # not asked: not taken
    assert 'id="nps"' not in off and refused.status_code == 400
    session.expire_all()
    assert session.get(CsatRating, ticket.id).nps is None

    box = ticket.mailbox
    box.settings = {**box.settings, "csat": {"nps": True}}
    session.commit()
    asked = client.get(links["Good"]).get_data(as_text=True)
    bad = client.post(links["Good"], data={"nps": "11"})
    answered = client.post(links["Good"], data={"nps": "9", "comment": ""})

    assert 'id="nps"' in asked and 'value="10"' in asked
    assert bad.status_code == 400 and answered.status_code == 200
    session.expire_all()
    assert session.get(CsatRating, ticket.id).nps == 9
    event = session.scalars(select(Event).where(Event.kind == "csat_rated").order_by(Event.id.desc())).first()
    assert event.after["nps"] == 9


def test_the_mailbox_settings_validate_the_nps_choice():
    from server.services.mailbox_settings import SettingsError, validate

    with pytest.raises(SettingsError) as refused:
        validate({"csat": {"nps": "yes"}})
    assert refused.value.problems == ["csat.nps: true or false"]
    assert validate({"csat": {"nps": True, "scale": "five"}})["csat"]["nps"] is True
