"""One add-on request: who sends it (a verified agent), in which language and zone, and its inputs.

The event object is whatever the caller sent, so every read of it checks the shape it finds: a field
of another type than Google sends reads as absent, and an action then answers with a clear error card
(:class:`BadInput`), never a 500.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app, request
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.sql import Select

from server.base.db import get_session
from server.base.models import ActorKind, Agent, Ticket, mailbox_members
from server.faces.addon import cards
from server.faces.addon.auth import (
    CachingRequest,
    Verifier,
    agent_for,
    bearer_token,
    client_ids,
    verify_identity,
)
from server.faces.addon.preview import certs_transport
from server.faces.addon.text import locale_of, say
from server.services import tickets
from server.services.templating import format_when

#: The Apps Script shim's global function that every card button calls (addon/Code.js).
APPS_SCRIPT_FUNCTION = "onPostdeskAction"
#: The blueprint's path; buttons of the HTTP runtime call ``<public url><prefix>/action``.
URL_PREFIX = "/addon/v1"
#: An id or number in a button is 1 to 18 ASCII digits: it fits a 64-bit column, whatever was sent.
_ID = re.compile(r"[0-9]{1,18}")
#: Ids and numbers are SQL integers: a larger one names nothing (and PostgreSQL would refuse it).
LARGEST_ID = 2**31 - 1
_certs_request = CachingRequest()


class NoAccess(Exception):
    """The agent may not see this ticket or mailbox (403, a card with nothing of it)."""


class BadInput(ValueError):
    """A button's input cannot be used; the message is shown to the agent."""


def as_object(value: object) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (a malformed event reads as absent)."""
    return value if isinstance(value, dict) else {}


def parse_id(raw: object) -> int | None:
    """A database id or ticket number from a button or field, or None when it is not one."""
    if isinstance(raw, str) and _ID.fullmatch(raw.strip()) and int(raw.strip()) <= LARGEST_ID:
        return int(raw.strip())
    return None


@dataclass
class Call:
    """One verified add-on request."""

    session: Session
    agent: Agent
    mailbox_ids: list[int]
    locale: str
    zone: str
    caller: cards.Caller
    event: dict[str, Any]
    now: datetime
    #: The customer's message open in Gmail, when it could start a ticket of its own (its row id).
    splittable: int | None = None

    @property
    def actor(self) -> tickets.Actor:
        return tickets.Actor(ActorKind.AGENT, agent_id=self.agent.id)

    @property
    def common(self) -> dict[str, Any]:
        return as_object(self.event.get("commonEventObject"))

    def say(self, key: str, **values: object) -> str:
        return say(self.locale, key, **values)

    def when(self, value: datetime | None) -> str:
        return format_when(value, self.locale, self.zone)

    def parameter(self, name: str) -> str | None:
        for source in (self.common.get("parameters"), self.event.get("parameters")):
            value = as_object(source).get(name)
            if isinstance(value, str):
                return value
        return None

    def form(self, name: str) -> str | None:
        """A text or selection input's first value; None when absent or of another kind."""
        value = as_object(as_object(self.common.get("formInputs")).get(name))
        strings = as_object(value.get("stringInputs")).get("value")
        if isinstance(strings, list) and strings and isinstance(strings[0], str):
            return strings[0]
        return None

    def form_moment(self, name: str) -> int | None:
        """A date-time picker's milliseconds since the epoch; None when absent or of another kind."""
        value = as_object(as_object(self.common.get("formInputs")).get(name))
        moment = as_object(value.get("dateTimeInput")).get("msSinceEpoch")
        if isinstance(moment, bool):
            return None
        if isinstance(moment, int):
            return moment
        if isinstance(moment, float) and moment.is_integer():
            return int(moment)
        if isinstance(moment, str) and re.fullmatch(r"-?[0-9]{1,18}", moment):
            return int(moment)
        return None

    def mailbox_id(self, raw: str | None) -> int:
        """A mailbox the agent works in, from a button; NoAccess for any other."""
        mailbox_id = parse_id(raw)
        if mailbox_id is None or mailbox_id not in self.mailbox_ids:
            raise NoAccess
        return mailbox_id


def zone_name(value: object, fallback: str) -> str:
    candidate = value if isinstance(value, str) and value else fallback
    try:
        ZoneInfo(candidate)
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"
    return candidate


def public_url(path: str) -> str:
    """This route's address as Google calls it (``ADDON_PUBLIC_URL``), else as this request reached us."""
    base = current_app.config["ADDON_PUBLIC_URL"] or request.url_root
    return base.rstrip("/") + path


def begin() -> Call:
    """Verify the request's tokens and gather what every answer needs (raises ``Unauthorized``)."""
    token = bearer_token(request.headers.get("Authorization"))
    config = current_app.config
    event = as_object(request.get_json(silent=True))
    verifier = Verifier(
        client_ids=client_ids(config["ADDON_CLIENT_ID"]),
        certs_url=config["ADDON_CERTS_URL"],
        request=certs_transport(_certs_request),
        service_account=config["ADDON_SERVICE_ACCOUNT"],
        endpoint_url=public_url(request.path) if config["ADDON_PUBLIC_URL"] else "",
    )
    email = verify_identity(token, event, verifier)
    session = get_session()
    agent = agent_for(session, email)
    mailbox_ids = list(
        session.scalars(select(mailbox_members.c.mailbox_id).where(mailbox_members.c.agent_id == agent.id))
    )
    common = as_object(event.get("commonEventObject"))
    zone = as_object(common.get("timeZone")).get("id")
    if isinstance(event.get("postdesk"), dict):  # the Apps Script shim: buttons call its function
        function = APPS_SCRIPT_FUNCTION
    else:  # the HTTP runtime: buttons call this backend's URL
        function = public_url(f"{URL_PREFIX}/action")
    return Call(
        session=session,
        agent=agent,
        mailbox_ids=mailbox_ids,
        locale=locale_of(common.get("userLocale") or agent.locale),
        zone=zone_name(zone, agent.timezone),
        caller=cards.Caller(function),
        event=event,
        now=datetime.now(UTC),
    )


def ticket_query() -> Select[Ticket]:
    """A ticket with everything its card shows, loaded in a few queries."""
    return select(Ticket).options(
        joinedload(Ticket.mailbox),
        joinedload(Ticket.customer),
        joinedload(Ticket.assignee),
        joinedload(Ticket.sla_policy),
        selectinload(Ticket.tags),
    )


def ticket_by_id(call: Call, raw: str | None) -> Ticket:
    """The ticket a button names, if the agent may see it (BadInput / NoAccess otherwise)."""
    ticket_id = parse_id(raw)
    if ticket_id is None:
        raise BadInput("no ticket")
    ticket = call.session.scalar(ticket_query().where(Ticket.id == ticket_id))
    if ticket is None or ticket.mailbox_id not in call.mailbox_ids:
        raise NoAccess
    return ticket


def offset_minutes(call: Call) -> int:
    """The agent's UTC offset now, for the date-time picker."""
    return int((call.now.astimezone(ZoneInfo(call.zone)).utcoffset() or timedelta()).total_seconds() // 60)
