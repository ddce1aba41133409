"""Real-world and hostile mail: every message lands, readable, and nothing escapes as an exception."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import MAILBOX, make_email
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from server.base.models import Event, Message, Ticket
from server.gmail.mime import (
    automatic_reason,
    decode_bytes,
    decode_header_value,
    html_to_text,
    parse_gmail_message,
    sanitize_html,
    split_reply,
)

FIXTURES = Path(__file__).parent / "fixtures" / "emails"

#: What a person must see for each real-world email: subject, sender, words of the text, attachments.
EXPECTED = {
    "outlook-html-en.eml": ("Invoices not visible in portal since upgrade", "m.whitfield@northwind-traders.co.uk", "none of our invoices show up", []),
    "apple-mail-html-only.eml": ("Can’t change my e-mail address", "noah.fischer@icloud.com", "button stays grey", []),
    "gmail-alternative-ru-base64.eml": ("Не приходят письма с новым паролем", "svetlana.ivanova@gmail.com", "перестали приходить письма", []),
    "mailru-cp1251-qp.eml": ("Закрыть доступ", "buh@romashka-ooo.ru", "ООО «Ромашка»", []),
    "koi8r-8bit-old-client.eml": ("Не работает вход через ЕСИА", "sergeev@zavod-mayak.ru", "выдаёт ошибку 403", []),
    "cp866-dos-mailer.eml": ("Касса не печатает чеки", "kassa@apteka-zdorovie.ru", "не печатает чеки после обновления", []),
    "iso-8859-5-and-latin1.eml": ("Problème de facturation / Счет", "francois.muller@example.fr", "Счет неверный", []),
    "undeclared-8bit-cp1251.eml": ("Не могу скачать отчёт", "oleg.petrenko@ukr.net", "Кнопка «Скачать»", []),
    "broken-boundary.eml": ("Booking widget shows wrong timezone", "kevin@obrien-plumbing.ie", "instead of Dublin time", []),
    "missing-date-and-from.eml": ("no sender here", "", "without a From or a Date", []),
    "nested-related-inline-image.eml": ("Dashboard chart is blank (screenshot inside)", "grace.lee@brightside.io", "revenue chart is blank", ["Отчёт.xlsx"]),
    "forwarded-message-rfc822.eml": ("Fwd: Your payment failed", "ahmed.hassan@protonmail.com", "my card was charged", ["Your payment failed.eml"]),
    "bounce-multipart-report.eml": ("Delivery Status Notification (Failure)", "mailer-daemon@googlemail.com", "Address not found", ["unnamed"]),
    "out-of-office-ru.eml": ("Автоответ: Ваша заявка", "m.sokolova@tehnopark.ru", "Я в отпуске", []),
    "calendar-invite.eml": ("Invitation: Onboarding call @ Mon Nov 16, 2026 3pm", "lucas.martin@gmail.com", "You have been invited", ["invite.ics"]),
    "reply-with-quote-en.eml": ("Re: Can't log in after password reset", "jane.doe@acme.io", "It happened again", []),
    "garbage-headers-unknown-charset.eml": (None, "", None, []),
}  # fmt: skip


def test_every_fixture_has_an_expectation():
    assert sorted(p.name for p in FIXTURES.glob("*.eml")) == sorted(EXPECTED)


def test_real_world_emails_are_filed_readably(session, gmail, sync):
    delivered = {
        p.name: gmail.sandbox.deliver(MAILBOX, p.read_bytes()).id for p in sorted(FIXTURES.glob("*.eml"))
    }

    result = sync()

    rows = {m.gmail_id: m for m in session.scalars(select(Message))}
    assert result.messages_filed == len(EXPECTED) == len(rows)
    for name, (subject, sender, words, attachments) in EXPECTED.items():
        message = rows[delivered[name]]
        assert message.ticket_id is not None, name
        if subject is not None:
            assert message.subject == subject, name
        assert message.from_email == sender, name
        if words is not None:
            assert words in message.text, (name, message.text)
        assert [a["filename"] for a in message.attachments] == attachments, name


def test_problems_are_flagged_not_hidden(session, gmail, sync):
    for name in (
        "undeclared-8bit-cp1251.eml",
        "missing-date-and-from.eml",
        "garbage-headers-unknown-charset.eml",
        "broken-boundary.eml",
    ):
        gmail.sandbox.deliver(MAILBOX, (FIXTURES / name).read_bytes())
    sync()
    problems = {m.subject: {p["kind"] for p in m.parse_problems} for m in session.scalars(select(Message))}
    assert problems["Не могу скачать отчёт"] == {"charset"}
    assert problems["no sender here"] == {"no_from", "no_date"}
    assert problems["Booking widget shows wrong timezone"] == {"raw_body"}
    garbage = next(v for k, v in problems.items() if k.startswith("Hello"))
    assert {"bad_from", "no_date", "charset"} <= garbage


def test_automatic_mail_is_recognised_by_every_marker():
    def reason(**headers):
        return automatic_reason(
            {k.replace("_", "-"): v for k, v in headers.items()}, "text/plain", "alice@example.org"
        )

    assert reason() is None
    assert reason(auto_submitted="no") is None
    assert reason(auto_submitted="auto-replied") == "Auto-Submitted: auto-replied"
    assert reason(precedence="bulk") and reason(precedence="junk") and reason(precedence="auto_reply")
    assert reason(list_id="<x.example.org>") and reason(list_unsubscribe="<mailto:u@x>")
    assert reason(x_autoreply="yes") and reason(x_autorespond="yes")
    assert reason(x_auto_response_suppress="DR, OOF") and reason(x_auto_response_suppress="DR") is None
    assert reason(return_path="<>")
    assert automatic_reason({}, "multipart/report", "alice@example.org") == "delivery report"
    for sender in (
        "mailer-daemon@x.org",
        "postmaster@x.org",
        "noreply@x.org",
        "no-reply@x.org",
        "do-not-reply@x.org",
    ):
        assert automatic_reason({}, "text/plain", sender), sender


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=?UTF-8?B?0J/RgNC40LLQtdGC?=", "Привет"),
        ("=?koi8-r?Q?=F0=D2=C9=D7=C5=D4?= world", "Привет world"),
        ("=?windows-1251?B?z/Do4uXy?=\r\n =?windows-1251?B?IOzo8A==?=", "Привет мир"),
        ("Plain subject", "Plain subject"),
        ("=?x-unknown?B?SGVsbG8=?=", "Hello"),
        ("=?utf-8?Q?broken", "=?utf-8?Q?broken"),
        ("Ð\x9fÑ\x80Ð¸Ð²ÐµÑ\x82", "Привет"),  # raw UTF-8 bytes seen as latin-1
    ],
)
def test_header_decoding(value, expected):
    assert decode_header_value(value) == expected


def test_charsets_declared_wrong_or_missing_are_read_anyway():
    text = "Счёт на оплату за ноябрь, срочно"
    assert decode_bytes(text.encode("cp1251"), "windows-1251") == (text, None)
    assert decode_bytes(text.encode("koi8-r"), "koi8-r") == (text, None)
    assert decode_bytes(text.encode("cp866"), "cp866") == (text, None)
    guessed, problem = decode_bytes(text.encode("cp1251"), None)
    assert guessed == text and "without a charset" in problem
    wrong, problem = decode_bytes(text.encode("cp1251"), "utf-8")
    assert wrong == text and "does not fit" in problem
    assert decode_bytes(b"caf\xe9", "iso-8859-1") == ("café", None)


def test_html_becomes_readable_text_and_safe_markup():
    markup = (
        "<html><head><style>p{color:red}</style><title>t</title></head><body><p>Hello&nbsp;there</p>"
        "<ul><li>one</li><li>two</li></ul><script>alert(1)</script>"
        '<a href="javascript:alert(2)" onclick="x()">click</a><img src="https://tracker/x.gif" onerror="y()"></body></html>'
    )
    text = html_to_text(markup)
    safe = sanitize_html(markup)
    assert text == "Hello there\n\n- one\n\n- two\n\nclick"
    assert "script" not in safe and "alert" not in safe and "onclick" not in safe and "onerror" not in safe
    assert "javascript:" not in safe and "color:red" not in safe and "Hello" in safe


@pytest.mark.parametrize(
    ("text", "new"),
    [
        ("Thanks!\n\nOn Mon, Nov 16, 2026 at 10:00 AM Support <s@x> wrote:\n> old", "Thanks!"),
        ("Спасибо!\n\n16 нояб. 2026 г., в 10:00, Поддержка <s@x> написал(а):\n> старое", "Спасибо!"),
        ("Fixed, thanks.\n-----Original Message-----\nFrom: Support", "Fixed, thanks."),
        ("Ok\n> quoted\n> more", "Ok"),
        ("Best\n-- \nJohn Smith\nCEO", "Best"),
        ("Вижу\n\nОтправлено с iPhone", "Вижу"),
        ("> only a quote", "> only a quote"),
    ],
)
def test_quoted_history_and_signatures_are_split_off(text, new):
    assert split_reply(text)[0] == new


def test_a_message_gmail_returns_without_a_payload_still_lands(session, sync, mailbox):
    from server.gmail.sync import Filer

    parsed = parse_gmail_message(
        {"id": "abc", "threadId": "abc", "snippet": "Hello &amp; bye", "internalDate": "1795000000000"}
    )
    Filer(session, mailbox).file_all([parsed])
    session.commit()

    message = session.scalar(select(Message))
    ticket = session.get(Ticket, message.ticket_id)
    kinds = [e.kind for e in session.scalars(select(Event))]
    assert message.text == "Hello & bye" and {p["kind"] for p in message.parse_problems} == {"no_payload"}
    assert ticket.subject == "(no subject)" and "message_unparsed" in kinds


@pytest.mark.parametrize(
    "payload",
    [
        {"payload": "not a dict"},
        {"payload": {"mimeType": "text/plain", "headers": "nope", "body": {"data": "%%%"}}},
        {"payload": {"mimeType": "multipart/mixed", "parts": [None, 1, {"parts": "x"}]}},
        {"payload": {"headers": [{"name": "From", "value": None}], "body": None}},
        {"internalDate": "yesterday", "labelIds": None, "payload": {}},
    ],
)
def test_nonsense_json_from_gmail_never_raises(payload):
    parsed = parse_gmail_message({"id": "x", "threadId": "x", **payload})
    assert parsed.gmail_id == "x"


MIME_PIECES = st.sampled_from(
    [
        b'Content-Type: multipart/mixed; boundary="zz"\r\n',
        b"Content-Type: multipart/alternative; boundary=\r\n",
        b"Content-Type: text/plain; charset=x-unknown-charset\r\n",
        b"Content-Type: text/html; charset=koi8-r\r\n",
        b"Content-Transfer-Encoding: base64\r\n",
        b"Content-Transfer-Encoding: quoted-printable\r\n",
        b"Content-Disposition: attachment; filename*=utf-8''%D0%BF%D1%80\r\n",
        b"Subject: =?utf-8?B?0J/RgNC40LLQtdGC?= =?koi8-r?Q?=F0=D2?=\r\n",
        b'From: "Broken <quote@example.org>\r\n',
        b"Message-ID: <<<>>>\r\n",
        b"In-Reply-To: <a@b>\r\nReferences: <a@b> <c@d\r\n",
        b"Date: Mon, 99 Foo 2026\r\n",
        b"\r\n",
        b"--zz\r\n",
        b"--zz--\r\n",
        b"<p onclick=x()>hi<script>bad()</script>\r\n",
        "Привет, мир\r\n".encode("cp1251"),
        "Привет\r\n".encode("koi8-r"),
        b"\xff\xfe\x00\x01\r\n",
        b"SGVsbG8gd29ybGQ=\r\n",
    ]
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(messages=st.lists(st.lists(MIME_PIECES, min_size=1, max_size=20), min_size=1, max_size=4))
def test_mangled_mime_always_lands_and_never_raises(session, gmail, sync, messages):
    before = len(session.scalars(select(Message.id)).all())
    for pieces in messages:
        gmail.sandbox.deliver(
            MAILBOX, b"From: someone@example.org\r\nTo: support@example.com\r\n" + b"".join(pieces)
        )
    result = sync()
    assert result.messages_filed == len(messages)
    assert len(session.scalars(select(Message.id)).all()) == before + len(messages)
    for message in session.scalars(select(Message)):
        assert message.html is None or "<script" not in message.html.lower()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(min_size=1, max_size=2000))
def test_random_bytes_always_land(session, gmail, sync, raw):
    if not raw.strip():
        raw = b"x" + raw
    gmail.sandbox.deliver(MAILBOX, raw)
    before = session.scalar(select(func.count()).select_from(Message))
    result = sync()
    assert result.messages_filed == 1
    assert session.scalar(select(func.count()).select_from(Message)) == before + 1


def test_make_email_helper_round_trips(session, sync, deliver):
    deliver(make_email("Кириллица в теме", "Текст"))
    sync()
    assert session.scalar(select(Message.subject)) == "Кириллица в теме"


def test_nul_characters_never_reach_the_database(session, gmail, sync):
    raw = (
        b"From: nul\x00@example.org\r\nTo: support@example.com\r\nSubject: zero \x00 byte\r\n"
        b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\nContent-Type: multipart/mixed; boundary="zz"\r\n'
        b"\r\n\xff\xfe\x00\x01 text\r\n"
    )
    gmail.sandbox.deliver(MAILBOX, raw)
    assert sync().messages_filed == 1
    message = session.scalar(select(Message))
    assert "\x00" not in message.text + message.subject + (message.html or "") + message.from_email
