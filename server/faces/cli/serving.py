"""Starting the processes: the web app (gunicorn or Werkzeug), the Gmail sandbox, and the demo."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from server.base.models import Agent, Mailbox, Template
from server.faces.web.local import is_loopback
from server.gmail.sandbox import Sandbox, SandboxServer
from server.gmail.sandbox.seed import DEMO_MAILBOX, DEMO_MAILBOX_NAME, DEMO_TEAM, seed_demo_mailbox

log = logging.getLogger(__name__)
#: How often the demo process syncs the sandbox mailbox.
DEMO_POLL_SECONDS = 10
DEMO_MANAGER = ("lena@example.com", "Lena Smirnova", "ru")
#: The account the demo's sandbox signs its push notifications as.
DEMO_PUSH_ACCOUNT = "gmail-push@postdesk-demo.iam.gserviceaccount.com"


def serve_web(host: str, port: int, workers: int) -> None:
    """Serve ``create_app()`` with gunicorn (each worker builds its own app), else with Werkzeug."""
    from server import create_app

    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:  # Windows, or a minimal install
        click.echo(f"Postdesk web on http://{host}:{port}/ (Werkzeug; install gunicorn for production)")
        make_server(host, port, create_app(), threaded=True).serve_forever()
        return

    class PostdeskGunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("accesslog", "-")

        def load(self) -> Flask:
            return create_app()

    PostdeskGunicorn().run()


def stop_on_signals() -> None:
    """Ctrl+C and SIGTERM (systemd, a supervisor, a test's stop) both end a foreground server as a
    KeyboardInterrupt, even in a process started with SIGINT ignored (a shell's background job, a
    pytest-xdist worker's child): without this such a sandbox or demo could only be killed."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)


def start_sandbox(
    host: str,
    port: int,
    *,
    seed: str = "empty",
    state_file: str | None = None,
    enforce_rate_limit: bool = True,
) -> SandboxServer:
    """A sandbox server (not yet serving); ``seed="demo"`` fills an empty one with the demo mailbox."""
    sandbox = Sandbox(state_file)
    if seed == "demo" and not sandbox.users:
        seed_demo_mailbox(sandbox)
    return SandboxServer(host, port, sandbox, enforce_rate_limit=enforce_rate_limit)


def solve_answered(session: Session, mailbox_id: int) -> None:
    """The seeded threads the team answered last are solved, as a team would have left them: they are
    the demo's knowledge index (similar solved tickets on the card)."""
    from server.base.models import Message, Ticket, TicketStatus
    from server.services.tickets import set_status

    for ticket in session.scalars(select(Ticket).where(Ticket.mailbox_id == mailbox_id)):
        last = session.scalars(
            select(Message.direction)
            .where(Message.ticket_id == ticket.id, Message.is_auto.is_(False))
            .order_by(Message.sent_at.desc(), Message.id.desc())
            .limit(1)
        ).first()
        if last == "outbound":
            set_status(session, ticket, TicketStatus.SOLVED, at=datetime.now(UTC), reason="demo")
    session.commit()


#: The demo's FAQ answer (server.services.knowledge.faq): new mail asking to export data gets it in the
#: acknowledgement, with a "this solved it" link.
DEMO_FAQ = {
    "en": ("Hello{% if customer.name %} {{ customer.name }}{% endif %},\n\nopen Settings → Data → Export and "
           "choose CSV; the file arrives by email within a few minutes.\n",
           ("How do I export my data to CSV?", "Where can I download all my contacts?", "Export to Excel")),
    "ru": ("Здравствуйте{% if customer.name %}, {{ customer.name }}{% endif %}!\n\nОткройте Настройки → Данные → "
           "Экспорт и выберите CSV; файл придёт на почту за несколько минут.\n",
           ("Как выгрузить данные в CSV?", "Где скачать все контакты?", "Экспорт в Excel")),
}  # fmt: skip


def add_demo_faq(session: Session, mailbox: Mailbox) -> None:
    from server.services import template_sets

    for locale, (text, questions) in DEMO_FAQ.items():
        draft = template_sets.Draft("{{ ticket.subject }} [#{{ ticket.number }}]", text, None, questions)
        template_sets.save(session, mailbox, "Export to CSV", locale, draft, commit=False)
    session.commit()


#: The demo's public help centre: /help/support/ with the FAQ answer as an article in both languages.
DEMO_HELP_SLUG = "support"
DEMO_HELP_CATEGORY = {"en": "Your data", "ru": "Ваши данные"}


def add_demo_help_centre(session: Session, mailbox: Mailbox, author: Agent) -> None:
    """The help centre on, its articles made from the demo's FAQ answers in one click each, as an admin
    would (the acknowledgement's FAQ answer then links to its article), published as translations."""
    from server.services import articles

    mailbox.settings = {**(mailbox.settings or {}),
                        "help_centre": {"enabled": True, "slug": DEMO_HELP_SLUG, "contact_form": True}}  # fmt: skip
    at = datetime.now(UTC)
    templates = session.scalars(select(Template).where(Template.mailbox_id == mailbox.id,
                                                       Template.name == "Export to CSV")).all()  # fmt: skip
    original: int | None = None
    for template in sorted(templates, key=lambda t: t.locale != "en"):  # English first: the original
        article = articles.from_template(session, mailbox, template, author=author, at=at)
        body = article.body.split("\n\n", 1)[-1].strip()  # the answer without the mail's greeting
        body = body[:1].upper() + body[1:]
        draft = articles.Draft(title=article.title, body=body, language=article.language,
                               category=DEMO_HELP_CATEGORY.get(article.language, ""), published=True,
                               translation_of=original)  # fmt: skip
        articles.save(session, mailbox, draft, author=author, article=article, at=at)
        session.flush()
        original = original or article.id
    session.commit()


def run_demo(instance_path: str, host: str, port: int, sandbox_port: int) -> None:
    """One process for trying Postdesk: seeded sandbox, a fresh demo database, the web app."""
    from server import create_app
    from server.base.db import get_session, init_db
    from server.base.models import Agent, AuthKind, Role
    from server.flows.clock.scheduler import run_worker
    from server.flows.sync_runner import sync_with_rules
    from server.gmail.client import client_for_mailbox
    from server.services import api_tokens
    from server.services.accounts import MailboxSpec, add_mailbox, ensure_agent
    from server.services.defaults import install_defaults
    from server.services.knowledge.readings import read_unread

    sandbox = start_sandbox(host, sandbox_port, seed="demo").start()
    database = Path(instance_path) / "demo.sqlite3"
    for suffix in ("", "-wal", "-shm"):  # the sandbox is new each run, so is the demo data
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    app = create_app({"DATABASE_URL": f"sqlite:///{database}", "DEMO": True})
    with app.app_context():
        init_db()
        session = get_session()
        mailbox = add_mailbox(
            session, MailboxSpec(DEMO_MAILBOX, AuthKind.SANDBOX, sandbox.url, None, DEMO_MAILBOX_NAME)
        )
        for index, (email, name, locale) in enumerate(DEMO_TEAM):
            role = Role.ADMIN if index == 0 else Role.AGENT
            ensure_agent(session, email, name, role=role, locale=locale, mailbox=mailbox)
        # A team lead who reads the settings and (later) the reports, and works no tickets.
        ensure_agent(session, DEMO_MANAGER[0], DEMO_MANAGER[1], role=Role.MANAGER, locale=DEMO_MANAGER[2])
        install_defaults(session, mailbox)
        add_demo_faq(session, mailbox)
        # The demo shows Gmail as the queue: ticket state in labels (docs/gmail-labels.md).
        mailbox.settings = {**(mailbox.settings or {}), "gmail_labels": {"enabled": True}}
        session.commit()
        # A token for the REST API, so docs/api.md's curl examples run as they are (a fresh one each run).
        admin = session.scalar(select(Agent).where(Agent.email == DEMO_TEAM[0][0]))
        assert admin is not None
        add_demo_help_centre(session, mailbox, admin)
        _token, api_secret = api_tokens.create(
            session, owner=admin, name="make demo", scopes=[scope.value for scope in api_tokens.Scope],
            expires_at=None, by=admin, now=datetime.now(UTC),
        )  # fmt: skip
        session.commit()
        with client_for_mailbox(mailbox) as client:
            synced = sync_with_rules(session, mailbox.id, client)
        # The first sync of a mailbox runs no rules on old mail: read its urgency and tone now, so the
        # seeded tickets show them on the card as new mail will.
        read_unread(session, mailbox_id=mailbox.id)
        solve_answered(session, mailbox.id)
        # The solved tickets placed by meaning now, not at the worker's first minute.
        from server.services.knowledge import meaning

        meaning.fill_all(session)
    web = make_server(host, port, app, threaded=True)
    base = f"http://{host}:{web.server_address[1]}"
    app.config["ADDON_SETTINGS_URL"] = base + "/settings/"
    # Links in the mail the worker sends (ratings) point at this demo, unless configured otherwise.
    app.config["PUBLIC_URL"] = app.config.get("PUBLIC_URL") or base
    # Gmail push as in production, with the sandbox in Pub/Sub's place: new mail becomes a ticket at
    # once (the poll stays as the fallback). Only the sandbox's own key is trusted, and only here.
    push_url = f"{base}/gmail/push"
    app.config.update(PUSH_TOPIC="projects/postdesk-demo/topics/gmail", PUSH_AUDIENCE=push_url,
                      PUSH_SERVICE_ACCOUNT=DEMO_PUSH_ACCOUNT, PUSH_CERTS_URL=f"{sandbox.url}sandbox/push/certs")  # fmt: skip
    sandbox.app.config["PUSH"].configure(
        {"url": push_url, "audience": push_url, "service_account": DEMO_PUSH_ACCOUNT}
    )
    # The worker runs in this process too: polls, rules, the Outbox, time rules and reminders.
    app.config["POLL_SECONDS"] = app.config["CLOCK_SECONDS"] = DEMO_POLL_SECONDS
    stop_worker = threading.Event()
    worker = threading.Thread(
        target=run_worker, args=(app,), kwargs={"stop": stop_worker, "holder": "demo"}, daemon=True
    )
    worker.start()
    urls: dict[str, Any] = {
        "web": f"{base}/",
        "settings": f"{base}/settings/ (sign in as any demo agent)"
        if is_loopback(host)
        else f"{base}/settings/",
        "reports": f"{base}/reports (sign in as {DEMO_MANAGER[0]}, the team lead)",
        "health": f"{base}/healthz",
        "help centre": f"{base}/help/{DEMO_HELP_SLUG}/ (public: articles, search, the contact form)",
        "api": f"{base}/api/v1/openapi.json (docs/api.md)",
        "api token": f"{api_secret} ({DEMO_TEAM[0][0]}, every scope)",
        "add-on preview": f"{base}/dev/addon" if is_loopback(host) else "off (only with a loopback --host)",
        "gmail sandbox": sandbox.url,
        "mailbox": f"{DEMO_MAILBOX} ({len(sandbox.sandbox.user(DEMO_MAILBOX).messages)} messages)",
        "tickets": f"{synced.tickets_opened} opened by the first sync",
        "database": str(database),
    }
    stop_on_signals()  # before the URLs: whoever reads them may stop the demo at once
    try:
        click.echo("Postdesk demo is running:")
        for name, value in urls.items():
            click.echo(f"  {name:<14} {value}")
        click.echo(
            f"See the tickets: POSTDESK_DATABASE_URL=sqlite:///{database} .venv/bin/postdesk tickets list"
        )
        click.echo(
            f"Try a new customer email: curl --data-binary @message.eml {sandbox.url}sandbox/users/{DEMO_MAILBOX}/messages"
            f" (a ticket at once by Gmail push, else within {DEMO_POLL_SECONDS}s; the acknowledgement appears in"
            " the sandbox's SENT)"
        )
        click.echo("Press Ctrl+C to stop.")
        web.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        web.server_close()
        stop_worker.set()
        worker.join(timeout=30)
        sandbox.stop()
