"""FAQ answers: a template with example questions answers a matching new ticket in its
acknowledgement; "this solved it" (a signed link, asked before it acts) runs the faq_solved rules;
every answer sent is an Event with its score; the reports show the deflection rate."""

from __future__ import annotations

import re
import urllib.parse
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from helpers import MAILBOX, make_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from server.base.models import Event, Outbox, Template, Ticket
from server.services import template_sets
from server.services.knowledge import faq
from server.services.mailbox_settings import SettingsError, validate

LINK = re.compile(r"http://helpdesk\.test(/faq/\S+)")
EXPORT = "Open Settings → Data → Export and choose CSV; the file arrives by email within minutes."
ЭКСПОРТ = "Откройте Настройки → Данные → Экспорт и выберите CSV; файл придёт на почту за несколько минут."


@pytest.fixture
def box(app, helpdesk, session):
    """support@ with the default rules and an FAQ template "Export" in English and Russian."""
    app.config.update(PUBLIC_URL="http://helpdesk.test", CSAT_RATE_LIMIT="10000 per minute")
    mailbox = helpdesk.connect(MAILBOX, agents=["anna@example.com"])
    for locale, text, questions in (
        ("en", EXPORT, ("How do I export my data to CSV?", "Where can I download all my contacts?")),
        ("ru", ЭКСПОРТ, ("Как выгрузить данные в CSV?", "Где скачать все контакты?")),
    ):
        draft = template_sets.Draft("Export", "Hello {{ customer.name }},\n\n" + text, None, questions)
        template_sets.save(session, mailbox, "Export", locale, draft)
    return mailbox


def acknowledgement(session, ticket: Ticket) -> str:
    session.expire_all()
    return session.scalar(
        select(Outbox.body_text).where(Outbox.ticket_id == ticket.id, Outbox.kind == "auto_reply")
    )


def test_a_matching_ticket_gets_the_answer_in_its_acknowledgement_and_stays_open(
    box, helpdesk, deliver, session
):
    deliver(make_email("CSV export", "Hi, how can I export my data to a CSV file? Thanks, Emily",
                       sender="Emily Clarke <emily@customer.test>"))  # fmt: skip
    deliver(make_email("Invoice", "The invoice has the wrong VAT number.", sender="tom@customer.test"))
    deliver(
        make_email("Выгрузка", "Здравствуйте! Как выгрузить все данные в CSV?", sender="olga@customer.test")
    )
    helpdesk.cycle()

    emily, tom, olga = (session.scalar(select(Ticket).where(Ticket.subject == s)) for s in ("CSV export", "Invoice", "Выгрузка"))  # fmt: skip
    mail = acknowledgement(session, emily)
    assert "Your request is ticket" in mail  # the acknowledgement itself …
    assert "This may already answer your question:" in mail and "Hello Emily Clarke,\n\n" + EXPORT in mail
    assert LINK.search(mail) and "the ticket stays open" in mail
    assert ЭКСПОРТ in acknowledgement(session, olga) and "Возможно, это уже отвечает" in acknowledgement(
        session, olga
    )
    assert "This may already answer" not in acknowledgement(session, tom)  # nothing close enough
    events = session.scalars(select(Event).where(Event.kind == "faq_answered").order_by(Event.id)).all()
    assert {e.ticket_id for e in events} == {emily.id, olga.id}
    assert all(e.after["template"] == "Export" and 0.5 <= e.after["score"] <= 1 for e in events)
    assert emily.status == "open" and olga.status == "open"


def test_this_solved_it_asks_first_then_runs_the_rules_once(box, helpdesk, deliver, session, client):
    deliver(make_email("CSV export", "How do I export my data to CSV?", sender="emily@customer.test"))
    helpdesk.cycle()
    ticket = session.scalar(select(Ticket))
    path = LINK.search(acknowledgement(session, ticket)).group(1)

    asked = client.get(path)  # what a mail scanner opening every link does: nothing changes
    assert asked.status_code == 200 and "Did this answer your question?" in asked.get_data(as_text=True)
    session.expire_all()
    assert ticket.status == "open"

    said = client.post(path)
    again = client.post(path)
    assert said.status_code == again.status_code == 200
    assert "glad it helped" in said.get_data(as_text=True)
    session.expire_all()
    assert ticket.status == "solved" and "faq" in [t.name for t in ticket.tags]  # the default rule
    assert len(session.scalars(select(Event).where(Event.kind == "faq_solved")).all()) == 1

    forged = client.post(path[:-3] + "abc")
    assert forged.status_code == 400 and "not a link we sent" in forged.get_data(as_text=True)
    assert client.get("/faq/" + "x" * 600).status_code == 400


def test_an_old_link_has_expired(box, helpdesk, deliver, session, client):
    import time_machine

    deliver(make_email("CSV export", "How do I export my data to CSV?", sender="emily@customer.test"))
    helpdesk.cycle()
    path = LINK.search(acknowledgement(session, session.scalar(select(Ticket)))).group(1)
    with time_machine.travel(datetime.now(UTC).timestamp() + (faq.LINK_DAYS + 1) * 86_400):
        expired = client.post(path)
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
    assert session.scalars(select(Event).where(Event.kind == "faq_solved")).all() == []


def test_a_template_that_places_the_answer_itself_and_the_admins_threshold(box, helpdesk, deliver, session):
    ack = template_sets.Draft(
        "{{ ticket.subject }} [#{{ ticket.number }}]",
        "Ticket #{{ ticket.number }}.{% if faq.answer %}\nTry this: {{ faq.answer }}\nSolved? {{ faq.link }}{% endif %}\n",
    )
    template_sets.save(session, box, "Acknowledgement", "en", ack)
    box.settings = {**(box.settings or {}), "faq": {"enabled": True, "threshold": 1.0}}
    session.commit()
    deliver(make_email("Export", "How can I export my data to a CSV file, please?", sender="a@customer.test"))
    helpdesk.cycle()
    first = session.scalar(select(Ticket).where(Ticket.subject == "Export"))
    assert "Try this" not in acknowledgement(session, first)  # a near match is below a threshold of 100 %

    box.settings = {**box.settings, "faq": {"enabled": True, "threshold": 0.5}}
    session.commit()
    deliver(make_email("Export again", "How can I export my data to a CSV file?", sender="b@customer.test"))
    helpdesk.cycle()
    mail = acknowledgement(session, session.scalar(select(Ticket).where(Ticket.subject == "Export again")))
    assert "Try this: Hello" in mail and "Solved? http://helpdesk.test/faq/" in mail
    assert "This may already answer" not in mail  # not added twice


@pytest.mark.parametrize(
    "value",
    [{"threshold": 0.1}, {"threshold": 1.5}, {"threshold": "half"}, {"threshold": True}, {"enabled": "yes"},
     {"sure": 1}, [0.5]],
)  # fmt: skip
def test_faq_settings_refuse_what_makes_no_sense(value):
    with pytest.raises(SettingsError) as found:
        validate({"faq": value})
    assert "faq" in str(found.value)


def test_example_questions_are_checked_and_kept_on_the_template(box, session):
    problems = template_sets.check(
        box, "Bad", "en", template_sets.Draft("s", "t", None, ("the and of", "x" * 600))
    )
    assert "questions" in problems and "no word" in problems["questions"] and "500" in problems["questions"]
    assert faq.questions_from_text("  one \n\n one\n two  words ") == ["one", "two words"]
    stored = session.scalar(select(Template).where(Template.name == "Export", Template.locale == "en"))
    assert stored.faq_questions == [
        "How do I export my data to CSV?",
        "Where can I download all my contacts?",
    ]


def test_the_reports_show_the_faq_deflection_rate(app, box, helpdesk, deliver, session, client):
    from server.services.figures import metrics
    from server.services.figures.tiles import tiles

    for n, sender in enumerate(("a@customer.test", "b@customer.test", "c@customer.test", "d@customer.test")):
        deliver(make_email(f"Export {n}", "How do I export my data to CSV?", sender=sender))
    helpdesk.cycle()
    found = session.scalars(select(Ticket).order_by(Ticket.id)).all()
    for ticket in found[:2]:
        client.post(LINK.search(acknowledgement(session, ticket)).group(1))
    today = datetime.now(UTC).date()
    scope = metrics.Scope(mailbox_ids=(box.id,))
    period = metrics.Period.last_days(1, today, ZoneInfo("UTC"))
    figures = metrics.overview(session, scope, period, datetime.now(UTC))
    assert figures.counts["faq_answered"] == 4 and figures.counts["faq_deflected"] == 2
    assert figures.faq_deflection == 50.0
    before = metrics.overview(session, scope, period.previous(), datetime.now(UTC))
    with app.test_request_context():  # the titles are translated for the reader
        shown = {tile.key: tile for tile in tiles(figures, before)[0]}
    assert shown["faq_deflection"].value == 50.0 and shown["faq_deflection"].drill == "faq_deflected"
    assert "4 FAQ answers sent" in shown["faq_deflection"].note


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=st.text(max_size=700), post=st.booleans())
def test_any_faq_link_gets_a_page_never_a_server_error(app, client, token, post):
    app.config.update(CSAT_RATE_LIMIT="100000 per minute")
    path = "/faq/" + urllib.parse.quote(token, safe="")
    answer = client.post(path) if post else client.get(path)
    assert answer.status_code in (200, 308, 400, 404, 405, 410)  # 308: "/faq/" is no link at all


def test_an_faq_answer_that_fails_to_render_is_left_out_and_the_acknowledgement_goes(
    box, helpdesk, deliver, session
):
    for template in session.scalars(select(Template).where(Template.name == "Export")):
        template.body_text = "{{ ticket.number / 0 }}"  # written past the page's checks (say, by SQL)
    session.commit()
    deliver(make_email("CSV export", "How do I export my data to CSV?", sender="emily@customer.test"))
    helpdesk.cycle()
    mail = acknowledgement(session, session.scalar(select(Ticket)))
    assert "Your request is ticket" in mail and "This may already answer" not in mail
    assert session.scalars(select(Event).where(Event.kind == "faq_answered")).all() == []
