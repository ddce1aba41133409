"""What every settings page module shares: the blueprint, who is signed in, paging, problems."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Blueprint, abort, current_app, flash, request
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectChoice

from server.base.db import get_session
from server.base.models import ActorKind, Agent, Mailbox, Role
from server.faces.web.access import READERS, current_agent
from server.services.tickets import Actor

bp = Blueprint("admin", __name__, url_prefix="/settings")


def signed_in() -> Agent:
    agent = current_agent()
    assert agent is not None  # allow() let the call through
    return agent


def acting() -> Actor:
    return Actor(ActorKind.AGENT, agent_id=signed_in().id)


def page_number() -> int:
    try:
        return max(1, min(int(request.args.get("page", "1")), 1_000_000))
    except ValueError:
        return 1


def page_size() -> int:
    return max(1, int(current_app.config["PAGE_SIZE"]))


def show_problems(form: FlaskForm, problems: Iterable[tuple[str, str]], message: str) -> None:
    """Put the service's problems (field, text) next to the form's fields (the rest at the top of the
    page; ``message`` when there is none)."""
    shown = False
    for field, text in problems:
        shown = True
        if field in form:
            form[field].errors = [*form[field].errors, text]
        else:
            flash(f"{field}: {text}" if field else text, "error")
    if not shown:
        flash(message, "error")


def settings_problems(problems: Iterable[str], prefix: str = "") -> list[tuple[str, str]]:
    """The settings service's "path: text" problems as (form field, text): ``csat.days`` is the
    field ``csat_days``, and ``prefix`` (e.g. ``reminders.``) is left out."""
    pairs = []
    for problem in problems:
        path, _sep, text = problem.removeprefix(prefix).partition(": ")
        pairs.append((path.replace(".", "_"), text))
    return pairs


def readable_mailboxes() -> list[Mailbox]:
    """The mailboxes whose rules the signed-in person may read: all for admins and managers, else the
    mailboxes they work in."""
    me = signed_in()
    query = select(Mailbox).order_by(Mailbox.address)
    if Role(me.role) not in READERS:
        query = query.where(Mailbox.id.in_([m.id for m in me.mailboxes]))
    return list(get_session().scalars(query))


def chosen_mailbox() -> tuple[Mailbox, list[Mailbox]]:
    """The mailbox asked for (``?mailbox=ID``) among those the person may read, else the first; 403
    when they may read none, 404 for one they may not read."""
    mailboxes = readable_mailboxes()
    if not mailboxes:
        abort(403)
    wanted = request.values.get("mailbox", "")
    chosen = next((m for m in mailboxes if str(m.id) == wanted), None)
    if wanted and chosen is None:
        abort(404)
    return chosen or mailboxes[0], mailboxes


def mailbox_choices() -> list[SelectChoice]:
    """Every mailbox's address, for the forms that pick mailboxes (agents' memberships and admin rights)."""
    return [
        SelectChoice(a, a) for a in get_session().scalars(select(Mailbox.address).order_by(Mailbox.address))
    ]
