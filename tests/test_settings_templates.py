"""The templates page: both languages of a template edited, checked by the same sandbox as sending,
previewed with a real ticket or a sample, saved only whole; hostile templates reach nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from web_support import csrf_token, sign_in

from server.base.db import get_session
from server.base.models import Event, Template
from server.services import tickets


def _admin(web, google):
    client = web.test_client()
    sign_in(client, google, "admin@example.com")
    return client, csrf_token(client)


def _form(token, **parts):
    data = {"csrf_token": token}
    for locale in ("en", "ru"):
        for part in ("subject", "text", "html", "version"):
            data[f"{locale}-{part}"] = parts.get(f"{locale}_{part}", "new" if part == "version" else "")
    return data


def test_a_template_is_written_in_both_languages_previewed_with_a_ticket_and_saved(web, google, team):
    with web.app_context():
        db = get_session()
        ticket = tickets.open_ticket(db, team["mailbox"], subject="Broken printer", customer=None,
                                     gmail_thread_id="t1", created_at=datetime.now(UTC))  # fmt: skip
        db.commit()
        number = ticket.number
    client, token = _admin(web, google)
    url = f"/settings/templates/edit?mailbox={team['mailbox']}&name=Shipping"
    parts = {"en_subject": "About #{{ ticket.number }}", "en_text": "Hello! {{ ticket.subject }} is on its way.",
             "ru_subject": "О заявке #{{ ticket.number }}", "ru_text": "Здравствуйте! «{{ ticket.subject }}» в пути."}  # fmt: skip

    preview = client.post(url + f"&preview=1&ticket={number}", data=_form(token, **parts))
    live = client.post(f"/settings/templates/preview?mailbox={team['mailbox']}",
                       data={**_form(token, **parts), "ticket": str(number)}).get_json()  # fmt: skip
    saved = client.post(url, data=_form(token, **parts), follow_redirects=True)

    html = preview.get_data(as_text=True)
    assert (
        preview.status_code == 200 and f"About #{number}" in html and "Broken printer is on its way" in html
    )
    assert live["ru"]["subject"] == f"О заявке #{number}" and "«Broken printer» в пути" in live["ru"]["text"]
    assert "Template Shipping saved" in saved.get_data(as_text=True)
    with web.app_context():
        db = get_session()
        stored = {
            t.locale: t.subject for t in db.scalars(select(Template).where(Template.name == "Shipping"))
        }
        assert stored == {"en": "About #{{ ticket.number }}", "ru": "О заявке #{{ ticket.number }}"}
        assert len(db.scalars(select(Event).where(Event.kind == "template_changed")).all()) == 2


def test_a_misspelt_variable_is_shown_with_its_line_and_nothing_is_saved(web, google, team):
    client, token = _admin(web, google)
    url = f"/settings/templates/edit?mailbox={team['mailbox']}&name=Typo"

    refused = client.post(url, data=_form(token, en_subject="Hi", en_text="Line one\nTicket {{ ticket.numbr }}",
                                          ru_subject="Привет", ru_text="Всё хорошо"))  # fmt: skip

    assert refused.status_code == 400
    assert re.search(r'id="en-text-error">text, line 2: .*numbr', refused.get_data(as_text=True))
    with web.app_context():
        assert (
            get_session().scalars(select(Template).where(Template.name == "Typo")).all() == []
        )  # ru neither


@pytest.mark.parametrize(
    "hostile",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{% for i in range(10**9) %}x{% endfor %}",
        "{{ config }}{{ request }}{{ self }}",
        "{{ customer.__dict__ }}",
        "{{ 'x' * 10**9 }}",  # a gigabyte of text: refused before it is built
        "{{ ([1] * 1000) * 1000000 }}",
        "{{ 10 ** 100000000 }}",  # a power that would spin for minutes
    ],
)
def test_hostile_template_text_reaches_nothing_of_the_server(web, google, team, hostile):
    client, token = _admin(web, google)

    live = client.post(f"/settings/templates/preview?mailbox={team['mailbox']}",
                       data=_form(token, en_subject="x", en_text=hostile))  # fmt: skip
    saved = client.post(f"/settings/templates/edit?mailbox={team['mailbox']}&name=Evil",
                        data=_form(token, en_subject="x", en_text=hostile))  # fmt: skip

    answer = live.get_json()["en"]
    assert live.status_code == 200 and "error" in answer
    assert saved.status_code == 400
    assert "SECRET" not in str(answer) and "uid=" not in str(answer)


def test_the_html_part_is_previewed_cleaned_and_the_team_reads_only(web, google, team):
    client, token = _admin(web, google)
    html_part = '<p onclick="steal()">Hi <script>alert(1)</script><a href="javascript:x()">link</a></p>'
    live = client.post(f"/settings/templates/preview?mailbox={team['mailbox']}",
                       data=_form(token, en_subject="x", en_text="y", en_html=html_part)).get_json()  # fmt: skip
    agent = web.test_client()
    sign_in(agent, google, "agent@example.com")
    page = agent.get(f"/settings/templates/edit?mailbox={team['mailbox']}&name=Shipping").get_data(
        as_text=True
    )
    refused = agent.post(f"/settings/templates/edit?mailbox={team['mailbox']}&name=Shipping",
                         data=_form(csrf_token(agent), en_subject="x", en_text="y"))  # fmt: skip

    assert "onclick" not in live["en"]["html"] and "<script" not in live["en"]["html"]
    assert "javascript:" not in live["en"]["html"] and "Hi" in live["en"]["html"]
    assert 'id="save-template"' not in page and "<fieldset disabled>" in page
    assert refused.status_code == 403
