"""The demo mailbox: realistic customer mail for support@example.com, in English and Russian.

Threads cover what a real shared inbox gets: replies both ways, attachments (with Cyrillic file
names), HTML-only mail from Outlook and Apple Mail, windows-1251 / koi8-r / undeclared 8-bit text,
auto-replies, a mailing list and a bounce. Dates are relative to ``now`` so a 30-day sync sees them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.charset import BASE64, QP, Charset
from email.mime.application import MIMEApplication
from email.mime.base import MIMEBase
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr

from server.gmail.sandbox.store import Sandbox

DEMO_MAILBOX = "support@example.com"
DEMO_MAILBOX_NAME = "Example Support"
DEMO_TEAM = (("anna@example.com", "Anna Petrova", "ru"), ("mark@example.com", "Mark Chen", "en"))
_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d4944415478da63f8cfc0f01f0005"
    "0001ff5cc6b2a40000000049454e44ae426082"
)
_PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


@dataclass
class Mail:
    """One message of a demo thread."""

    sender: tuple[str, str]
    body: str
    html: str | None = None
    html_only: bool = False
    charset: str = "utf-8"
    encoding: str = "base64"  # or "qp" or "8bit-undeclared"
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    hours_later: float = 0.0


@dataclass
class Thread:
    subject: str
    mails: list[Mail]
    subject_charset: str = "utf-8"


def _support() -> tuple[str, str]:
    return ("Example Support", DEMO_MAILBOX)


def _text_part(text: str, subtype: str, charset: str, encoding: str) -> MIMEText:
    cs = Charset(charset)
    cs.body_encoding = QP if encoding == "qp" else BASE64
    part = MIMEText("", subtype, None)
    part.set_payload(text, cs)
    return part


def _build(
    thread: Thread, mail: Mail, index: int, when: datetime, refs: list[str], seq: int
) -> tuple[bytes, str]:
    if mail.encoding == "8bit-undeclared":
        body = mail.body.encode(mail.charset)
        head = [
            f"From: {formataddr(mail.sender)}",
            f"To: {DEMO_MAILBOX}",
            f"Subject: {thread.subject if index == 0 else 'Re: ' + thread.subject}",
            "MIME-Version: 1.0",
            "Content-Type: text/plain",
            "Content-Transfer-Encoding: 8bit",
        ]
        message_id = f"<demo-{seq}-{index}@{mail.sender[1].split('@')[1]}>"
        head += [f"Message-ID: {message_id}", f"Date: {format_datetime(when)}"]
        if refs:
            head += [f"In-Reply-To: {refs[-1]}", f"References: {' '.join(refs)}"]
        # Headers and body in raw 8-bit of an undeclared charset, as broken mailers send them.
        raw = ("\r\n".join(head) + "\r\n\r\n").encode(mail.charset)
        return raw + body.replace(b"\n", b"\r\n"), message_id

    if mail.html_only:
        root: MIMEBase = _text_part(mail.html or mail.body, "html", mail.charset, mail.encoding)
    elif mail.html:
        root = MIMEMultipart("alternative")
        root.attach(_text_part(mail.body, "plain", mail.charset, mail.encoding))
        root.attach(_text_part(mail.html, "html", mail.charset, mail.encoding))
    else:
        root = _text_part(mail.body, "plain", mail.charset, mail.encoding)
    if mail.attachments:
        outer = MIMEMultipart("mixed")
        outer.attach(root)
        for filename, mime, data in mail.attachments:
            maintype, subtype = mime.split("/")
            if maintype == "image":
                part: MIMEBase = MIMEImage(data, subtype)
            elif maintype == "text":
                part = MIMEText(data.decode("utf-8"), subtype, "utf-8")
            else:
                part = MIMEApplication(data, subtype)
            # RFC 2231 file names, so Cyrillic names survive every client.
            part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", filename))
            outer.attach(part)
        root = outer
    sender_name = (
        Charset(mail.charset).header_encode(mail.sender[0])
        if not mail.sender[0].isascii()
        else mail.sender[0]
    )
    root["From"] = formataddr((sender_name, mail.sender[1]))
    root["To"] = DEMO_MAILBOX if mail.sender[1] != DEMO_MAILBOX else formataddr(thread.mails[0].sender)
    subject = thread.subject if index == 0 else f"Re: {thread.subject}"
    root["Subject"] = (
        Charset(thread.subject_charset).header_encode(subject) if not subject.isascii() else subject
    )
    message_id = f"<demo-{seq}-{index}@{mail.sender[1].split('@')[1]}>"
    root["Message-ID"] = message_id
    root["Date"] = format_datetime(when)
    if refs:
        root["In-Reply-To"] = refs[-1]
        root["References"] = " ".join(refs)
    for name, value in mail.headers.items():
        root[name] = value
    return root.as_bytes(), message_id


def demo_threads() -> list[Thread]:
    """The seeded conversations, oldest first."""
    olga = ("Ольга Смирнова", "olga.smirnova@yandex.ru")
    pavel = ("Павел Кузнецов", "p.kuznetsov@mail.ru")
    irina = ("Ирина Волкова", "irina@stroymarket.ru")
    return [
        Thread("Can't log in after password reset", [
            Mail(("Jane Doe", "jane.doe@acme.io"), "Hi,\n\nI reset my password an hour ago and now the login page says "
                 "'invalid credentials'. I tried twice.\n\nThanks,\nJane"),
            Mail(_support(), "Hi Jane,\n\nSorry about that! We cleared the lockout on your account. Please try again.\n\n"
                 "Anna\n\n> I reset my password an hour ago", hours_later=2),
            Mail(("Jane Doe", "jane.doe@acme.io"), "It works now, thank you!\n\nOn Monday Anna wrote:\n> We cleared the lockout",
                 hours_later=3),
        ]),
        Thread("Invoice #4411 has the wrong VAT number", [
            Mail(("Tom Becker", "tom.becker@beckerlogistik.de"), "Hello,\n\nthe attached invoice shows our old VAT ID. "
                 "Could you reissue it with DE811234567?\n\nBest regards,\nTom Becker\n--\nBecker Logistik GmbH",
                 attachments=[("invoice-4411.pdf", "application/pdf", _PDF)]),
        ]),
        Thread("URGENT: production API returning 500 errors", [
            Mail(("Priya Raman", "priya@fintrack.app"), "", html_only=True,
                 html="<html><body><p><b>All our calls to /v2/payments fail with HTTP 500 since 09:12 UTC.</b></p>"
                 "<p>This is an outage for us, please escalate ASAP.</p><p>Priya<br>CTO, FinTrack</p></body></html>"),
        ]),
        Thread("Feature request: dark mode", [
            Mail(("Lucas Martin", "lucas.martin@gmail.com"), "Love the product! Any plans for a dark mode? My eyes would thank you."),
        ]),
        Thread("How do I export my data to CSV?", [
            Mail(("Emily Clarke", "emily.clarke@outlook.com"), "", html_only=True, html=(
                "<html xmlns:o=\"urn:schemas-microsoft-com:office:office\"><head><style>p.MsoNormal{margin:0cm;"
                "font-family:Calibri}</style></head><body lang=EN-GB><div class=WordSection1><p class=MsoNormal>"
                "Hello,<o:p></o:p></p><p class=MsoNormal>Where can I export all our contacts to a CSV file?<o:p></o:p>"
                "</p><p class=MsoNormal>Kind regards,<br>Emily<o:p></o:p></p></div></body></html>")),
            Mail(_support(), "Hi Emily,\n\nSettings -> Data -> Export, then choose CSV.\n\nMark", hours_later=5),
        ]),
        Thread("Refund for a duplicate charge", [
            Mail(("Carlos Vega", "carlos.vega@hotmail.com"), "I was charged twice for the March subscription (2 x $49). "
                 "Please refund one of them."),
            Mail(_support(), "Hi Carlos, the duplicate charge is refunded; it takes 5-10 business days to appear.",
                 hours_later=20),
            Mail(("Carlos Vega", "carlos.vega@hotmail.com"), "Still nothing on my card after two weeks. Can you check?",
                 hours_later=340),
        ]),
        Thread("Screenshot of the error on checkout", [
            Mail(("Mia Wong", "mia.wong@shoply.co"), "See the screenshot: the checkout button does nothing on Safari.",
                 html="<p>See the screenshot: the checkout button does nothing on <i>Safari</i>.</p>",
                 attachments=[("screenshot.png", "image/png", _PNG)]),
        ]),
        Thread("Out of Office: Re: your renewal", [
            Mail(("Robert King", "robert.king@kingandco.com"), "I am out of the office until Monday with limited access "
                 "to email.", headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"}),
        ]),
        Thread("Your weekly product digest", [
            Mail(("SaaS Weekly", "news@saasweekly.com"), "Top stories this week: ...",
                 html="<h1>SaaS Weekly</h1><p>Top stories this week</p>",
                 headers={"List-Id": "<weekly.saasweekly.com>", "List-Unsubscribe": "<mailto:unsub@saasweekly.com>",
                          "Precedence": "bulk"}),
        ]),
        Thread("Bug: Android app crashes when opening a ticket", [
            Mail(("Ahmed Hassan", "ahmed.hassan@protonmail.com"), "Pixel 8, Android 15, app version 4.2.1. It crashes every "
                 "time I open a ticket with an attachment.",
                 attachments=[("crash-log.txt", "text/plain", b"FATAL EXCEPTION: main\njava.lang.NullPointerException\n")]),
            Mail(_support(), "Thanks Ahmed, we reproduced it; a fix ships in 4.2.2 this week.", hours_later=26),
        ]),
        Thread("Question about pricing for 20 seats", [
            Mail(("Sophie Laurent", "sophie@laurent-design.fr"), "Bonjour! Do you offer a discount for 20 seats billed yearly?",
                 html="<div dir=\"ltr\">Bonjour! Do you offer a discount for <b>20 seats</b> billed yearly?</div>"),
        ]),
        Thread("Two-factor codes not arriving", [
            Mail(("Daniel Novak", "daniel.novak@seznam.cz"), "SMS codes for 2FA stopped arriving yesterday. Can I switch to an "
                 "authenticator app?"),
        ]),
        Thread("GDPR: please delete my personal data", [
            Mail(("Anonymous", "privacy.request@posteo.de"), "Under Art. 17 GDPR I request the erasure of all personal data "
                 "you hold about me (account privacy.request@posteo.de)."),
        ]),
        Thread("Webhook signature mismatch", [
            Mail(("Kenji Sato", "kenji@orbit.dev"), "Our HMAC check fails for every webhook since Friday. Payload attached.",
                 attachments=[("payload.json", "application/json", b'{"event":"ticket.created","id":42}')]),
        ]),
        Thread("Cancel my subscription", [
            Mail(("Laura Rossi", "laura.rossi@libero.it"), "Please cancel my subscription at the end of this month."),
            Mail(_support(), "Done, Laura. You keep access until the 31st.", hours_later=4),
            Mail(("Laura Rossi", "laura.rossi@libero.it"), "Thanks. Will I get a confirmation by email?", hours_later=6),
        ]),
        Thread("Apple Mail: attachment won't upload", [
            Mail(("Noah Fischer", "noah.fischer@icloud.com"), "Files over 10 MB fail to upload from Safari.\n\nSent from my iPhone",
                 html="<html><head><meta http-equiv=\"content-type\" content=\"text/html; charset=utf-8\"></head>"
                 "<body dir=\"auto\">Files over 10 MB fail to upload from Safari.<br><br><div>Sent from my iPhone</div>"
                 "</body></html>"),
        ]),
        Thread("Delivery Status Notification (Failure)", [
            Mail(("Mail Delivery Subsystem", "mailer-daemon@googlemail.com"),
                 "Address not found: your message wasn't delivered to old-client@defunct.example.",
                 headers={"Auto-Submitted": "auto-replied"}),
        ]),
        # --- Russian ----------------------------------------------------------------------------------
        Thread("Не работает вход в личный кабинет", [
            Mail(olga, "Здравствуйте!\n\nСо вчерашнего дня не могу войти в личный кабинет: пишет «неверный пароль», "
                 "хотя пароль правильный.\n\nС уважением,\nОльга"),
            Mail(_support(), "Ольга, добрый день!\n\nМы сбросили блокировку, попробуйте ещё раз.\n\nАнна", hours_later=3),
            Mail(olga, "Всё заработало, спасибо!", hours_later=5),
        ]),
        Thread("Счёт на оплату за ноябрь", [
            Mail(pavel, "Добрый день!\n\nПрошу выставить счёт на оплату за ноябрь на ООО «Вектор». Реквизиты во вложении.\n\n"
                 "Павел Кузнецов\nбухгалтерия", charset="windows-1251",
                 attachments=[("Реквизиты ООО Вектор.pdf", "application/pdf", _PDF)]),
        ], subject_charset="windows-1251"),
        Thread("Срочно! Сайт недоступен", [
            Mail(irina, "Сайт магазина не открывается уже 20 минут, клиенты не могут оформить заказ. Срочно помогите!",
                 charset="koi8-r"),
            Mail(_support(), "Ирина, проблема на стороне хостинга, уже чиним. Сообщим, как только всё заработает.",
                 hours_later=0.5),
        ], subject_charset="koi8-r"),
        Thread("Вопрос по тарифам", [
            Mail(("Дмитрий Орлов", "d.orlov@rambler.ru"), "", html_only=True, charset="windows-1251",
                 html="<html><body><p>Здравствуйте!</p><p>Чем отличается тариф <b>«Команда»</b> от <b>«Бизнес»</b>?"
                 "</p><p>Дмитрий</p></body></html>"),
        ], subject_charset="windows-1251"),
        Thread("Возврат средств за неиспользованный период", [
            Mail(("Анна Лебедева", "lebedeva.anna@gmail.com"), "Добрый день. Мы переходим на другой сервис, прошу вернуть "
                 "деньги за оставшиеся 4 месяца годовой подписки.", encoding="qp"),
        ]),
        Thread("Ошибка при выгрузке отчёта", [
            Mail(("Сергей Попов", "s.popov@uralsteel.ru"), "При выгрузке отчёта за квартал появляется ошибка 504. Лог во "
                 "вложении.", charset="koi8-r",
                 attachments=[("лог-ошибки.txt", "text/plain", b"504 Gateway Timeout\n/api/reports/q3\n")]),
            Mail(_support(), "Сергей, спасибо за лог. Ускорили выгрузку, попробуйте снова.", hours_later=30),
        ], subject_charset="koi8-r"),
        Thread("Как добавить сотрудника?", [
            Mail(("Елена Соколова", "elena@cvetochny.ru"), "Подскажите, где добавить нового сотрудника в аккаунт?"),
        ]),
        Thread("Не приходят уведомления", [
            Mail(("Николай Морозов", "morozov@tula-bank.ru"), "Уже неделю не приходят уведомления о новых заявках на почту.",
                 charset="windows-1251", encoding="8bit-undeclared"),
        ]),
        Thread("Проблема с интеграцией 1С", [
            Mail(("Виктор Зайцев", "zaitsev@1c-partner.ru"), "Обмен с 1С падает с ошибкой авторизации после обновления.",
                 attachments=[("exchange.log", "text/plain", b"ERROR 401 Unauthorized at 2026-11-02T10:15:00\n")]),
            Mail(_support(), "Виктор, обновите токен в настройках интеграции — старый отозван при обновлении.", hours_later=8),
            Mail(("Виктор Зайцев", "zaitsev@1c-partner.ru"), "Не помогло, ошибка та же.", hours_later=12),
        ]),
        Thread("Смена реквизитов компании", [
            Mail(("Татьяна Новикова", "novikova@alfa-trade.ru"), "Просим изменить реквизиты в договоре: новый ИНН 7701234567.",
                 charset="windows-1251"),
        ], subject_charset="windows-1251"),
        Thread("Не могу оплатить картой", [
            Mail(("Алексей Фёдоров", "fedorov.alex@yandex.ru"), "Оплата картой Мир не проходит, пишет «операция отклонена».",
                 html="<p>Оплата картой <b>Мир</b> не проходит, пишет «операция отклонена».</p>"),
        ]),
        Thread("Заявка на демонстрацию", [
            Mail(("Марина Козлова", "m.kozlova@logist-pro.ru"), "Хотим посмотреть демо для команды из 12 человек. Когда удобно?"),
        ]),
        Thread("Автоответ: Re: продление договора", [
            Mail(("Игорь Васильев", "vasiliev@promtech.ru"), "Я в отпуске до 1 декабря. По срочным вопросам пишите коллегам.",
                 headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"}),
        ]),
        Thread("Долгая загрузка страниц", [
            Mail(("Роман Белов", "belov@webstudio.ru"), "Страницы кабинета грузятся по 10-15 секунд, особенно раздел 'Отчёты'.",
                 charset="koi8-r", encoding="qp"),
        ], subject_charset="koi8-r"),
        Thread("Спасибо за быструю помощь", [
            Mail(("Ксения Егорова", "egorova.k@mail.ru"), "Хочу поблагодарить вашу поддержку — всё решили за 10 минут!"),
        ]),
        Thread("Re: [#12] Всё ещё ждём ответа", [
            Mail(("Андрей Михайлов", "mikhailov@stroy-invest.ru"), "Напоминаю о своей заявке #12, ответа пока нет."),
        ]),
        Thread("Bulk import fails with a 413 error", [
            Mail(("Olivia Brown", "olivia.brown@healthplus.org"), "Uploading our 40 MB contacts file fails with 'Request Entity "
                 "Too Large'. Is there a limit?"),
            Mail(_support(), "Hi Olivia, the limit is 25 MB per file; splitting the file in two works.", hours_later=3),
        ]),
    ]  # fmt: skip


def seed_demo_mailbox(sandbox: Sandbox, now: datetime | None = None, address: str = DEMO_MAILBOX) -> int:
    """Deliver the demo threads into ``address``; returns how many messages were delivered."""
    now = now or datetime.now(UTC)
    threads = demo_threads()
    delivered = 0
    for seq, thread in enumerate(threads):
        started = now - timedelta(hours=17 * (len(threads) - seq) + 1)
        refs: list[str] = []
        for index, mail in enumerate(thread.mails):
            when = min(started + timedelta(hours=mail.hours_later), now - timedelta(minutes=5))
            raw, message_id = _build(thread, mail, index, when, refs, seq)
            sandbox.deliver(address, raw, internal_date=int(when.timestamp() * 1000))
            refs.append(message_id)
            delivered += 1
    return delivered
