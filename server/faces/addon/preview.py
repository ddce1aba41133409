"""``/dev/addon``: the card previewer — the add-on clicked through in a browser, without Google.

Demo mode only (``DEMO``), and only for a browser on this machine talking to a server bound to
loopback: anything else gets 404, as if the pages did not exist. The page posts the same event
objects as the Apps Script shim to the same ``/addon/v1/*`` routes with a bearer ID token, shows the
JSON they answer and renders its cards as HTML. The tokens are signed by a demo key kept in the
instance folder (:class:`DemoIdentity`); they go through the ordinary token checks because, in demo
mode only, the certs URL is :data:`DEMO_CERTS_URL`, which :class:`DemoCerts` answers from memory.
Outside demo mode nothing knows that URL or that key.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import google.auth.transport
import jinja2
import nh3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request
from google.auth import crypt, jwt
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from server.base.config import Defaults
from server.base.crypto import instance_secret
from server.base.db import get_session
from server.base.models import Agent, Mailbox, Message, Ticket
from server.faces.addon.auth import StoredResponse, client_ids
from server.faces.errors import error_response
from server.faces.web.local import this_machine_only
from server.services.tickets.actions import CLOSED_STATUSES

bp = Blueprint("addon_preview", __name__, url_prefix="/dev/addon")
EXTENSION = "postdesk.demo_identity"
#: Stand-ins for Google's in demo mode: the audience of demo tokens and where their key is "published"
#: (``.invalid`` never resolves: :class:`DemoCerts` answers it without a network).
DEMO_CLIENT_ID = "postdesk-demo.apps.googleusercontent.com"
DEMO_CERTS_URL = "https://postdesk-demo.invalid/oauth2/v1/certs"
#: Demo tokens live as long as Google's.
TOKEN_SECONDS = 3600
#: Threads offered on the page (tickets first, the newest number first).
THREADS_SHOWN = 200
#: The little HTML card text understands (Google's "formatted text"); everything else is dropped.
CARD_TAGS = {"b", "i", "u", "s", "br", "font", "a"}
CARD_ATTRIBUTES = {"font": {"color"}, "a": {"href"}}

_TEXT = {
    "en": {
        "title": "Add-on card previewer",
        "intro": "The add-on as an agent sees it in Gmail: the same routes, the same JSON, demo tokens.",
        "agent": "Agent",
        "thread": "Email thread",
        "language": "Language",
        "zone": "Time zone",
        "open": "Open email",
        "homepage": "Homepage",
        "compose": "Compose",
        "back": "Back",
        "json": "JSON answer",
        "draft": "Inserted into the draft",
        "link": "Opens",
        "no_ticket": "no ticket",
        "closed": "solved",
    },
    "ru": {
        "title": "Просмотр карточек дополнения",
        "intro": "Дополнение так, как его видит агент в Gmail: те же адреса, тот же JSON, демо-токены.",
        "agent": "Агент",
        "thread": "Переписка",
        "language": "Язык",
        "zone": "Часовой пояс",
        "open": "Открыть письмо",
        "homepage": "Главная",
        "compose": "Новое письмо",
        "back": "Назад",
        "json": "Ответ в JSON",
        "draft": "Вставлено в черновик",
        "link": "Открывается",
        "no_ticket": "без заявки",
        "closed": "решена",
    },
}


class DemoIdentity:
    """The demo's signing key (kept in the instance folder, so every web process shares it), minting
    ID tokens for agents the way ``ScriptApp.getIdentityToken()`` gets them from Google."""

    KEY_ID = "postdesk-demo"

    def __init__(self) -> None:
        private = instance_secret("addon-demo-key.pem", _new_private_key)
        key = serialization.load_pem_private_key(private.encode(), password=None)
        self._signer = crypt.RSASigner.from_string(private, key_id=self.KEY_ID)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        #: The key published the way Google publishes its own: ``{key id: PEM}`` as JSON.
        self.certs_json = json.dumps({self.KEY_ID: public.decode()}).encode()

    def token(self, email: str, audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": audience,
            "sub": "demo-" + secrets.token_hex(8),
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + TOKEN_SECONDS,
        }
        token: bytes = jwt.encode(self._signer, claims)
        return token.decode()


def _new_private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


class DemoCerts(google.auth.transport.Request):
    """The certs transport of demo mode: :data:`DEMO_CERTS_URL` from memory, any other URL as usual."""

    def __init__(self, identity: DemoIdentity, usual: google.auth.transport.Request) -> None:
        self._body = identity.certs_json
        self._usual = usual

    def __call__(self, url: str, method: str = "GET", **kwargs: Any) -> Any:  # type: ignore[override]
        if url == DEMO_CERTS_URL and method == "GET":
            return StoredResponse(200, {"content-type": "application/json"}, self._body)
        return self._usual(url, method=method, **kwargs)


def init_app(app: Flask) -> None:
    """In demo mode: the demo key, Google's stand-ins unless configured otherwise, the previewer."""
    if not app.config["DEMO"]:
        return
    with app.app_context():
        app.extensions[EXTENSION] = DemoIdentity()
    if not app.config["ADDON_CLIENT_ID"]:
        app.config["ADDON_CLIENT_ID"] = DEMO_CLIENT_ID
    if app.config["ADDON_CERTS_URL"] == Defaults.ADDON_CERTS_URL:
        app.config["ADDON_CERTS_URL"] = DEMO_CERTS_URL
    app.register_blueprint(bp)
    app.add_template_filter(card_html, "card_html")


def certs_transport(usual: google.auth.transport.Request) -> google.auth.transport.Request:
    """The transport that fetches signing keys: the usual one, or in demo mode :class:`DemoCerts`."""
    identity = current_app.extensions.get(EXTENSION)
    return DemoCerts(identity, usual) if identity is not None else usual


@bp.before_request
def _this_machine_only() -> None:
    this_machine_only()


def card_html(value: object) -> Markup:
    """Card text as Gmail shows it: its few formatting tags kept, anything else removed."""
    cleaned = nh3.clean(
        str(value), tags=CARD_TAGS, attributes=CARD_ATTRIBUTES, url_schemes={"http", "https", "mailto"}
    )
    return Markup(cleaned)  # nh3 has just removed everything but the card tags


def _threads() -> list[dict[str, Any]]:
    """The newest threads of every mailbox: what an agent could open in Gmail."""
    session = get_session()
    rows = session.execute(
        select(Message, Mailbox.address, Ticket.number, Ticket.status)
        .join(Mailbox, Mailbox.id == Message.mailbox_id)
        .outerjoin(Ticket, Ticket.id == Message.ticket_id)
        .order_by(Message.id.desc())
        .limit(THREADS_SHOWN * 4)
    ).all()
    threads: dict[tuple[int, str], dict[str, Any]] = {}
    for message, address, number, status in rows:
        key = (message.mailbox_id, message.gmail_thread_id)
        if key in threads:
            continue
        threads[key] = {
            "mailbox": address,
            "thread": message.gmail_thread_id,
            "message": message.gmail_id,
            "rfc822": message.rfc822_message_id or "",
            "subject": message.subject or "",
            "number": number,
            "closed": status in CLOSED_STATUSES,
        }
    # Tickets being worked on first, then solved ones, newest number first; then the threads that are
    # not tickets (agents' own mail).
    ordered = sorted(threads.values(), key=lambda t: (t["number"] is None, t["closed"], -(t["number"] or 0)))
    return ordered[:THREADS_SHOWN]


@bp.get("")
def page() -> str:
    lang = request.accept_languages.best_match(list(_TEXT), default="en") or "en"
    session = get_session()
    agents = session.scalars(
        select(Agent).options(joinedload(Agent.mailboxes)).where(Agent.active.is_(True)).order_by(Agent.id)
    ).unique()
    return render_template(
        "addon_preview.html", lang=lang, text=_TEXT[lang], agents=list(agents), threads=_threads()
    )


@bp.post("/token")
def token() -> Response | tuple[Response, int]:
    """An ID token for an active agent, as ``ScriptApp.getIdentityToken()`` would give them.

    JSON only, so a page on another site cannot ask for one without a CORS preflight we never answer.
    """
    body = request.get_json(silent=True) if request.is_json else None
    if not isinstance(body, dict) or not isinstance(body.get("agent"), str):
        return error_response(400, "bad_request", 'send JSON {"agent": "<email>"}')
    audiences = client_ids(current_app.config["ADDON_CLIENT_ID"])
    if not audiences:
        return error_response(409, "not_configured", "ADDON_CLIENT_ID is empty: postdesk demo sets it")
    email = body["agent"].strip().lower()
    agent = get_session().scalar(select(Agent).where(Agent.email == email, Agent.active.is_(True)))
    if agent is None:
        return error_response(404, "not_found", "no active agent with that email")
    identity: DemoIdentity = current_app.extensions[EXTENSION]
    return jsonify({"token": identity.token(agent.email, audiences[0]), "expires_in": TOKEN_SECONDS})


@bp.post("/render")
def render() -> Response | tuple[Response, int]:
    """One card of an answer as HTML (the page asks for each card it shows)."""
    body = request.get_json(silent=True) if request.is_json else None
    card = body.get("card") if isinstance(body, dict) else None
    if not isinstance(card, dict):
        return error_response(400, "bad_request", 'send JSON {"card": {...}}')
    try:
        html = render_template("addon_preview_card.html", card=card)
    except (TypeError, ValueError, AttributeError, jinja2.TemplateError) as exc:  # any JSON can arrive
        return error_response(400, "bad_request", f"not a card the previewer can show: {exc}")
    return Response(html, mimetype="text/html")
