"""``/api/v1``: customers, agents, mailboxes (with health), templates (list, render) and reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from spectree import Response as Answers
from sqlalchemy import func, or_, select

from server.base.db import get_session
from server.base.models import Agent, Customer, Mailbox, Role, Template, Ticket, mailbox_members
from server.faces.api.auth import caller, chosen_mailboxes, needs, readable_mailboxes
from server.faces.api.base import bp, tree
from server.faces.api.schemas import (
    AgentList,
    CustomerList,
    CustomerQuery,
    MailboxList,
    MailboxQuery,
    RenderedTemplate,
    RenderIn,
    ReportOut,
    ReportQuery,
    TemplateList,
)
from server.faces.errors import problem_response
from server.services.api_tokens import Scope
from server.services.composing import mail_context, render_template
from server.services.figures import metrics
from server.services.mailbox_health import health_of
from server.services.templating import TemplateError

#: The reports' default period, as on the page.
REPORT_DAYS = 30


@bp.get("/customers")
@needs(Scope.TICKETS_READ)
@tree.validate(resp=Answers(HTTP_200=CustomerList), tags=["customers"])
def find_customers(query: CustomerQuery) -> Any:
    """The customers with this email in the mailboxes you read (their tickets: ``/tickets?customer=id``)."""
    session = get_session()
    found = session.scalars(
        select(Customer)
        .where(
            Customer.mailbox_id.in_(readable_mailboxes(session, caller())),
            func.lower(Customer.email) == query.email.strip().lower(),
        )
        .order_by(Customer.mailbox_id)
    )
    return CustomerList.model_validate(
        {"items": [{"id": c.id, "email": c.email, "name": c.name, "mailbox_id": c.mailbox_id} for c in found]}
    )


@bp.get("/agents")
@needs(Scope.TICKETS_READ)
@tree.validate(resp=Answers(HTTP_200=AgentList), tags=["agents"])
def list_agents() -> Any:
    """The people who work in the mailboxes you read (everyone, for admins and managers)."""
    session = get_session()
    who = caller()
    mailboxes = readable_mailboxes(session, who)
    memberships: dict[int, list[int]] = {}
    for mailbox_id, agent_id in session.execute(
        select(mailbox_members.c.mailbox_id, mailbox_members.c.agent_id).order_by(
            mailbox_members.c.mailbox_id
        )
    ):
        memberships.setdefault(agent_id, []).append(mailbox_id)
    query = select(Agent).order_by(Agent.name, Agent.email)
    if who.role not in (Role.ADMIN, Role.MANAGER):
        query = query.where(
            Agent.id.in_([a for a, boxes in memberships.items() if set(boxes) & set(mailboxes)])
        )
    items = [
        {
            "id": a.id,
            "email": a.email,
            "name": a.name,
            "role": a.role,
            "active": a.active,
            "away": a.away,
            "mailbox_ids": [m for m in memberships.get(a.id, []) if m in mailboxes],
        }
        for a in session.scalars(query)
    ]
    return AgentList.model_validate({"items": items})


@bp.get("/mailboxes")
@needs(Scope.TICKETS_READ)
@tree.validate(resp=Answers(HTTP_200=MailboxList), tags=["mailboxes"])
def list_mailboxes() -> Any:
    """The mailboxes you read, each with its health (sync, Outbox, Gmail quota today)."""
    session = get_session()
    ids = readable_mailboxes(session, caller())
    boxes = session.scalars(select(Mailbox).where(Mailbox.id.in_(ids)).order_by(Mailbox.address)).all()
    health = health_of(session, ids, datetime.now(UTC))
    items = [
        {
            "id": box.id,
            "address": box.address,
            "display_name": box.display_name,
            "health": {
                "sync_state": box.sync_state,
                "sync_error": box.sync_error,
                "last_sync_at": box.last_sync_at,
                "paused": box.paused,
                "outbox_waiting": health[box.id].outbox_waiting,
                "gmail_units_today": health[box.id].gmail_units_today,
            },
        }
        for box in boxes
    ]
    return MailboxList.model_validate({"items": items})


@bp.get("/templates")
@needs(Scope.TICKETS_READ)
@tree.validate(resp=Answers(HTTP_200=TemplateList), tags=["templates"])
def list_templates(query: MailboxQuery) -> Any:
    """The shared templates of the mailboxes you read, and your own."""
    session = get_session()
    who = caller()
    ids = chosen_mailboxes(session, who, query.mailbox)
    found = session.scalars(
        select(Template)
        .where(
            Template.mailbox_id.in_(ids),
            or_(Template.owner_id.is_(None), Template.owner_id == who.agent_id),
        )
        .order_by(Template.mailbox_id, Template.name, Template.locale)
    )
    items = [
        {"id": t.id, "mailbox_id": t.mailbox_id, "name": t.name, "locale": t.locale, "subject": t.subject}
        for t in found
    ]
    return TemplateList.model_validate({"items": items})


@bp.post("/templates/<int:template_id>/render")
@needs(Scope.TICKETS_READ)
@tree.validate(resp=Answers(HTTP_200=RenderedTemplate), tags=["templates"])
def render(template_id: int, json: RenderIn) -> Any:
    """The template as it would go to this ticket's customer (nothing is sent)."""
    session = get_session()
    who = caller()
    ids = readable_mailboxes(session, who)
    template = session.get(Template, template_id) if template_id < 2**31 else None
    if template is None or template.mailbox_id not in ids or template.owner_id not in (None, who.agent_id):
        return problem_response(404, "Not Found", "No such template.")
    ticket = session.get(Ticket, json.ticket_id)
    if ticket is None or ticket.mailbox_id != template.mailbox_id:
        return problem_response(404, "Not Found", "No such ticket in the template's mailbox.")
    agent = session.get(Agent, who.agent_id)
    zone = agent.timezone if agent else "UTC"
    try:
        rendered = render_template(
            template, mail_context(ticket, ticket.mailbox, locale=template.locale, zone=zone, agent=agent)
        )
    except TemplateError as exc:
        return problem_response(400, "Bad Request", f"The template does not render: {exc}")
    return RenderedTemplate(subject=rendered.subject, text=rendered.text, html=rendered.html)


def _summary(value: metrics.Summary) -> dict[str, Any]:
    return {"count": value.count, "mean": value.mean, "median": value.median, "p90": value.p90}


def _figures(found: metrics.Overview) -> dict[str, Any]:
    return {
        "counts": dict(found.counts),
        "first_response": _summary(found.first_response),
        "first_response_calendar": _summary(found.first_response_calendar),
        "resolution": _summary(found.resolution),
        "resolution_calendar": _summary(found.resolution_calendar),
        "first_response_sla": found.first_response_sla,
        "resolution_sla": found.resolution_sla,
        "first_contact_resolution": found.fcr,
        "replies_per_ticket": found.replies_per_ticket,
        "csat": found.csat_score,
        "csat_ratings": found.csat[0],
        "nps": found.nps_score,
        "faq_deflection": found.faq_deflection,
    }


@bp.get("/reports/overview")
@needs(Scope.REPORTS_READ)
@tree.validate(resp=Answers(HTTP_200=ReportOut), tags=["reports"])
def report_overview(query: ReportQuery) -> Any:
    """The reports' overview figures for a period, beside the period of the same length before it.

    Days are whole days in the token owner's time zone; an agent gets the figures of their own
    tickets, as on the reports page. docs/reports.md defines each figure.
    """
    session = get_session()
    who = caller()
    agent = session.get(Agent, who.agent_id)
    try:
        zone = ZoneInfo(agent.timezone if agent else "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    now = datetime.now(UTC)
    ids = chosen_mailboxes(session, who, query.mailbox)
    today = now.astimezone(zone).date()
    last = query.last or today
    first = query.first or last - timedelta(days=REPORT_DAYS - 1)
    try:
        period = metrics.Period(first, last, zone)
        period.previous().local_midnight(period.first)
    except (ValueError, OverflowError) as exc:
        return problem_response(400, "Bad Request", f"first/last: {exc}")
    agent_id = who.agent_id if who.role not in (Role.ADMIN, Role.MANAGER) else query.agent
    scope = metrics.Scope(
        tuple(ids),
        agent_id,
        query.tag.strip() if query.tag else None,
        query.priority.value if query.priority else None,
        query.domain.lower() if query.domain else None,
    )
    current = metrics.overview(session, scope, period, now)
    before = metrics.overview(session, scope, period.previous(), now)
    return ReportOut.model_validate(
        {
            "first": period.first,
            "last": period.last,
            "zone": str(zone),
            "current": _figures(current),
            "previous": _figures(before),
        }
    )
