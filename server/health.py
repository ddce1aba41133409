"""``/``: what is running; ``/healthz``: 200 when the database answers, 503 when not (for load balancers)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, render_template, request

from server.db import database_is_reachable
from server.errors import error_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response | tuple[Response, int]:
    if not database_is_reachable():
        return error_response(503, "database_unavailable", "the database does not answer")
    return jsonify({"status": "ok"})


_TEXT = {
    "en": {
        "tagline": "A helpdesk that lives inside Gmail.",
        "running": "The Postdesk backend is running.",
        "health": "database check",
        "next": "The settings page and reports are on their way.",
        "previewer": "the add-on's cards, clicked through as an agent (demo)",
    },
    "ru": {
        "tagline": "Служба поддержки внутри Gmail.",
        "running": "Сервер Postdesk работает.",
        "health": "проверка базы данных",
        "next": "Страница настроек и отчёты скоро появятся.",
        "previewer": "карточки дополнения глазами агента (демо)",
    },
}


@bp.get("/")
def index() -> str:
    lang = request.accept_languages.best_match(list(_TEXT), default="en") or "en"
    previewer = "addon_preview.page" in current_app.view_functions
    return render_template("index.html", lang=lang, text=_TEXT[lang], previewer=previewer)
