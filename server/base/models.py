"""The data model of DESIGN.md as typed SQLAlchemy 2 models.

Every value list (statuses, priorities, roles …) lives here once, as a ``StrEnum``; columns store the
plain strings (VARCHAR + CHECK), so PostgreSQL and SQLite behave alike and a new value is a migration of
one constraint, not a native enum. Instants are aware UTC datetimes. The help centre's are in help_tables.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    WriteOnlyMapped,
    mapped_column,
    orm_insert_sentinel,
    relationship,
)

# The rule engine owns the lists a rule can name: triggers, statuses, priorities.
from rules.model import Priority as Priority
from rules.model import TicketStatus as TicketStatus
from rules.model import Trigger as Trigger
from server.base.columns import UTCDateTime, utcnow

# Stable constraint names, so Alembic can alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EMAIL_LENGTH = 320  # RFC 5321: 64 local part + @ + 255 domain


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


def _one_of(column: str, values: type[StrEnum]) -> CheckConstraint:
    allowed = ", ".join(f"'{v.value}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_valid")


class AuthKind(StrEnum):
    SANDBOX = "sandbox"
    SERVICE_ACCOUNT = "service_account"
    OAUTH = "oauth"


class SyncState(StrEnum):
    NEW = "new"  # never synced: the first sync is a bounded full sync
    FULL_SYNC = "full_sync"
    INCREMENTAL = "incremental"
    ERROR = "error"


class Role(StrEnum):
    """What a person may do: ``admin`` everything, ``manager`` read all settings and reports and
    change only their own profile, ``agent`` work tickets and their own profile."""

    ADMIN = "admin"
    MANAGER = "manager"
    AGENT = "agent"


class Locale(StrEnum):
    EN = "en"
    RU = "ru"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class ActorKind(StrEnum):
    AGENT = "agent"
    RULE = "rule"
    SYSTEM = "system"


class OutboxKind(StrEnum):
    AUTO_REPLY = "auto_reply"
    REPLY = "reply"
    NOTIFICATION = "notification"
    REMINDER = "reminder"
    SURVEY = "survey"


class OutboxState(StrEnum):
    PENDING = "pending"  # decided, not yet handed to Gmail
    SENDING = "sending"  # handed over; outcome unknown until confirmed (search rfc822msgid: first)
    SENT = "sent"
    FAILED = "failed"  # gave up after the last attempt; the reason is in last_error
    CANCELLED = "cancelled"


mailbox_members = Table(
    "mailbox_members",
    Base.metadata,
    Column("mailbox_id", ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True),
    Column("agent_id", ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True),
    # An admin of this mailbox only: its settings, pause, connection (not the team or other mailboxes).
    Column("is_admin", Boolean, nullable=False, default=False, server_default=false()),
)


class Mailbox(Base):
    __tablename__ = "mailboxes"
    __table_args__ = (_one_of("auth_kind", AuthKind), _one_of("sync_state", SyncState))

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(EMAIL_LENGTH), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    auth_kind: Mapped[str] = mapped_column(String(32))
    #: Gmail API base URL; empty for Google itself, the sandbox URL otherwise.
    api_endpoint: Mapped[str | None] = mapped_column(String(500))
    #: Fernet-encrypted JSON (service-account key or OAuth refresh token); see server.base.crypto.
    credentials_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    history_id: Mapped[int | None] = mapped_column(BigInteger)
    last_sync_at: Mapped[datetime | None]
    sync_state: Mapped[str] = mapped_column(String(32), default=SyncState.NEW)
    sync_error: Mapped[str | None] = mapped_column(Text)
    next_ticket_number: Mapped[int] = mapped_column(default=1)
    #: Paused by an admin: the worker neither syncs it nor sends its mail until resumed.
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The agent who got the last round-robin assignment (fair across processes and restarts).
    round_robin_cursor: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    #: Per-mailbox settings (see server.services.mailbox_settings): locale, auto-reply limits, reminders …
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: While open tickets still need new deadlines after a change of settings or SLA policies: the
    #: last ticket id re-timed (0 at the start); NULL when nothing is pending. Each request bumps
    #: the generation, so a run that a newer request overtook notices and starts again.
    retime_cursor: Mapped[int | None]
    retime_generation: Mapped[int] = mapped_column(default=0)
    #: Gmail push: when ``users.watch`` runs out (renewed daily); since when a push asks for a sync not started.
    watch_expires_at: Mapped[datetime | None]
    sync_wanted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list[Agent]] = relationship(secondary=mailbox_members, back_populates="mailboxes")

    def __repr__(self) -> str:
        return f"<Mailbox {self.address}>"


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (_one_of("role", Role), _one_of("locale", Locale))

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16), default=Role.AGENT)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    locale: Mapped[str] = mapped_column(String(8), default=Locale.EN)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Away agents keep their tickets but get no new ones from automatic assignment.
    away: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Joined by signing in from an allowed Workspace domain, and no admin has looked at them yet.
    is_new: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The person's own choices of mail (``digest``, ``reminders``: true/false; absent means true).
    notifications: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    mailboxes: Mapped[list[Mailbox]] = relationship(secondary=mailbox_members, back_populates="members")

    def wants(self, kind: str) -> bool:
        """Whether the person wants this kind of mail (``digest`` or ``reminders``)."""
        return (self.notifications or {}).get(kind, True) is not False

    def __repr__(self) -> str:
        return f"<Agent {self.email}>"


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("mailbox_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Orders a page's rows in one INSERT … RETURNING on SQLite (docs/architecture.md: Sync).
    _sentinel: Mapped[int | None] = orm_insert_sentinel()
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(EMAIL_LENGTH))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tickets: WriteOnlyMapped[Ticket] = relationship(back_populates="customer")


class SlaPolicy(Base):
    __tablename__ = "sla_policies"
    __table_args__ = (UniqueConstraint("mailbox_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    #: ``{"urgent": {"first_response_minutes": 60, "resolution_minutes": 480}, …}`` per priority.
    targets: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: The business calendar: ``timezone``, ``hours`` per weekday, ``holidays``, ``closed``, ``open``.
    calendar: Mapped[dict[str, Any]] = mapped_column(default=dict)
    pausing_statuses: Mapped[list[Any]] = mapped_column(
        default=lambda: [TicketStatus.PENDING.value, TicketStatus.ON_HOLD.value]
    )
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("mailbox_id", "number"),
        UniqueConstraint("mailbox_id", "gmail_thread_id"),
        _one_of("status", TicketStatus),
        _one_of("priority", Priority),
        # The reminder scans read only what is due: one index per deadline column.
        Index("ix_tickets_due_at", "due_at"),
        Index("ix_tickets_first_response_due_at", "first_response_due_at"),
        Index("ix_tickets_resolution_due_at", "resolution_due_at"),
        Index("ix_tickets_snoozed_until", "snoozed_until"),
        Index("ix_tickets_remind_at", "remind_at"),
        Index("ix_tickets_mailbox_status", "mailbox_id", "status"),
        Index("ix_tickets_assignee_status", "assignee_id", "status"),
        Index("ix_tickets_customer", "customer_id"),
        # The reports read one period through these (server.services.figures.metrics), never the whole history.
        Index("ix_tickets_mailbox_created", "mailbox_id", "created_at"),
        Index("ix_tickets_mailbox_solved", "mailbox_id", "solved_at"),
        Index("ix_tickets_mailbox_responded", "mailbox_id", "first_responded_at"),
        Index("ix_tickets_mailbox_updated", "mailbox_id", "updated_at"),
        Index("ix_tickets_labels_wanted", "mailbox_id", "labels_wanted_at"),
        # The REST API's ticket list pages by (time, id) across the mailboxes a caller reads.
        Index("ix_tickets_updated_id", "updated_at", "id"),
        Index("ix_tickets_created_id", "created_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Orders a page's rows in one INSERT … RETURNING on SQLite (docs/architecture.md: Sync).
    _sentinel: Mapped[int | None] = orm_insert_sentinel()
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    number: Mapped[int]
    gmail_thread_id: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text, default="")
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default=TicketStatus.OPEN)
    priority: Mapped[str] = mapped_column(String(16), default=Priority.NORMAL)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    sla_policy_id: Mapped[int | None] = mapped_column(ForeignKey("sla_policies.id", ondelete="SET NULL"))
    #: The next deadline of any kind: min(first_response_due_at, resolution_due_at) while they apply.
    due_at: Mapped[datetime | None]
    first_response_due_at: Mapped[datetime | None]
    resolution_due_at: Mapped[datetime | None]
    first_responded_at: Mapped[datetime | None]
    solved_at: Mapped[datetime | None]
    snoozed_until: Mapped[datetime | None]
    #: Business minutes the resolution clock stood still (pending, on hold …), and since when it stands.
    resolution_paused_minutes: Mapped[float] = mapped_column(Float, default=0.0)
    paused_at: Mapped[datetime | None]
    #: When the status last changed (a pending ticket's follow-up counts from here).
    status_changed_at: Mapped[datetime | None]
    #: Since when nobody has the ticket (None while someone has it): "unassigned for N minutes" counts
    #: from here, so a ticket unassigned later gets its own reminder.
    unassigned_at: Mapped[datetime | None]
    #: When the reminder scan must next look at the ticket (server.flows.reminders); every change sets it to
    #: "now", the scan moves it to the next reminder or clears it. Indexed: the scan reads only what is due.
    remind_at: Mapped[datetime | None]
    #: The ticket's measures, written by the action that completes each one (server.faces.reports reads
    #: them): minutes to the first agent reply and to the solve that stands, in calendar and in
    #: business time (resolution without the time the SLA clock stood still), whether each missed
    #: its SLA target, agent replies (automatic mail never counts) and reopenings.
    first_response_minutes: Mapped[float | None] = mapped_column(Float)
    first_response_business_minutes: Mapped[float | None] = mapped_column(Float)
    first_response_breached: Mapped[bool | None] = mapped_column(Boolean)
    resolution_minutes: Mapped[float | None] = mapped_column(Float)
    resolution_business_minutes: Mapped[float | None] = mapped_column(Float)
    resolution_breached: Mapped[bool | None] = mapped_column(Boolean)
    agent_replies: Mapped[int] = mapped_column(Integer, default=0)
    reopens: Mapped[int] = mapped_column(Integer, default=0)
    #: Merging (server.services.tickets.merging): the ticket this one was merged into, when, and how
    #: many were merged into this one (their Gmail threads are this ticket's too).
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    merged_at: Mapped[datetime | None]
    merged_in: Mapped[int] = mapped_column(Integer, default=0)
    #: The Gmail labels of the ticket's thread (server.services.labels): every change bumps the version and
    #: asks for new labels (``labels_wanted_at``, in the changing transaction); the worker applies
    #: them after the commit and clears the request only if no newer change came meanwhile.
    labels_version: Mapped[int] = mapped_column(Integer, default=0)
    labels_wanted_at: Mapped[datetime | None]
    #: The label keys last applied to the thread (``status:open``, ``agent:3``, ``overdue`` …).
    labels_applied: Mapped[list[Any] | None] = mapped_column(JSON)
    #: Gmail's historyId after our last label change of the thread: label history up to it is ours
    #: (or someone's change that ours, made for a newer ticket state, overwrote).
    labels_history_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Never earlier than any message, Event or rating of the ticket (each moves it forward), so the
    #: reports find the tickets something happened to in a period through an index on it.
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    mailbox: Mapped[Mailbox] = relationship()
    customer: Mapped[Customer | None] = relationship(back_populates="tickets")
    assignee: Mapped[Agent | None] = relationship()
    sla_policy: Mapped[SlaPolicy | None] = relationship()
    tags: Mapped[list[TicketTag]] = relationship(
        back_populates="ticket", cascade="all, delete-orphan", order_by="TicketTag.name"
    )
    messages: WriteOnlyMapped[Message] = relationship(
        back_populates="ticket", order_by="Message.sent_at", passive_deletes=True
    )
    notes: WriteOnlyMapped[Note] = relationship(back_populates="ticket", passive_deletes=True)
    events: WriteOnlyMapped[Event] = relationship(
        back_populates="ticket", order_by="Event.id", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Ticket #{self.number} mailbox={self.mailbox_id}>"


class TicketTag(Base):
    """A tag on a ticket; a table of its own so reports can count per tag with an index."""

    __tablename__ = "ticket_tags"
    __table_args__ = (Index("ix_ticket_tags_name", "name"),)

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True)

    ticket: Mapped[Ticket] = relationship(back_populates="tags")


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("mailbox_id", "gmail_id"),
        Index("ix_messages_mailbox_rfc822", "mailbox_id", "rfc822_message_id"),
        # The add-on finds the open email by its Message-ID alone (then checks the mailbox).
        Index("ix_messages_rfc822", "rfc822_message_id"),
        Index("ix_messages_ticket_sent_at", "ticket_id", "sent_at"),
        Index("ix_messages_mailbox_thread", "mailbox_id", "gmail_thread_id"),
        Index("ix_messages_mailbox_sent_at", "mailbox_id", "sent_at"),
        _one_of("direction", Direction),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Orders a page's rows in one INSERT … RETURNING on SQLite (docs/architecture.md: Sync).
    _sentinel: Mapped[int | None] = orm_insert_sentinel()
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    #: Empty for an agent's own thread that no customer has answered yet ("not a ticket yet").
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    gmail_id: Mapped[str] = mapped_column(String(64))
    gmail_thread_id: Mapped[str] = mapped_column(String(64))
    rfc822_message_id: Mapped[str | None] = mapped_column(String(998))
    in_reply_to: Mapped[str | None] = mapped_column(Text)
    references: Mapped[str | None] = mapped_column(Text)
    direction: Mapped[str] = mapped_column(String(16))
    from_email: Mapped[str] = mapped_column(String(EMAIL_LENGTH), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    to: Mapped[str] = mapped_column(Text, default="")
    cc: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime]
    text: Mapped[str] = mapped_column(Text, default="")
    #: Sanitized HTML (never the raw HTML of the email).
    html: Mapped[str | None] = mapped_column(Text)
    #: ``[{"filename", "mime_type", "size", "attachment_id"}]``
    attachments: Mapped[list[Any]] = mapped_column(default=list)
    labels: Mapped[list[Any]] = mapped_column(default=list)
    #: Automatic mail (auto-replies, bounces, lists): filed, never acted on.
    is_auto: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Why it was taken for automatic mail ("delivery report", "Auto-Submitted: auto-replied" …).
    auto_reason: Mapped[str | None] = mapped_column(String(200))
    #: What could not be parsed or decoded (charset, boundary …); empty when the mail was clean.
    parse_problems: Mapped[list[Any]] = mapped_column(default=list)
    trashed: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Deleted for good in Gmail; the ticket keeps the message.
    gmail_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    #: What server.services.knowledge.signals read from a customer's message: low/normal/high, negative/
    #: neutral/positive, and the reasons (kind, words, points); empty for other mail.
    urgency: Mapped[str | None] = mapped_column(String(8))
    tone: Mapped[str | None] = mapped_column(String(8))
    signals: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket | None] = relationship(back_populates="messages")


class Note(Base):
    __tablename__ = "notes"
    __table_args__ = (Index("ix_notes_ticket", "ticket_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    #: Agent ids mentioned with @.
    mentions: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="notes")
    author: Mapped[Agent | None] = relationship()


class Event(Base):
    """The audit log: who (an agent, a rule or the system) changed what, from what, to what."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_ticket", "ticket_id", "id"),
        Index("ix_events_kind_created", "kind", "created_at"),
        Index("ix_events_mailbox_kind_created", "mailbox_id", "kind", "created_at"),
        _one_of("actor_kind", ActorKind),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Orders a page's rows in one INSERT … RETURNING on SQLite (docs/architecture.md: Sync).
    _sentinel: Mapped[int | None] = orm_insert_sentinel()
    mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    actor_kind: Mapped[str] = mapped_column(String(16))
    actor_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    actor_rule_id: Mapped[int | None] = mapped_column(ForeignKey("rules.id", ondelete="SET NULL"))
    #: What happened, e.g. ``ticket_created``, ``status_changed``, ``auto_reply_suppressed``.
    kind: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket | None] = relationship(back_populates="events")


class Rule(Base):
    __tablename__ = "rules"
    __table_args__ = (
        Index("ix_rules_mailbox_position", "mailbox_id", "position"),
        _one_of("trigger", Trigger),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    trigger: Mapped[str] = mapped_column(String(32))
    #: The condition tree and action list as the ``rules`` package loads and validates them.
    conditions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actions: Mapped[list[Any]] = mapped_column(default=list)
    position: Mapped[int] = mapped_column(default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    stop_processing: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Template(Base):
    __tablename__ = "templates"
    __table_args__ = (
        UniqueConstraint("mailbox_id", "name", "locale"),
        _one_of("locale", Locale),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int | None] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    #: Set for a personal template; shared templates have no owner.
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(8), default=Locale.EN)
    subject: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    #: Example questions this template answers: a template with some is an FAQ answer
    #: (server.services.knowledge.faq) that an acknowledgement may carry.
    faq_questions: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Outbox(Base):
    """Every email Postdesk sends, recorded in the transaction that decided to send it."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_state_next_attempt", "state", "next_attempt_at"),
        _one_of("kind", OutboxKind),
        _one_of("state", OutboxState),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Orders a page's rows in one INSERT … RETURNING on SQLite (docs/architecture.md: Sync).
    _sentinel: Mapped[int | None] = orm_insert_sentinel()
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))
    #: Unique per decision (e.g. ``ack:<ticket>``, ``reminder:<ticket>:<kind>:<deadline>``): sent once.
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    #: Our own RFC 822 Message-ID; searched with ``rfc822msgid:`` before any retry.
    message_id: Mapped[str] = mapped_column(String(300), unique=True)
    to: Mapped[str] = mapped_column(Text)
    cc: Mapped[str] = mapped_column(Text, default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default=OutboxState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    gmail_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class Survey(Base):
    """A CSAT request for a solved ticket, and the customer's 1–5 answer."""

    __tablename__ = "surveys"
    __table_args__ = (CheckConstraint("rating IS NULL OR (rating BETWEEN 1 AND 5)", name="rating_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), unique=True)
    #: The unguessable token in the survey link.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    sent_at: Mapped[datetime | None]
    rating: Mapped[int | None]
    comment: Mapped[str | None] = mapped_column(Text)
    answered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkerLease(Base):
    """Who may run the scheduled jobs: one holder at a time, until ``expires_at`` unless renewed."""

    __tablename__ = "worker_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)


class RuleFiring(Base):
    """Whether a ``time`` rule last matched a ticket: it fires again only after the condition changes."""

    __tablename__ = "rule_firings"

    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id", ondelete="CASCADE"), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    matched: Mapped[bool] = mapped_column(Boolean, default=False)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReminderMark(Base):
    """What the reminder scan has done, once per key (ticket + kind + deadline [+ recipient]).

    Every reminder, breach event, snooze wake-up, automatic solve and digest is marked here in the
    transaction that does it; a key already marked is never done again, across restarts and workers.
    """

    __tablename__ = "reminder_marks"
    __table_args__ = (Index("ix_reminder_marks_ticket", "ticket_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NoteMention(Base):
    """An agent named with @ in a note: their Mentions list until they open the ticket after it."""

    __tablename__ = "note_mentions"
    __table_args__ = (Index("ix_note_mentions_agent", "agent_id", "created_at"),)

    note_id: Mapped[int] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketFollower(Base):
    """An agent who follows a ticket they may not own: they get what its assignee is told."""

    __tablename__ = "ticket_followers"
    __table_args__ = (Index("ix_ticket_followers_agent", "agent_id"),)

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TicketView(Base):
    """When an agent last looked at a ticket in the add-on ("also looked at by Anna, 2 min ago")."""

    __tablename__ = "ticket_views"

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    viewed_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebSession(Base):
    """A browser's session with the settings pages, kept on the server: the cookie carries a random
    token, this row its SHA-256 (a copy of the table opens no session). Deleting an agent's rows signs
    them out everywhere."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_agent", "agent_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class GmailUsage(Base):
    """Gmail quota units spent per mailbox and UTC day (the mailboxes page shows today's)."""

    __tablename__ = "gmail_usage"

    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    units: Mapped[int] = mapped_column(BigInteger, default=0)


class GmailLabel(Base):
    """A Postdesk label in a mailbox's Gmail: what it stands for (``key``), its Gmail id and the name
    and colour it was given (renamed when an agent's name or the mailbox's language changes)."""

    __tablename__ = "gmail_labels"

    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True)
    #: ``root``, ``status:open`` … ``agent:<id>``, ``unassigned``, ``overdue``, ``urgent``, ``mine``.
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    gmail_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(300))


class CsatRating(Base):
    """The customer's rating of a ticket: one per ticket, changed by a later click within the window."""

    __tablename__ = "csat_ratings"
    __table_args__ = (
        Index("ix_csat_ratings_mailbox_rated", "mailbox_id", "rated_at"),
        CheckConstraint("nps IS NULL OR (nps BETWEEN 0 AND 10)", name="nps_range"),
    )

    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    #: What the customer chose: "good", "okay", "bad" (three faces) or "1" … "5".
    value: Mapped[str] = mapped_column(String(16))
    #: The same on one scale, 1 (worst) … 5 (best), for the reports.
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    rated_at: Mapped[datetime] = mapped_column(default=utcnow)
    changes: Mapped[int] = mapped_column(Integer, default=0)
    #: The optional NPS answer (0–10: "how likely to recommend us"), when the mailbox asks it.
    nps: Mapped[int | None] = mapped_column(Integer)


class ApiToken(Base):
    """A personal access token for the REST API: the caller acts as ``agent`` with ``scopes``.

    Only the SHA-256 of the secret is kept (the secret has 256 random bits, so a plain hash is enough:
    nothing to brute-force); ``prefix`` is its first characters, for people to tell tokens apart.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_agent", "agent_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]

    agent: Mapped[Agent] = relationship(foreign_keys=[agent_id])


class Webhook(Base):
    """A subscription: POST these event types of one mailbox's tickets to ``url``, signed with its secret."""

    __tablename__ = "webhooks"
    __table_args__ = (Index("ix_webhooks_mailbox", "mailbox_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[Any]] = mapped_column(default=list)
    #: The signing secret, encrypted with the instance key (server.base.crypto).
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Why it was turned off by Postdesk (a day of failures), shown on the page.
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    #: The first failure since the last success (a day of them disables the subscription).
    failing_since: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))

    mailbox: Mapped[Mailbox] = relationship()


class WebhookDelivery(Base):
    """One event for one subscription: written in the deciding transaction, sent by the worker until
    the receiver answers 2xx or the retry window ends. ``id`` is the idempotency key receivers see."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_webhook", "webhook_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(40))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    #: The JSON body exactly as sent (and signed) every time.
    body: Mapped[str] = mapped_column(Text)
    #: ``pending`` (waits for ``next_attempt_at``), ``delivered`` or ``failed`` (gave up).
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: A worker holds the delivery until then (another worker takes it over after a crash).
    claimed_until: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One try of a delivery, for the delivery log: when, the receiver's status code or the problem."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    milliseconds: Mapped[int] = mapped_column(Integer, default=0)


class KnowledgeEntry(Base):
    """A solved ticket in the knowledge index: what the customer asked, the team's final answer, and
    the stems of both (server.services.knowledge.index). The database's own full-text index reads it: FTS5
    table ``knowledge_fts`` on SQLite, the generated ``document`` column with a GIN index on
    PostgreSQL (both made by migration 0025, outside the models)."""

    __tablename__ = "knowledge_entries"
    __table_args__ = (Index("ix_knowledge_entries_mailbox_id", "mailbox_id", "id"),)

    #: Newer entries have larger ids: re-indexing a ticket gives it a new one.
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), unique=True)
    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    question: Mapped[str] = mapped_column(Text, default="")
    answer: Mapped[str] = mapped_column(Text, default="")
    #: Snowball stems, space-separated (server.services.knowledge.stemming.terms): what FTS5 indexes on SQLite
    #: and what suggestions are ranked by on both databases.
    question_terms: Mapped[str] = mapped_column(Text, default="")
    answer_terms: Mapped[str] = mapped_column(Text, default="")
    answer_message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    solved_at: Mapped[datetime | None]
    indexed_at: Mapped[datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship()


class KnowledgeTerm(Base):
    """How many of a mailbox's index entries contain a stem: what makes a rare word weigh more."""

    __tablename__ = "knowledge_terms"

    mailbox_id: Mapped[int] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"), primary_key=True)
    term: Mapped[str] = mapped_column(String(64), primary_key=True)
    entries: Mapped[int] = mapped_column(Integer, default=0)
