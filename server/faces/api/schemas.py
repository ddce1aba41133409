"""The shapes the REST API reads and writes (pydantic models: the OpenAPI document is made from them).

Input models forbid unknown fields and bound every string and number, so a request either means one
thing or gets a 400 that names the field.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from rules.model import Priority, TicketStatus

#: The largest id any table holds (PostgreSQL's ``integer``); a larger one is simply not found.
MAX_ID = 2**31 - 1
#: The days a report may ask about.
EARLIEST, LATEST = date(1970, 1, 1), date(2200, 12, 31)


_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _written_as(pattern: re.Pattern[str], what: str) -> Any:
    def check(value: Any) -> Any:
        # pydantic would read a number as seconds since 1970; the API takes only ISO 8601 text.
        if not isinstance(value, str) or not pattern.match(value):
            raise ValueError(f"write {what}")
        return value

    return check


#: An ISO 8601 moment with its offset (``2026-11-24T09:00:00Z``).
Moment = Annotated[
    AwareDatetime,
    BeforeValidator(_written_as(_MOMENT, "a date and time with its offset, e.g. 2026-11-24T09:00:00Z")),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
#: An ISO 8601 day (``2026-11-24``).
Day = Annotated[
    date,
    BeforeValidator(_written_as(_DAY, "a day, e.g. 2026-11-24")),
    WithJsonSchema({"type": "string", "format": "date"}),
]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class Strict(BaseModel):
    """A body or a query: an unknown field is a mistake (a typo would otherwise change nothing, silently),
    and no text holds a NUL character (PostgreSQL's text cannot; nothing a person writes has one)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if _has_nul(data):
            raise ValueError("text with a NUL character (\\x00) is not accepted")
        return data


# --- answers --------------------------------------------------------------------------------------
class Problem(BaseModel):
    """An error, as RFC 9457 describes it (``application/problem+json``)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    instance: str | None = None
    #: The request's fields that were wrong, with what was wrong with each.
    errors: list[dict[str, Any]] | None = None


class AgentRef(BaseModel):
    id: int
    email: str
    name: str


class CustomerRef(BaseModel):
    id: int
    email: str
    name: str


class TicketOut(BaseModel):
    id: int
    mailbox_id: int
    number: int
    subject: str
    status: TicketStatus
    priority: Priority
    assignee: AgentRef | None
    customer: CustomerRef | None
    tags: list[str]
    due_at: datetime | None
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    first_responded_at: datetime | None
    solved_at: datetime | None
    snoozed_until: datetime | None
    created_at: datetime
    updated_at: datetime
    #: Of a merged ticket (status ``merged``): the id of the ticket it was merged into.
    merged_into: int | None = None


class MessageOut(BaseModel):
    id: int
    direction: Literal["inbound", "outbound"]
    from_email: str
    from_name: str
    to: str
    cc: str
    subject: str
    sent_at: datetime
    text: str
    is_automatic: bool
    attachments: list[dict[str, Any]]


class NoteOut(BaseModel):
    id: int
    author: AgentRef | None
    body: str
    created_at: datetime


class EventOut(BaseModel):
    id: int
    kind: str
    actor: str
    actor_agent_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    created_at: datetime


class TicketDetail(TicketOut):
    messages: list[MessageOut]
    notes: list[NoteOut]
    events: list[EventOut]


class TicketPage(BaseModel):
    items: list[TicketOut]
    #: Pass as ``cursor`` for the next page; null on the last page.
    next_cursor: str | None


class NoteCreated(BaseModel):
    note: NoteOut


class ReplyQueued(BaseModel):
    #: False when the same reply was already queued for this state of the conversation.
    queued: bool


class AgentOut(AgentRef):
    role: str
    active: bool
    away: bool
    mailbox_ids: list[int]


class AgentList(BaseModel):
    items: list[AgentOut]


class MailboxHealth(BaseModel):
    sync_state: str
    sync_error: str | None
    last_sync_at: datetime | None
    paused: bool
    outbox_waiting: int
    gmail_units_today: int


class MailboxOut(BaseModel):
    id: int
    address: str
    display_name: str
    health: MailboxHealth


class MailboxList(BaseModel):
    items: list[MailboxOut]


class CustomerOut(CustomerRef):
    mailbox_id: int


class CustomerList(BaseModel):
    items: list[CustomerOut]


class TemplateOut(BaseModel):
    id: int
    mailbox_id: int | None
    name: str
    locale: str
    subject: str


class TemplateList(BaseModel):
    items: list[TemplateOut]


class RenderedTemplate(BaseModel):
    subject: str
    text: str
    html: str | None


class SummaryOut(BaseModel):
    """Minutes (business time unless named calendar): how many tickets, their mean, median and p90."""

    count: int
    mean: float | None
    median: float | None
    p90: float | None


class Figures(BaseModel):
    #: Each set's number of tickets (new, solved, reopened, overdue …; docs/reports.md defines each).
    counts: dict[str, int]
    first_response: SummaryOut
    first_response_calendar: SummaryOut
    resolution: SummaryOut
    resolution_calendar: SummaryOut
    first_response_sla: float | None
    resolution_sla: float | None
    first_contact_resolution: float | None
    replies_per_ticket: float | None
    csat: float | None
    csat_ratings: int
    nps: float | None
    #: Of the tickets that got an FAQ answer, the % the customer said it solved with no agent's reply.
    faq_deflection: float | None


class ReportOut(BaseModel):
    first: date
    last: date
    zone: str
    current: Figures
    previous: Figures


# --- questions ------------------------------------------------------------------------------------
TicketSort = Literal["-updated_at", "updated_at", "-created_at", "created_at"]


class TicketFilter(Strict):
    mailbox: int | None = Field(default=None, ge=1, le=MAX_ID)
    status: list[TicketStatus] | None = None
    #: An agent's id, or ``none`` for unassigned tickets.
    assignee: str | None = Field(default=None, max_length=20, pattern=r"^(none|[1-9][0-9]{0,9})$")
    tag: str | None = Field(default=None, min_length=1, max_length=100)
    priority: list[Priority] | None = None
    due_before: Moment | None = None
    due_after: Moment | None = None
    updated_since: Moment | None = None
    customer: int | None = Field(default=None, ge=1, le=MAX_ID)
    sort: TicketSort = "-updated_at"
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, max_length=200)


class TicketChange(Strict):
    """Only the fields given change; ``assignee_id: null`` unassigns, ``snoozed_until: null`` wakes."""

    status: TicketStatus | None = None
    priority: Priority | None = None
    assignee_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    tags: list[str] | None = Field(default=None, max_length=50)
    snoozed_until: Moment | None = None


class MergeIn(Strict):
    """The ticket to merge into (a merged one is followed to the ticket it lives on in)."""

    into: int = Field(ge=1, le=MAX_ID)


class UnmergeIn(Strict):
    """Nothing to say: send ``{}``."""


class SplitIn(Strict):
    """The customer's message (its ``id`` among the ticket's messages) that starts the new ticket; it
    and the later messages of its Gmail thread move."""

    message: int = Field(ge=1, le=MAX_ID)


class Followers(BaseModel):
    #: Whether the token's owner follows the ticket now.
    following: bool
    followers: list[AgentRef]


class NoteIn(Strict):
    body: str = Field(min_length=1, max_length=20_000)


class ReplyIn(Strict):
    """Either a template (by id) or plain text."""

    template_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    text: str | None = Field(default=None, min_length=1, max_length=100_000)


class CustomerQuery(Strict):
    email: str = Field(min_length=3, max_length=320)


class MailboxQuery(Strict):
    mailbox: int | None = Field(default=None, ge=1, le=MAX_ID)


class RenderIn(Strict):
    ticket_id: int = Field(ge=1, le=MAX_ID)


class ReportQuery(Strict):
    mailbox: int | None = Field(default=None, ge=1, le=MAX_ID)
    #: The first and last day (in the token owner's time zone); the last 30 days by default.
    first: Day | None = Field(default=None, ge=EARLIEST, le=LATEST)
    last: Day | None = Field(default=None, ge=EARLIEST, le=LATEST)
    agent: int | None = Field(default=None, ge=1, le=MAX_ID)
    tag: str | None = Field(default=None, min_length=1, max_length=100)
    priority: Priority | None = None
    domain: str | None = Field(default=None, max_length=253, pattern=r"^[A-Za-z0-9.-]+$")


class WebhookOut(BaseModel):
    id: int
    mailbox_id: int
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime


class WebhookList(BaseModel):
    items: list[WebhookOut]


class WebhookCreated(WebhookOut):
    #: The signing secret: shown this once.
    secret: str


class WebhookIn(Strict):
    mailbox_id: int = Field(ge=1, le=MAX_ID)
    url: str = Field(min_length=1, max_length=2000)
    events: list[str] = Field(min_length=1, max_length=20)


class DeliveryOut(BaseModel):
    id: str
    event_type: str
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryList(BaseModel):
    items: list[DeliveryOut]
