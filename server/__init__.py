"""Postdesk: a helpdesk inside Gmail. ``create_app`` builds the Flask backend."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

#: The largest id a route takes: SQL's ``integer`` (PostgreSQL refuses a larger one with an error).
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """``<int:…>`` in every route: a number past the database's integer names nothing.

    It is read as 0, an id no row has, so the view answers its own 404 (PostgreSQL would refuse the
    number with an error, a 500). Refusing it in the converter instead would make werkzeug answer a
    405 where another method of the same path exists."""

    def to_python(self, value: str) -> int:
        number = int(super().to_python(value))
        return number if number <= MAX_ID else 0


class Postdesk(Flask):
    """Flask, with each request done again when PostgreSQL undid its transaction for a concurrent one
    and nothing of it was committed (:func:`server.base.db.again_when_undone`): a deadlock with a
    worker's batch costs the caller a short wait, not an error."""

    def dispatch_request(self) -> Any:
        from server.base.db import again_when_undone

        return again_when_undone(super().dispatch_request)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then ``POSTDESK_*`` environment variables, then ``config``."""
    instance_path = (config or {}).get("INSTANCE_PATH") or os.environ.get("POSTDESK_INSTANCE_PATH") or None
    app = Postdesk(__name__, instance_path=instance_path, instance_relative_config=True)
    app.url_map.converters["int"] = IdConverter
    from server.base.config import Defaults, WebDefaults

    app.config.from_object(Defaults)
    app.config.from_object(WebDefaults)
    app.config.from_prefixed_env("POSTDESK")
    if config:
        app.config.update(config)

    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config["DATABASE_URL"]:
        app.config["DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / 'postdesk.sqlite3'}"
    if not app.config["SECRET_KEY"]:
        from server.base.crypto import instance_secret

        with app.app_context():
            app.config["SECRET_KEY"] = instance_secret("secret.key", lambda: secrets.token_urlsafe(48))
        app.extensions["postdesk.generated_secret_key"] = True

    from server.base import db, logs
    from server.faces import cli, errors, health, settings, web

    logs.init_app(app)

    db.init_app(app)
    errors.init_app(app)
    web.init_app(app)
    settings.init_app(app)
    app.register_blueprint(health.bp)
    from server.faces import addon, push

    app.register_blueprint(push.bp)
    from server.faces import metrics

    metrics.init_app(app)
    from server.faces.addon import preview

    app.register_blueprint(addon.bp)
    preview.init_app(app)
    from server.faces import api
    from server.services import webhooks
    from server.services.knowledge import index

    api.init_app(app)
    webhooks.install()
    index.install()
    cli.init_app(app)
    return app
