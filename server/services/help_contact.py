"""The help centre's contact form: a question becomes a ticket only once its sender has confirmed
their address, with a signed link mailed to it from the shared mailbox.

Abuse-safe by construction: an address gets at most one confirmation mail an hour (a form filled
with someone else's address mails them once, not a thousand times); at most
:data:`REQUESTS_PER_ADDRESS` questions an hour are kept per address and :data:`REQUESTS_PER_NETWORK`
per network address (kept only as a keyed hash); a link is signed, names its request, and expires
after :data:`LINK_DAYS`. Confirming makes the tickets of every question that address sent in that
time, each as a new email would (customer, subject, text, the new-ticket rules and their
acknowledgement, which starts the Gmail thread from the shared mailbox), with the articles the
visitor saw recorded on it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from rules import Trigger
from server.base.help_tables import Article, HelpRequest
from server.base.models import Customer, Direction, Mailbox, Message, OutboxKind, Ticket
from server.gmail.send import enqueue
from server.gmail.sync import TicketEvent
from server.services import help_counts, tickets

SALT = "postdesk-help-contact-v1"
LINK_DAYS = 1
REQUESTS_PER_ADDRESS, REQUESTS_PER_NETWORK = 3, 10
MAX_SUBJECT, MAX_TEXT, MAX_NAME = 200, 10_000, 200
_EMAIL = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: The confirmation mail, in the visitor's language.
MAIL = {
    "en": ("Confirm your question to {name}",
           "Hello,\n\nsomeone (we hope you) asked {name} a question from its help centre with this address:\n\n"
           "  {subject}\n\nTo send it, open this link within a day and press the button:\n{link}\n\n"
           "If it was not you, do nothing: without your confirmation nothing is sent and we will not write again."),
    "ru": ("Подтвердите ваш вопрос в {name}",
           "Здравствуйте!\n\nКто-то (надеемся, вы) задал вопрос в справочном центре {name}, указав этот адрес:\n\n"
           "  {subject}\n\nЧтобы отправить его, откройте ссылку в течение суток и нажмите кнопку:\n{link}\n\n"
           "Если это были не вы, ничего не делайте: без подтверждения ничего не отправится, и мы больше не напишем."),
}  # fmt: skip


class ContactRefused(ValueError):
    """The form as sent cannot be taken: ``problems`` (field → text) says why."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


class LinkRefused(ValueError):
    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.expired = expired


@dataclass(frozen=True)
class Question:
    email: str
    name: str
    subject: str
    text: str
    language: str
    articles: list[int]
    read_first: bool


def check(question: Question) -> dict[str, str]:
    problems = {}
    if not _EMAIL.match(question.email) or len(question.email) > 320:
        problems["email"] = "an email address"
    if (
        not question.subject.strip()
        or len(question.subject) > MAX_SUBJECT
        or _CONTROL.search(question.subject)
    ):
        problems["subject"] = f"1 to {MAX_SUBJECT} characters"
    if not question.text.strip() or len(question.text) > MAX_TEXT or _CONTROL.search(question.text):
        problems["text"] = f"1 to {MAX_TEXT:,} characters"
    if len(question.name) > MAX_NAME or _CONTROL.search(question.name):
        problems["name"] = f"at most {MAX_NAME} characters"
    return problems


def network_key(address: str, secret: str) -> str:
    """The visitor's network address as a keyed hash: enough to count, nothing to read back."""
    return hmac.new(secret.encode(), address.encode(), hashlib.sha256).hexdigest()


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SALT)


def link_token(request: HelpRequest, secret: str) -> str:
    return _serializer(secret).dumps({"r": request.id, "e": request.email})


def ask(session: Session, mailbox: Mailbox, question: Question, *, network: str, now: datetime,
        secret: str, link: str) -> HelpRequest | None:  # fmt: skip
    """Keep the question and mail the confirmation link (``link`` with ``{token}``), within the limits;
    None when a limit kept it out (the visitor is told the same either way). The caller commits."""
    problems = check(question)
    if problems:
        raise ContactRefused(problems)
    email = question.email.strip().lower()
    hour = now - timedelta(hours=1)
    recent = select(func.count()).select_from(HelpRequest).where(HelpRequest.mailbox_id == mailbox.id,
                                                                 HelpRequest.created_at >= hour)  # fmt: skip
    if (session.scalar(recent.where(HelpRequest.email == email)) or 0) >= REQUESTS_PER_ADDRESS:
        return None
    if (session.scalar(recent.where(HelpRequest.ip_key == network)) or 0) >= REQUESTS_PER_NETWORK:
        return None
    request = HelpRequest(mailbox_id=mailbox.id, email=email, name=question.name.strip(),
                          subject=question.subject.strip(), text=question.text.strip(), language=question.language,
                          articles=_known_articles(session, mailbox, question.articles), read_first=question.read_first,
                          ip_key=network, created_at=now)  # fmt: skip
    session.add(request)
    session.flush()
    mailed = session.scalar(
        select(HelpRequest.id).where(HelpRequest.mailbox_id == mailbox.id, HelpRequest.email == email,
                                     HelpRequest.mailed_at >= hour).limit(1)
    )  # fmt: skip
    if mailed is None:  # at most one mail an hour to an address that may not have asked
        subject, text = MAIL.get(question.language, MAIL["en"])
        words = {"name": mailbox.display_name or mailbox.address, "subject": request.subject,
                 "link": link.format(token=link_token(request, secret))}  # fmt: skip
        enqueue(session, mailbox=mailbox, kind=OutboxKind.NOTIFICATION, key=f"help-confirm:{request.id}", to=[email],
                subject=subject.format(**words), text=text.format(**words), headers={"internal": True})  # fmt: skip
        request.mailed_at = now
    return request


def _known_articles(session: Session, mailbox: Mailbox, ids: list[int]) -> list[int]:
    wanted = sorted({i for i in ids if 0 < i < 2**31})[:20]
    if not wanted:
        return []
    found = select(Article.id).where(Article.mailbox_id == mailbox.id, Article.id.in_(wanted))
    return sorted(session.scalars(found))


def read_link(session: Session, mailbox: Mailbox, token: str, secret: str) -> HelpRequest:
    try:
        claim = _serializer(secret).loads(token, max_age=LINK_DAYS * 86_400)
    except SignatureExpired as exc:
        raise LinkRefused("the link has expired", expired=True) from exc
    except BadSignature as exc:
        raise LinkRefused("not a link we sent") from exc
    request = (
        session.get(HelpRequest, claim.get("r"))
        if isinstance(claim, dict) and isinstance(claim.get("r"), int)
        else None
    )
    if request is None or request.mailbox_id != mailbox.id or request.email != claim.get("e"):
        raise LinkRefused("not a link we sent")
    return request


def confirm(session: Session, mailbox: Mailbox, request: HelpRequest, *, now: datetime) -> list[Ticket]:
    """The confirmed address's waiting questions (of the last day) become tickets; the caller commits.
    Confirming again makes nothing more."""
    from server.services.automation import parsed_from_row, run_rules_on_events

    waiting = list(session.scalars(
        select(HelpRequest).where(HelpRequest.mailbox_id == mailbox.id, HelpRequest.email == request.email,
                                  HelpRequest.confirmed_at.is_(None),
                                  HelpRequest.created_at >= now - timedelta(days=LINK_DAYS))
        .order_by(HelpRequest.id)
    ))  # fmt: skip
    made: list[Ticket] = []
    events: list[TicketEvent] = []
    customer = session.scalar(
        select(Customer).where(Customer.mailbox_id == mailbox.id, Customer.email == request.email)
    )
    for found in waiting:
        if customer is None:
            customer = Customer(mailbox_id=mailbox.id, email=found.email, name=found.name)
            session.add(customer)
        ticket = tickets.open_ticket(session, mailbox.id, subject=found.subject, customer=customer,
                                     gmail_thread_id=None, created_at=now)  # fmt: skip
        domain = mailbox.address.rsplit("@", 1)[-1]
        message = Message(mailbox_id=mailbox.id, ticket=ticket, gmail_id=f"help-form-{found.id}", gmail_thread_id="",
                          rfc822_message_id=make_msgid(idstring=f"help-{found.id}", domain=domain),
                          direction=Direction.INBOUND.value, from_email=found.email, from_name=found.name,
                          to=mailbox.address, subject=found.subject, sent_at=now, text=found.text,
                          labels=["HELP_FORM"])  # fmt: skip
        session.add(message)
        tickets.record_event(session, ticket, "help_form", at=now,
                             after={"articles": found.articles, "read_first": found.read_first})  # fmt: skip
        found.confirmed_at = now
        help_counts.contacted(session, mailbox.id, read_first=found.read_first, at=now)
        session.flush()
        found.ticket_id = ticket.id
        events.append(
            TicketEvent(Trigger.TICKET_CREATED, ticket.id, parsed_from_row(message), now, row=message)
        )
        made.append(ticket)
    if events:
        run_rules_on_events(session, mailbox, events)
    return made
