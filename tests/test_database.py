"""The schema: migrations build exactly the models, SQLite runs in WAL with foreign keys on,
times come back as aware UTC, and the value lists are enforced by the database itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from server.base.db import get_engine, init_db, make_engine
from server.base.migrations import alembic_config, ours
from server.base.models import Base, Mailbox, Ticket


def test_migrations_produce_exactly_the_models_schema(app):
    with app.app_context(), get_engine().connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": ours})
        differences = compare_metadata(context, Base.metadata)
        tables = set(inspect(connection).get_table_names())

    assert differences == []
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables


def test_init_db_twice_is_harmless(app, runner):
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert "database ready" in result.output
    with app.app_context():
        init_db()
        with get_engine().connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    assert version == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'nested' / 'postdesk.sqlite3'}")
    with engine.connect() as connection:
        journal = connection.execute(text("PRAGMA journal_mode")).scalar()
        foreign_keys = connection.execute(text("PRAGMA foreign_keys")).scalar()
    engine.dispose()
    assert (journal, foreign_keys) == ("wal", 1)


def _mailbox(session) -> Mailbox:
    mailbox = Mailbox(address="support@example.com", auth_kind="sandbox", api_endpoint="http://127.0.0.1:1/")
    session.add(mailbox)
    session.commit()
    return mailbox


def test_times_come_back_as_aware_utc(session):
    mailbox = _mailbox(session)
    moscow = timezone(timedelta(hours=3))
    ticket = Ticket(mailbox_id=mailbox.id, number=1, due_at=datetime(2026, 11, 23, 12, 0, tzinfo=moscow))
    session.add(ticket)
    session.commit()
    session.expire_all()

    stored = session.scalar(select(Ticket))

    assert stored.due_at == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert stored.due_at.tzinfo is not None and stored.created_at.tzinfo is not None


def test_naive_datetimes_are_refused(session):
    mailbox = _mailbox(session)
    session.add(Ticket(mailbox_id=mailbox.id, number=1, due_at=datetime(2026, 11, 23, 12, 0)))
    with pytest.raises(StatementError, match="naive datetime"):
        session.commit()
    session.rollback()


def test_the_database_refuses_unknown_statuses_and_duplicate_numbers(session):
    mailbox = _mailbox(session)
    session.add(Ticket(mailbox_id=mailbox.id, number=1, status="reopened"))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()

    session.add_all([Ticket(mailbox_id=mailbox.id, number=7), Ticket(mailbox_id=mailbox.id, number=7)])
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()


def test_foreign_keys_are_enforced(session):
    session.add(Ticket(mailbox_id=999, number=1))
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()


def test_upsert_lets_two_writers_of_the_same_row_both_succeed(app, session, helpdesk):
    """Two cards opened at once by one agent: the second view waits and updates, never collides."""
    import threading

    from sqlalchemy.orm import Session

    from server.base.db import upsert
    from server.base.models import Agent, TicketView

    box = helpdesk.connect("support@example.com", agents=["anna@example.com"])
    ticket = Ticket(mailbox_id=box.id, number=1, subject="s")
    session.add(ticket)
    session.commit()
    anna = session.scalar(select(Agent).where(Agent.email == "anna@example.com"))
    keys = {"ticket_id": ticket.id, "agent_id": anna.id}
    first, second = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    engine = get_engine(app)
    errors: list[BaseException] = []

    def later_writer() -> None:
        try:
            with Session(engine) as other:
                upsert(other, TicketView, keys, {"viewed_at": second})
                other.commit()
        except BaseException as exc:  # reported below
            errors.append(exc)

    with Session(engine) as one:
        upsert(one, TicketView, keys, {"viewed_at": first})  # holds the row (or SQLite's write lock)
        writer = threading.Thread(target=later_writer)
        writer.start()
        writer.join(timeout=0.5)  # it waits for us
        one.commit()
    writer.join(timeout=30)
    assert errors == [] and not writer.is_alive()
    rows = session.execute(select(TicketView.viewed_at)).scalars().all()
    assert rows == [second]


def test_the_snooze_reminder_s_untouched_default_takes_the_new_wording(tmp_path):
    """Migration 0033: a stored "snooze ended" template still exactly the old default says until when
    (as a new mailbox's does); one the team edited stays as it is."""
    import importlib

    from alembic import command

    from server.services.defaults import REMINDER_TEMPLATES

    change = importlib.import_module("server.base.migrations.versions.0033_snooze_reminder_text")
    shipped = {
        locale: body for name, locale, _, body in REMINDER_TEMPLATES if name == "Reminder: snooze ended"
    }
    assert {locale: new for locale, _old, new in change.CHANGES} == shipped  # what a new mailbox gets
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    config = alembic_config(engine)
    insert = text(
        "INSERT INTO templates (name, locale, subject, body_text, faq_questions, created_at, updated_at)"
        " VALUES ('Reminder: snooze ended', :locale, 's', :body, '[]', :at, :at)"
    )
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0032")
        for locale, old, _new in change.CHANGES:
            body = old if locale == "en" else "our own words"  # the Russian one was edited by the team
            connection.execute(insert, {"locale": locale, "body": body, "at": datetime(2026, 12, 1)})
        command.upgrade(config, "head")
        found = dict(connection.execute(text("SELECT locale, body_text FROM templates")).all())
    assert found == {"en": shipped["en"], "ru": "our own words"}
