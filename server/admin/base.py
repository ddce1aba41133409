"""What every settings page module shares: the blueprint, who is signed in, paging, problems."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, request
from flask_wtf import FlaskForm

from server.models import ActorKind, Agent
from server.tickets import Actor
from server.web.access import current_agent

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


def show_problems(form: FlaskForm, problems: dict[str, str], message: str) -> None:
    """Put the service's problems next to the form's fields (the rest at the top of the page)."""
    for field, text in problems.items():
        if field in form:
            form[field].errors = [*form[field].errors, text]
        else:
            flash(text, "error")
    if not problems:
        flash(message, "error")
