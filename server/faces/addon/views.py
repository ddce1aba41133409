"""``/addon/v1/*``: the add-on's triggers and button clicks, answered with cards.

Every request proves who sends it (:mod:`server.faces.addon.auth`): a bad token is 401 on every route.
A verified agent sees only tickets of mailboxes they are a member of; anything else is a "no access"
card with status 403 and nothing of the ticket in it. The screens live in their own modules
(:mod:`.ticket`, :mod:`.home`, :mod:`.compose`) and the buttons in :mod:`.clicks`; this module only
turns a request into a :class:`~server.faces.addon.call.Call` and the answer into JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify

from server.faces.addon import cards
from server.faces.addon.auth import Unauthorized
from server.faces.addon.call import URL_PREFIX, BadInput, Call, NoAccess, begin
from server.faces.addon.clicks import run_click
from server.faces.addon.compose import compose_card
from server.faces.addon.home import home_card
from server.faces.addon.ticket import message_card
from server.faces.errors import error_response

log = logging.getLogger(__name__)
bp = Blueprint("addon", __name__, url_prefix=URL_PREFIX)


def _answer(screen: Callable[[Call], dict[str, Any]]) -> Response | tuple[Response, int]:
    try:
        call = begin()
    except Unauthorized as exc:
        log.info("addon_unauthorized reason=%s", exc)
        return error_response(401, "unauthorized", "a valid Google ID token of an active agent is required")
    try:
        return jsonify(screen(call))
    except NoAccess:
        call.session.rollback()
        card = cards.card(
            call.say("no_access_title"), [cards.section([cards.paragraph(call.say("no_access_text"))])]
        )
        return jsonify(cards.push(card)), 403
    except BadInput as exc:  # a trigger's event that names nothing usable
        call.session.rollback()
        card = cards.card(
            call.say("bad_input_title"), [cards.section([cards.paragraph(cards.text(str(exc)))])]
        )
        return jsonify(cards.push(card)), 400


@bp.post("/homepage")
def homepage() -> Response | tuple[Response, int]:
    return _answer(lambda call: cards.push(home_card(call)))


@bp.post("/message")
def message() -> Response | tuple[Response, int]:
    return _answer(message_card)


@bp.post("/compose")
def compose() -> Response | tuple[Response, int]:
    return _answer(lambda call: cards.push(compose_card(call)))


@bp.post("/action")
def action() -> Response | tuple[Response, int]:
    return _answer(run_click)
