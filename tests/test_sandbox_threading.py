"""The sandbox threads mail as Gmail does when subjects are RFC 2047 encoded and folded: Gmail compares
the decoded, whitespace-normalised subject, so a reply whose subject is folded right after an encoded
word stays in its thread (the space between the encoded word and the plain text is kept), in every
charset Russian mail arrives in — and Postdesk's own answers to such mail stay in the thread too."""

from __future__ import annotations

import base64
from email.header import Header

import pytest
from helpers import MAILBOX
from sqlalchemy import select

from server.base.models import Message, Ticket

SUBJECT = "Проблема с доставкой заказа"


def encoded(text: str, charset: str, q: bool = False) -> str:
    data = text.encode(charset)
    if q:
        return f"=?{charset}?q?" + "".join(f"={b:02X}" for b in data) + "?="
    return f"=?{charset}?b?{base64.b64encode(data).decode()}?="


def raw_mail(subject_header: str, *, message_id: str, in_reply_to: str | None = None) -> bytes:
    lines = [
        "From: Ivan <ivan@customer.test>",
        f"To: {MAILBOX}",
        f"Subject: {subject_header}",
        f"Message-ID: {message_id}",
        "Date: Mon, 23 Nov 2026 10:00:00 +0300",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    if in_reply_to:
        lines += [f"In-Reply-To: {in_reply_to}", f"References: {in_reply_to}"]
    return ("\r\n".join(lines) + "\r\n\r\nЗдравствуйте\r\n").encode()


@pytest.mark.parametrize(("charset", "q"), [("utf-8", False), ("windows-1251", False), ("koi8-r", True)])
def test_a_reply_with_a_subject_folded_after_an_encoded_word_stays_in_its_thread(gmail, deliver, charset, q):
    first = deliver(raw_mail(f"{encoded(SUBJECT, charset, q)} (10006)", message_id="<q1@customer.test>"))
    folded = f"Re: {encoded(SUBJECT, charset, q)}\r\n (10006)"
    reply = deliver(raw_mail(folded, message_id="<q2@customer.test>", in_reply_to="<q1@customer.test>"))
    assert reply["threadId"] == first["threadId"]
    stored = gmail.sandbox.user(MAILBOX).messages[reply["id"]]
    assert stored.subject == f"Re: {SUBJECT} (10006)"


def test_adjacent_encoded_words_join_without_a_space_and_plain_folds_keep_one(gmail, deliver):
    halves = f"{encoded('Проблема с ', 'utf-8')}\r\n {encoded('доставкой заказа', 'utf-8')}"
    first = deliver(raw_mail(halves, message_id="<a1@customer.test>"))
    assert gmail.sandbox.user(MAILBOX).messages[first["id"]].subject == SUBJECT
    plain = deliver(raw_mail("Order\r\n delayed", message_id="<a2@customer.test>"))
    assert gmail.sandbox.user(MAILBOX).messages[plain["id"]].subject == "Order delayed"


def test_postdesk_answers_a_long_cyrillic_subject_in_the_customers_thread(helpdesk, deliver, session, gmail):
    helpdesk.connect(MAILBOX, agents=["anna@example.com"])
    subject = "Не работает оплата картой на сайте после обновления приложения (заказ 100234, срочно)"
    header = Header(subject, "utf-8").encode(maxlinelen=60)  # folded between encoded words, as MUAs do
    deliver(raw_mail(header, message_id="<long-1@customer.test>"))
    helpdesk.cycle()
    helpdesk.cycle()  # the acknowledgement goes out; the next sync files it
    ticket = session.scalar(select(Ticket))
    assert ticket.subject == subject
    threads = {
        m.gmail_thread_id for m in session.scalars(select(Message).where(Message.ticket_id == ticket.id))
    }
    sent = helpdesk.sent_by(MAILBOX)
    assert sent, "an acknowledgement was sent"
    assert {m.thread_id for m in sent} <= threads and len(threads) == 1
    for message in sent:
        assert message.subject == f"Re: {subject}"
