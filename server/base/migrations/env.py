"""Alembic environment: uses the connection handed over by ``upgrade_to_head`` (or the URL)."""

from __future__ import annotations

from typing import Literal

from alembic import context
from sqlalchemy import create_engine

# Their tables are part of Base.metadata.
import server.base.help_tables
import server.base.knowledge_tables  # noqa: F401
from server.base.columns import UTCDateTime
from server.base.migrations import ours
from server.base.models import Base

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: object, _context: object) -> str | Literal[False]:
    # Migrations spell plain SQLAlchemy types, so they never import the models' own.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=render_item,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=ours,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no sqlalchemy.url: run migrations through `postdesk init-db`")
    engine = create_engine(url)
    with engine.begin() as conn:
        run_migrations(conn)
