"""Alembic migrations, run from Python (no alembic.ini): ``upgrade_to_head(engine)``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

HERE = Path(__file__).parent


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


@cache
def head_revisions() -> frozenset[str]:
    """The newest migration(s), read once per process (alembic imports every migration to know)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def database_revisions(connection: Connection) -> frozenset[str]:
    """The migrations the database is at (none for an empty one)."""
    return frozenset(MigrationContext.configure(connection).get_current_heads())


def upgrade_to_head(engine: Engine) -> None:
    """Migrate to the newest schema; a database already there costs one query (``init-db``, the demo and
    a restore ask; another command whose database is elsewhere says to run ``postdesk init-db``)."""
    with engine.begin() as connection:
        if database_revisions(connection) == head_revisions():
            return
        config = alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


#: What migrations make outside the models: the task queue's tables (0022), the full-text index of
#: knowledge entries (0025: FTS5 tables on SQLite, a generated tsvector and its GIN index on PostgreSQL).
NOT_MODELS = {
    "table": ("procrastinate_", "knowledge_fts"),
    "column": ("document",),
    "index": ("ix_knowledge_entries_document",),
}


def ours(name: str | None, type_: str, _parent: object) -> bool:
    """Only what the models describe is compared with them."""
    return not (name or "").startswith(NOT_MODELS.get(type_, ()))
