"""Alembic migrations, run from Python (no alembic.ini): ``upgrade_to_head(engine)``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

HERE = Path(__file__).parent


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def upgrade_to_head(engine: Engine) -> None:
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def ours(name: str | None, type_: str, _parent: object) -> bool:
    """The task queue's tables (procrastinate's, migration 0022) are not the models': never compared."""
    return not (type_ == "table" and (name or "").startswith("procrastinate_"))
