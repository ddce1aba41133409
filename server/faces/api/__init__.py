"""``/api/v1``: the REST API, a face over the same services as the add-on and the settings pages.

:mod:`server.faces.api.base` holds the blueprint, the OpenAPI document and the token check; ``tickets``,
``merging``, ``directory`` and ``hooks`` add their views to it. docs/api.md is the reader's guide.
"""

from __future__ import annotations

from flask import Flask

from server.faces.api import articles, directory, following, hooks, merging, tickets  # noqa: F401  (views join the blueprint)
from server.faces.api.base import bp


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
