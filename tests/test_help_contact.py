"""The help centre's contact form: a question becomes a ticket only after its sender confirms the
address with the link mailed to it; the acknowledgement then starts the Gmail thread from the shared
mailbox (the real client against the sandbox), and the articles the visitor saw are on the ticket.
Abuse: one mail an hour to an address, forged and expired links, a honeypot, 1,000 posts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from helpers import MAILBOX, make_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from server.base.help_tables import HelpDay, HelpRequest
from server.base.models import Event, Message, Outbox, Ticket
from server.services import articles


@pytest.fixture
def centre(app, helpdesk):
    box = helpdesk.connect(MAILBOX, agents=["anna@example.com"])
    box.settings = {
        **(box.settings or {}),
        "help_centre": {"enabled": True, "slug": "acme", "contact_form": True},
    }
    session = helpdesk.session
    article = articles.save(session, box, articles.Draft("The app is slow", "Clear the cache and reload.", "en",
                                                         "Performance", True), author=None)  # fmt: skip
    session.commit()
    app.config["PUBLIC_URL"] = "https://desk.example.com"
    return helpdesk, box, article.id


def _post(client, **fields):
    data = {"email": "zoe@shop.example", "name": "Zoe", "subject": "Everything lags", "text": "Since Monday every page lags.",
            "lang": "en", **fields}  # fmt: skip
    return client.post(
        "/help/acme/contact", data=data, environ_base={"REMOTE_ADDR": fields.pop("ip", "198.51.100.7")}
    )


def _link(session) -> str:
    mail = session.scalar(select(Outbox).where(Outbox.kind == "notification").order_by(Outbox.id.desc()))
    found = re.search(r"https://desk\.example\.com(/help/acme/confirm/\S+)", mail.body_text)
    assert found, mail.body_text
    return found[1]


def test_a_confirmed_question_becomes_a_ticket_whose_acknowledgement_starts_the_thread(
    centre, client, deliver
):
    helpdesk, box, article_id = centre
    session = helpdesk.session
    form = client.get(f"/help/acme/contact?read={article_id}").get_data(as_text=True)
    assert 'name="website"' in form and f'name="read" value="{article_id}"' in form
    suggested = client.get("/help/acme/suggest?q=everything+is+sluggish&lang=en").get_json()
    assert [s["title"] for s in suggested] == ["The app is slow"]  # a related word, not the title's

    sent = _post(client, read=str(article_id), seen=f"{article_id},999999")
    assert sent.status_code == 200 and "Check your mail" in sent.get_data(as_text=True)
    assert (
        session.scalar(select(func.count()).select_from(Ticket)) == 0
    )  # nothing before the address is confirmed
    mail = session.scalar(select(Outbox).where(Outbox.kind == "notification"))
    assert (
        mail.to == "zoe@shop.example" and "Confirm your question" in mail.subject and mail.headers["internal"]
    )
    link = _link(session)

    asked = client.get(link)
    assert asked.status_code == 200 and "Yes, send it to the team" in asked.get_data(as_text=True)
    assert session.scalar(select(func.count()).select_from(Ticket)) == 0  # opening the link sends nothing
    done = client.post(link)
    assert done.status_code == 200 and "reached the team" in done.get_data(as_text=True)
    assert client.post(link).status_code == 200  # again: nothing more
    session.expire_all()
    ticket = session.scalar(select(Ticket))
    assert session.scalar(select(func.count()).select_from(Ticket)) == 1
    assert ticket.subject == "Everything lags" and ticket.customer.email == "zoe@shop.example"
    event = session.scalar(select(Event).where(Event.ticket_id == ticket.id, Event.kind == "help_form"))
    assert event.after == {"articles": [article_id], "read_first": True}  # the unknown id is not kept
    day = session.get(HelpDay, (box.id, datetime.now(UTC).date()))
    assert day.contacts_after_reading == 1 and day.contacts_direct == 0

    helpdesk.cycle()  # the acknowledgement goes out from the shared mailbox and is filed on the ticket
    ack = next(
        m
        for m in helpdesk.sent_by(MAILBOX)
        if m.subject.startswith("Re: Everything lags") or "Everything lags" in m.subject
    )
    assert "zoe@shop.example" in ack.raw.decode(errors="replace")
    helpdesk.cycle()
    reply = deliver(
        make_email("Re: " + ack.subject, "Still slow", sender="zoe@shop.example", in_reply_to=ack.rfc822_id)
    )
    helpdesk.cycle()
    filed = session.scalar(select(Message).where(Message.gmail_id == reply["id"]))
    assert filed.ticket_id == ticket.id and reply["threadId"] == ack.thread_id


def test_an_address_gets_one_mail_an_hour_and_a_thousand_posts_make_nothing_more(centre, client):
    helpdesk, box, _article = centre
    session = helpdesk.session
    for n in range(1000):
        _post(client, subject=f"Spam {n}", ip=f"203.0.113.{n % 200}")
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(HelpRequest)) == 3  # the address's hourly limit
    assert session.scalar(select(func.count()).select_from(Outbox).where(Outbox.kind == "notification")) == 1
    assert session.scalar(select(func.count()).select_from(Ticket)) == 0
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=61)):
        _post(client, subject="An hour later")
        session.expire_all()
        assert (
            session.scalar(select(func.count()).select_from(Outbox).where(Outbox.kind == "notification")) == 2
        )


def test_forged_expired_and_honeypot_posts_create_nothing(centre, client):
    helpdesk, _box, _article = centre
    session = helpdesk.session
    trapped = _post(client, website="http://spam.example")
    assert trapped.status_code == 200 and session.scalar(select(func.count()).select_from(HelpRequest)) == 0
    bad = _post(client, email="not an address", subject="", text="")
    page = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "Please give an email address" in page and 'aria-invalid="true"' in page
    for forged in ("x", "eyJyIjoxfQ.abc.def", "a" * 500):
        assert client.post(f"/help/acme/confirm/{forged}").status_code == 400
    _post(client)
    link = _link(session)
    with time_machine.travel(datetime.now(UTC) + timedelta(days=2)):
        expired = client.post(link)
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    tampered = link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb")
    assert client.post(tampered).status_code == 400
    assert session.scalar(select(func.count()).select_from(Ticket)) == 0


def test_the_form_is_off_when_the_admin_turns_it_off(centre, client):
    helpdesk, box, _article = centre
    box.settings = {**box.settings, "help_centre": {"enabled": True, "slug": "acme", "contact_form": False}}
    helpdesk.session.commit()
    assert client.get("/help/acme/contact").status_code == 404
    assert _post(client).status_code == 404


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(st.sampled_from(["email", "name", "subject", "text", "lang", "read", "seen", "website"]),
                              st.text(max_size=60) | st.sampled_from(["\x00", "1,2,x,99999999999", "ru", "a@b.co"]),
                              max_size=8))  # fmt: skip
def test_any_form_gets_a_page_never_a_server_error(centre, client, fields):
    answer = client.post("/help/acme/contact", data=fields)
    assert answer.status_code in (200, 400, 429)
    for path in ("/help/acme/search", "/help/acme/suggest"):
        assert (
            client.get(
                path, query_string={"q": fields.get("text", ""), "lang": fields.get("lang", "")}
            ).status_code
            == 200
        )


def test_questions_from_the_form_have_no_gmail_thread_and_labels_leave_them_alone(centre, client):
    """Their first message is not Gmail's ("" thread): labels must not treat two such tickets as one
    shared thread, nor send Gmail ids it never made."""
    from server.services.labels import apply_wanted
    from server.services.mailbox_settings import LABEL_DEFAULTS

    helpdesk, box, _article = centre
    session = helpdesk.session
    box.settings = {**box.settings, "gmail_labels": {**LABEL_DEFAULTS, "enabled": True}}
    session.commit()
    for n, email in enumerate(("ann@shop.example", "bob@shop.example")):
        _post(client, email=email, subject=f"Question {n}", ip=f"198.51.100.{n}")
        client.post(_link(session))
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Ticket)) == 2
    while apply_wanted(session, box, helpdesk.clients[MAILBOX]).tickets:
        pass  # no Gmail error: nothing was sent for the form's messages
    assert not session.scalars(select(Ticket).where(Ticket.labels_wanted_at.is_not(None))).all()
