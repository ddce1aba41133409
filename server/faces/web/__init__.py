"""The browser shell every settings page lives in: sessions, sign-in, roles, CSRF, ru/en, headers.

``init_app`` binds it to the app: server-side sessions (:mod:`server.services.sessions`), CSRF on every
state-changing request to the pages (after the 401 for a caller without a session), Flask-Babel with
the person's language (else the browser's), Flask-Limiter for sign-in, and security headers on every
answer (a strict Content-Security-Policy: no inline script or style, no framing).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, Response, abort, current_app, has_request_context, render_template, request, session
from flask_babel import format_decimal, get_locale
from werkzeug.exceptions import HTTPException

from server.base.models import Locale
from server.faces.errors import http_error as json_error
from server.faces.web.access import current_agent, roles_of
from server.faces.web.extensions import babel, csrf, limiter
from server.services.sessions import DatabaseSessions

#: Blueprints whose pages are HTML, use the session and need CSRF tokens.
PAGE_BLUEPRINTS = frozenset({"web", "admin", "reports"})
CATALOGS = Path(__file__).resolve().parents[2] / "translations"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


#: Catalogs compiled in this process, by (.po path, its mtime): an app made again (each test makes
#: one) writes the same bytes without parsing the catalog again.
_COMPILED: dict[tuple[str, float], bytes] = {}


def compile_catalogs(target: Path) -> Path:
    """Compile the ``.po`` catalogs into ``target`` (when a catalog is newer than its ``.mo``)."""
    for po in CATALOGS.glob("*/LC_MESSAGES/*.po"):
        mo = target / po.relative_to(CATALOGS).with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        mo.parent.mkdir(parents=True, exist_ok=True)
        key = (str(po), po.stat().st_mtime)
        if key not in _COMPILED:
            with po.open("rb") as source:
                catalog = read_po(source)
            compiled = io.BytesIO()
            write_mo(compiled, catalog)
            _COMPILED[key] = compiled.getvalue()
        partial = mo.with_suffix(f".{os.getpid()}.tmp")  # processes starting together each write their own
        partial.write_bytes(_COMPILED[key])
        partial.replace(mo)
    return target


def select_locale() -> str:
    """The signed-in person's language; before sign-in the one chosen in the header, else the browser's."""
    if not has_request_context():  # a command: English, unless the caller forces a locale
        return Locale.EN.value
    agent = current_agent() if request and request.blueprint in PAGE_BLUEPRINTS else None
    if agent is not None:
        return agent.locale
    chosen = session.get("lang") if request else None
    if chosen in {loc.value for loc in Locale}:
        return str(chosen)
    return request.accept_languages.best_match([loc.value for loc in Locale]) or Locale.EN.value


def select_timezone() -> str | None:
    agent = current_agent() if request and request.blueprint in PAGE_BLUEPRINTS else None
    return agent.timezone if agent is not None else None


def _guard() -> None:
    """Before a page's view: 401 for a state-changing call without a session, then the CSRF check."""
    if request.blueprint not in PAGE_BLUEPRINTS or request.method in SAFE_METHODS:
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if view is not None and roles_of(view) is not None and current_agent() is None:
        abort(401)
    csrf.protect()


def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if current_app.config["SESSION_COOKIE_SECURE"]:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.blueprint in PAGE_BLUEPRINTS:
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def wants_page() -> bool:
    return request.blueprint in PAGE_BLUEPRINTS or request.path.startswith(("/settings", "/auth", "/reports"))


def error_page(exc: HTTPException) -> tuple[str, int]:
    status = exc.code or 500
    return render_template("web/error.html", status=status, description=exc.description), status


def init_app(app: Flask) -> None:
    secure = app.config["COOKIE_SECURE"]
    app.config["SESSION_COOKIE_SECURE"] = not app.config["DEMO"] if secure in (None, "") else bool(secure)
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_NAME"] = "postdesk_session"
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # checked by _guard, after the 401
    app.config["WTF_CSRF_TIME_LIMIT"] = None  # the token lives as long as the session
    app.config["RATELIMIT_ENABLED"] = app.config.get("RATELIMIT_ENABLED", True)
    app.session_interface = DatabaseSessions()
    catalogs = compile_catalogs(Path(app.instance_path) / "translations")
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(catalogs)
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)
    app.add_template_filter(format_decimal, "number")  # 15,000 / 15 000 as the reader's language writes it
    csrf.init_app(app)
    limiter.init_app(app)
    app.before_request(_guard)
    app.after_request(_headers)

    def http_error(exc: HTTPException) -> Any:
        return error_page(exc) if wants_page() else json_error(exc)

    app.register_error_handler(HTTPException, http_error)

    @app.context_processor
    def shell() -> dict[str, Any]:
        # Mail rendered by the worker has no request: no one is signed in there.
        page = has_request_context() and request.blueprint in PAGE_BLUEPRINTS
        return {"me": current_agent() if page else None, "lang": str(get_locale() or "en")}

    from server.faces.public.csat import bp as csat_pages
    from server.faces.public.faq import bp as faq_pages
    from server.faces.public.help import bp as help_pages
    from server.faces.reports import help as help_report  # noqa: F401  (its view joins the reports blueprint)
    from server.faces.reports.views import bp as report_pages
    from server.faces.web import home  # noqa: F401  (its view joins the web blueprint)
    from server.faces.web.auth import bp

    app.register_blueprint(bp)
    app.register_blueprint(csat_pages)
    app.register_blueprint(faq_pages)
    app.register_blueprint(help_pages)
    app.register_blueprint(report_pages)
