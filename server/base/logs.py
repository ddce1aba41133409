"""Where the log goes, when the operator asks: ``LOG_FORMAT=json`` (one JSON object a line, for a log
collector; python-json-logger) or ``text``, at ``LOG_LEVEL``, on stderr. Unset, Postdesk leaves
logging as the host process set it (gunicorn's, the CLI's)."""

from __future__ import annotations

import logging

from flask import Flask
from pythonjsonlogger.json import JsonFormatter

FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
_HANDLER_NAME = "postdesk"


def init_app(app: Flask) -> None:
    kind = str(app.config.get("LOG_FORMAT") or "").strip().lower()
    if not kind:
        return
    if kind not in ("json", "text"):
        raise ValueError(f"POSTDESK_LOG_FORMAT must be json or text, not {kind!r}")
    root = logging.getLogger()
    if any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        return  # once per process, however many apps it builds
    handler = logging.StreamHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter(FIELDS) if kind == "json" else logging.Formatter(FIELDS))
    root.addHandler(handler)
    root.setLevel(str(app.config.get("LOG_LEVEL") or "INFO").upper())
